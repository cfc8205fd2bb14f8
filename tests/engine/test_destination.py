"""Re-runs against an in-memory store: unchanged files are skipped without a request each, changed ones go up,
interrupted multipart uploads are resumed from the parts that still match the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from async_uploader.config import MIB
from async_uploader.engine.adaptive import AdaptiveLimit
from async_uploader.engine.budget import ByteBudget
from async_uploader.engine.destination import LISTINGS_AT_ONCE, DestinationIndex, listing_units
from async_uploader.engine.limits import Limits
from async_uploader.engine.plan import object_key
from async_uploader.engine.state import StateFile
from async_uploader.errors import BucketError
from async_uploader.events import Event, FileDone, FileSkipped
from async_uploader.options import make_config
from async_uploader.runner import run
from async_uploader.source.checksum import Algorithm, checksum_of
from async_uploader.source.filters import PathFilter
from async_uploader.source.scan import FileEntry, walk_tree_batches
from tests.memory_store import MemoryStore, StoredBlob
from tests.trees import make_tree, random_bytes

PART = 5 * MIB


def config_for(source: Path, **options: object):  # type: ignore[no-untyped-def]
    defaults: dict[str, object] = {"part_size": PART, "multipart_threshold": PART}
    defaults.update(options)
    return make_config(source, "s3://bucket/pre", **defaults)  # type: ignore[arg-type]


TREE = {"a.txt": b"alpha", "empty": b"", "sub/b.txt": b"beta", "sub/deeper/c.txt": b"gamma", "top.txt": b"t"}


def skipped(events: list[Event]) -> dict[str, str]:
    return {e.path: e.reason for e in events if isinstance(e, FileSkipped)}


async def test_an_unchanged_rerun_uploads_nothing_and_asks_nothing_per_file(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE)
    store = MemoryStore()
    first = await run(config_for(tmp_path), store)
    assert first.uploaded == len(TREE)
    requests_before, listings_before = store.requests, store.listings
    events: list[Event] = []

    second = await run(config_for(tmp_path), store, events.append)

    assert (second.uploaded, second.skipped, second.failed) == (0, len(TREE), 0)
    assert skipped(events) == dict.fromkeys(TREE, "unchanged")
    assert store.heads == 0
    # The preflight's read check, the listings (the files directly under the prefix; "sub", the one top-level
    # folder, split into its own files and its subfolder "sub/deeper") and one listing of open multipart uploads:
    # nothing per file, and no write probe, since nothing is written.
    assert store.listings - listings_before == 3
    assert store.requests - requests_before == 1 + 3 + 1


async def test_touched_and_edited_files_are_uploaded_again_and_only_they(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE)
    store = MemoryStore()
    await run(config_for(tmp_path), store)
    st = os.stat(tmp_path / "a.txt")
    os.utime(tmp_path / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    (tmp_path / "sub" / "b.txt").write_bytes(b"BETA!")
    (tmp_path / "new.txt").write_bytes(b"new")
    events: list[Event] = []

    result = await run(config_for(tmp_path), store, events.append)

    assert sorted(e.path for e in events if isinstance(e, FileDone)) == ["a.txt", "new.txt", "sub/b.txt"]
    assert result.skipped == len(TREE) - 2
    assert store.heads == 0
    assert store.objects["pre/sub/b.txt"].data == b"BETA!"
    assert store.objects["pre/a.txt"].metadata["mtime"].startswith(str(st.st_mtime_ns // 1_000_000_000 + 1))


async def test_without_state_an_existing_object_costs_one_head_and_is_still_skipped(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE)
    store = MemoryStore()
    await run(config_for(tmp_path, use_state=False), store)

    result = await run(config_for(tmp_path, use_state=False), store)

    assert (result.uploaded, result.skipped) == (0, len(TREE))
    assert store.heads == len(TREE)


async def test_a_remembered_file_is_checked_again_when_someone_else_rewrote_its_key(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE)
    store = MemoryStore()
    await run(config_for(tmp_path), store)
    store.objects["pre/a.txt"] = StoredBlob(b"ALPHA", {}, 1)  # same size, other bytes, no mtime: another writer
    events: list[Event] = []

    await run(config_for(tmp_path), store, events.append)

    assert [e.path for e in events if isinstance(e, FileDone)] == ["a.txt"]
    assert store.heads == 1
    assert store.objects["pre/a.txt"].data == b"alpha"


async def test_compare_size_adopts_objects_another_tool_wrote_without_a_request_each(tmp_path: Path) -> None:
    """Objects with no metadata of ours and the files' sizes are skipped from the listing alone, state or not;
    a file whose size differs still goes up."""
    make_tree(tmp_path, TREE)
    store = MemoryStore()
    for rel, data in TREE.items():
        store.objects[f"pre/{rel}"] = StoredBlob(data.upper(), {}, 1)
    (tmp_path / "top.txt").write_bytes(b"longer")
    events: list[Event] = []

    for use_state in (True, False):
        events.clear()
        result = await run(config_for(tmp_path, compare="size", use_state=use_state), store, events.append)

        assert [e.path for e in events if isinstance(e, FileDone)] == (["top.txt"] if use_state else [])
        assert skipped(events) == dict.fromkeys(set(TREE) - {"top.txt"} if use_state else TREE, "unchanged")
        assert (result.failed, store.heads) == (0, 0)
    assert store.objects["pre/a.txt"].data == b"ALPHA"


async def test_overwrite_never_keeps_existing_objects_and_always_replaces_them(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE)
    store = MemoryStore()
    await run(config_for(tmp_path), store)
    (tmp_path / "a.txt").write_bytes(b"changed, and longer")
    (tmp_path / "new.txt").write_bytes(b"new")
    events: list[Event] = []

    never = await run(config_for(tmp_path, overwrite="never"), store, events.append)

    assert never.uploaded == 1
    assert skipped(events)["a.txt"] == "already exists (--overwrite never)"
    assert store.objects["pre/a.txt"].data == b"alpha"
    listings = store.listings
    always = await run(config_for(tmp_path, overwrite="always"), store)
    assert always.uploaded == len(TREE) + 1
    assert store.listings == listings  # nothing to compare with: no listing at all
    assert store.objects["pre/a.txt"].data == b"changed, and longer"


async def test_write_access_is_only_asked_for_when_there_is_something_to_upload(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE)
    store = MemoryStore()
    await run(config_for(tmp_path), store)
    assert store.probes == 1
    store.read_only = True

    result = await run(config_for(tmp_path), store)
    assert result.skipped == len(TREE)

    (tmp_path / "new.txt").write_bytes(b"new")
    with pytest.raises(BucketError, match="cannot write"):
        await run(config_for(tmp_path), store)
    assert "pre/new.txt" not in store.objects


@pytest.mark.parametrize("full_object", [True, False])
async def test_large_files_carry_the_whole_file_crc_where_the_store_can(tmp_path: Path, full_object: bool) -> None:
    data = random_bytes(2 * PART + 5, seed=16)
    make_tree(tmp_path, {"big.bin": data})
    store = MemoryStore(full_object_checksums=full_object)

    result = await run(config_for(tmp_path), store)

    assert result.uploaded == 1
    expected = checksum_of(Algorithm.CRC32, data) if full_object else None
    assert store.completed_checksums == [expected]


async def test_credentials_that_may_only_write_upload_everything_and_fail_nothing(tmp_path: Path) -> None:
    """A publish-only role (PutObject, no ListBucket or GetObject) must still publish: it cannot skip."""
    make_tree(tmp_path, TREE)
    store = MemoryStore()
    await run(config_for(tmp_path), store)
    store.deny_reads = True

    result = await run(config_for(tmp_path), store)

    assert (result.uploaded, result.skipped, result.failed) == (len(TREE), 0, 0)


def test_few_top_level_folders_are_listed_by_their_subfolders(tmp_path: Path) -> None:
    make_tree(tmp_path, {"top.txt": b"", "one/a.txt": b"", "one/x/b.txt": b"", "one/y/c.txt": b"", "two/d.txt": b""})
    assert listing_units(tmp_path, PathFilter([])) == {
        "": False,
        "one": False,
        "one/x": True,
        "one/y": True,
        "two": True,
    }


def test_many_top_level_folders_are_listed_whole(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"d{i}/s/f": b"" for i in range(LISTINGS_AT_ONCE)})
    assert listing_units(tmp_path, PathFilter([])) == {"": False, **{f"d{i}": True for i in range(LISTINGS_AT_ONCE)}}


async def test_once_its_folder_is_listed_an_unchanged_file_is_passed_over_by_the_walk(tmp_path: Path) -> None:
    """``known_skips`` settles unchanged files without a worker (most of a re-run's per-file cost saved); before
    anything is listed, and for a changed file, it leaves them to the workers."""
    make_tree(tmp_path, TREE)
    store = MemoryStore()
    config = config_for(tmp_path)
    await run(config, store)
    (tmp_path / "sub" / "b.txt").write_bytes(b"BETA!")
    prefix = config.destination.prefix
    entries = [
        (e, object_key(prefix, e.rel))
        async for batch in walk_tree_batches(tmp_path)
        for e in batch
        if isinstance(e, FileEntry)
    ]
    state = StateFile(config.state_file, store.location)
    index = DestinationIndex(store, state, config, Limits(AdaptiveLimit(4), ByteBudget(MIB)))
    try:
        assert not index.skips_known_now()  # nothing listed yet
        assert index.known_skips(entries) == [None] * len(entries)

        await index.load(tmp_path, PathFilter.from_flags(()))

        assert index.skips_known_now()
        reasons = {entry.rel: reason for (entry, _), reason in zip(entries, index.known_skips(entries), strict=True)}
        assert reasons == {rel: None if rel == "sub/b.txt" else "unchanged" for rel in TREE}
    finally:
        state.close()
