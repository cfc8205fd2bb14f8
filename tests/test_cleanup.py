"""``cleanup`` against an in-memory store: only uploads old enough are aborted; a dry run aborts nothing."""

from __future__ import annotations

from async_uploader.cleanup import abort_incomplete_uploads
from tests.memory_store import MemoryStore

# MemoryStore dates upload number n at n seconds after the epoch.


async def test_only_uploads_older_than_the_age_are_aborted() -> None:
    store = MemoryStore()
    for key in ("p/a", "p/b", "p/c", "other/d"):
        await store.create_multipart(key, metadata={}, checksum=None, full_object=False)

    result = await abort_incomplete_uploads(store, "p/", older_than_s=10, now=12)

    assert sorted(u.key for u in result.aborted) == ["p/a", "p/b"]
    assert result.younger == 1
    assert sorted(key for key, _, _ in store.uploads.values()) == ["other/d", "p/c"]


async def test_a_dry_run_aborts_nothing() -> None:
    store = MemoryStore()
    await store.create_multipart("p/a", metadata={}, checksum=None, full_object=False)

    result = await abort_incomplete_uploads(store, "p/", older_than_s=0, dry_run=True, now=100)

    assert [u.key for u in result.aborted] == ["p/a"]
    assert len(store.uploads) == 1
