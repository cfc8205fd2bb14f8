"""One large file as a multipart upload: create, parts streamed and uploaded concurrently, complete or abort.

Parts are scheduled one at a time: each waits for a request slot and for its bytes in the memory budget
*before* its task exists, so a 10,000-part file never has more than a handful of parts alive. Whatever goes
wrong (a part fails, the file changes, the run is cancelled), the upload is aborted in a shielded ``finally``
so no orphaned parts are left to be billed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import anyio

from .budget import ByteBudget
from .checksum import composite_crc32
from .chunks import check_unchanged, read_chunk
from .errors import FileError, VerificationError
from .plan import PartPlan, UploadPlan
from .providers.base import ObjectStore, StoredObject, UploadedPart
from .scan import FileEntry
from .throttle import TokenBucket

log = logging.getLogger(__name__)

ABORT_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class Limits:
    """What every request shares: the concurrency slots (files and parts alike) and the memory budget."""

    slots: anyio.Semaphore
    budget: ByteBudget
    bandwidth: TokenBucket | None = None


async def upload_multipart(
    store: ObjectStore,
    entry: FileEntry,
    key: str,
    plan: UploadPlan,
    metadata: Mapping[str, str],
    limits: Limits,
    on_part: Callable[[int, int], None],
) -> StoredObject:
    """Upload ``entry`` in ``plan.part_count`` parts; ``on_part(number, bytes)`` is called as each part lands."""
    async with limits.slots:
        upload_id = await store.create_multipart(key, metadata=metadata)
    completed = False
    try:
        parts = await _upload_parts(store, entry, key, upload_id, plan, limits, on_part)
        await check_unchanged(entry.path, size=entry.size, mtime_ns=entry.mtime_ns)
        async with limits.slots:
            stored = await store.complete_multipart(key, upload_id, parts)
        completed = True
    finally:
        if not completed:
            await _abort(store, key, upload_id)
    expected = composite_crc32(part.checksum for part in parts)
    if stored.checksum is not None and "-" in stored.checksum and stored.checksum != expected:
        raise VerificationError(f"store reports checksum {stored.checksum}, expected {expected}")
    async with limits.slots:
        info = await store.head_object(key)
    if info is None or info.size != entry.size:
        found = "no object" if info is None else f"{info.size} bytes"
        raise VerificationError(f"after completing the upload the store holds {found}, expected {entry.size}")
    return stored


async def _upload_parts(
    store: ObjectStore,
    entry: FileEntry,
    key: str,
    upload_id: str,
    plan: UploadPlan,
    limits: Limits,
    on_part: Callable[[int, int], None],
) -> list[UploadedPart]:
    uploaded: list[UploadedPart | None] = [None] * plan.part_count
    failure: list[BaseException] = []

    async def one_part(part: PartPlan, taken: int) -> None:
        try:
            chunk = await read_chunk(entry.path, part.offset, part.size, size=entry.size, mtime_ns=entry.mtime_ns)
            if limits.bandwidth is not None:
                await limits.bandwidth.consume(part.size)
            uploaded[part.number - 1] = await store.upload_part(
                key, upload_id, part.number, chunk.data, checksum=chunk.checksum
            )
            del chunk
        except (FileError, OSError) as exc:
            if not failure:
                failure.append(exc)
            group.cancel_scope.cancel()
            return
        finally:
            limits.budget.release(taken)
            limits.slots.release()
        on_part(part.number, part.size)

    async with anyio.create_task_group() as group:
        for part in plan.parts():
            await limits.slots.acquire()
            try:
                taken = await limits.budget.acquire(part.size)
            except BaseException:
                limits.slots.release()
                raise
            group.start_soon(one_part, part, taken)
    if failure:
        raise failure[0]
    return [part for part in uploaded if part is not None]


async def _abort(store: ObjectStore, key: str, upload_id: str) -> None:
    """Abort even while the run is being cancelled; a failed abort is logged, the original error wins."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(ABORT_TIMEOUT_S):
        try:
            await store.abort_multipart(key, upload_id)
        except FileError as exc:
            log.warning("could not abort the multipart upload of %s (id %s): %s", key, upload_id, exc)
