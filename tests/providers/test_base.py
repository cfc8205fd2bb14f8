"""Sweeping up after a retried multipart create: the uploads a lost attempt left go, nothing else does."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from async_uploader.errors import StoreError
from async_uploader.providers.base import IncompleteUpload, sweep_after_create

HOUR_S = 3600.0


class OpenUploads:
    """Open multipart uploads as a store lists and aborts them: all that sweeping asks of a store."""

    def __init__(self) -> None:
        self.open: dict[str, tuple[str, float]] = {}
        self.fail_listing = False

    def create(self, key: str, initiated: float | None = None) -> str:
        upload_id = f"upload-{len(self.open) + 1}"
        self.open[upload_id] = (key, time.time() if initiated is None else initiated)
        return upload_id

    async def incomplete_uploads(self, prefix: str) -> AsyncIterator[IncompleteUpload]:
        if self.fail_listing:
            raise StoreError("ListMultipartUploads failed: AccessDenied", denied=True)
        for upload_id, (key, initiated) in list(self.open.items()):
            if key.startswith(prefix):
                yield IncompleteUpload(key, upload_id, initiated)

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        del self.open[upload_id]


async def test_a_create_that_was_retried_leaves_only_its_own_upload_of_the_key() -> None:
    store = OpenUploads()
    old = store.create("k", initiated=time.time() - HOUR_S)  # a killed run's, to resume: not this create's
    other_key = store.create("k2")
    lost = store.create("k")  # the first attempt's, whose answer never came back

    async def create() -> tuple[str, bool]:
        return store.create("k"), True

    kept = await sweep_after_create(store, "k", create)  # type: ignore[arg-type]

    assert sorted(store.open) == sorted([old, other_key, kept])
    assert lost not in store.open


async def test_a_create_that_was_not_retried_sweeps_nothing() -> None:
    store = OpenUploads()
    earlier = store.create("k")

    async def create() -> tuple[str, bool]:
        return store.create("k"), False

    kept = await sweep_after_create(store, "k", create)  # type: ignore[arg-type]

    assert sorted(store.open) == sorted([earlier, kept])


async def test_sweeping_is_best_effort() -> None:
    store = OpenUploads()
    store.fail_listing = True

    async def create() -> tuple[str, bool]:
        return store.create("k"), True

    assert await sweep_after_create(store, "k", create) in store.open  # type: ignore[arg-type]
