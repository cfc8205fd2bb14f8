"""One large file as a multipart upload: create, parts streamed and uploaded concurrently, complete or abort.

Parts are scheduled one at a time: each waits for a request slot and for its bytes in the memory budget
*before* its task exists, so a 10,000-part file never has more than a handful of parts alive. A part that fails
transiently is read again from disk and retried; whatever goes wrong for good (a part, the file changing, the
run being cancelled), the upload is aborted in a shielded ``finally`` so no orphaned parts are left to be billed.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeVar

import anyio

from .adaptive import AdaptiveLimit
from .budget import ByteBudget
from .checksum import composite_crc32
from .chunks import check_unchanged, read_chunk
from .errors import FileError, StoreError, VerificationError
from .plan import PartPlan, UploadPlan
from .providers.base import ObjectStore, StoredObject, UploadedPart, sweep_stale_uploads
from .retry import RetryPolicy
from .scan import FileEntry
from .throttle import TokenBucket

log = logging.getLogger(__name__)

ABORT_TIMEOUT_S: Final = 30.0
ABORT_ATTEMPTS: Final = 1000
ABORT_MAX_DELAY_S: Final = 4.0

T = TypeVar("T")
RetryNote = Callable[[FileError], None]


@dataclass(frozen=True, slots=True)
class Limits:
    """What every request shares: the adaptive concurrency (files and parts alike), the memory budget, the
    bandwidth cap and the retry policy."""

    slots: AdaptiveLimit
    budget: ByteBudget
    bandwidth: TokenBucket | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def _noting(self, on_retry: RetryNote | None) -> RetryNote:
        def note(exc: FileError) -> None:
            if isinstance(exc, StoreError) and exc.throttled:
                self.slots.decrease()
            if on_retry is not None:
                on_retry(exc)

        return note

    async def request(self, call: Callable[[], Awaitable[T]], *, deadline: float, on_retry: RetryNote | None) -> T:
        """A request without a body, under a slot, retried by the policy."""

        async def once() -> T:
            async with self.slots:
                result = await call()
            self.slots.succeeded()
            return result

        return await self.retry.call(once, deadline=deadline, on_retry=self._noting(on_retry))

    async def send_body(
        self, size: int, send: Callable[[], Awaitable[T]], *, deadline: float, on_retry: RetryNote | None
    ) -> T:
        """A request with a body read inside ``send``: slot, then bytes from the budget, then the bandwidth."""

        async def once() -> T:
            async with self.slots, self.budget.reserve(size):
                if self.bandwidth is not None:
                    await self.bandwidth.consume(size)
                result = await send()
            self.slots.succeeded()
            return result

        return await self.retry.call(once, deadline=deadline, on_retry=self._noting(on_retry))


async def upload_multipart(
    store: ObjectStore,
    entry: FileEntry,
    key: str,
    plan: UploadPlan,
    metadata: Mapping[str, str],
    limits: Limits,
    on_part: Callable[[int, int], None],
    *,
    deadline: float,
    on_retry: RetryNote | None = None,
) -> StoredObject:
    """Upload ``entry`` in ``plan.part_count`` parts; ``on_part(number, bytes)`` is called as each part lands."""
    tries = 0
    started = time.time()

    async def create() -> str:
        nonlocal tries
        tries += 1
        return await store.create_multipart(key, metadata=metadata)

    upload_id = await limits.request(create, deadline=deadline, on_retry=on_retry)
    if tries > 1:  # an earlier try may have created an upload whose answer never came back
        await sweep_stale_uploads(store, key, keep=upload_id, since=started)
    completed = False
    try:
        parts = await _upload_parts(store, entry, key, upload_id, plan, limits, on_part, deadline, on_retry)
        await check_unchanged(entry.path, size=entry.size, mtime_ns=entry.mtime_ns)
        stored = await limits.request(
            lambda: store.complete_multipart(key, upload_id, parts), deadline=deadline, on_retry=on_retry
        )
        completed = True
    finally:
        if not completed:
            await _abort(store, key, upload_id, limits.retry)
    expected = composite_crc32(part.checksum for part in parts)
    if stored.checksum is not None and "-" in stored.checksum and stored.checksum != expected:
        raise VerificationError(f"store reports checksum {stored.checksum}, expected {expected}")
    info = await limits.request(lambda: store.head_object(key), deadline=deadline, on_retry=on_retry)
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
    deadline: float,
    on_retry: RetryNote | None,
) -> list[UploadedPart]:
    uploaded: list[UploadedPart | None] = [None] * plan.part_count
    failure: list[BaseException] = []
    note = limits._noting(on_retry)

    async def send(part: PartPlan) -> UploadedPart:
        chunk = await read_chunk(entry.path, part.offset, part.size, size=entry.size, mtime_ns=entry.mtime_ns)
        if limits.bandwidth is not None:
            await limits.bandwidth.consume(part.size)
        return await store.upload_part(key, upload_id, part.number, chunk.body, checksum=chunk.checksum)

    async def one_part(part: PartPlan, taken: int) -> None:
        try:
            # The slot and the bytes stay held across retries: a struggling store gets fewer requests, not more.
            uploaded[part.number - 1] = await limits.retry.call(lambda: send(part), deadline=deadline, on_retry=note)
            limits.slots.succeeded()
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


async def _abort(store: ObjectStore, key: str, upload_id: str, policy: RetryPolicy) -> None:
    """Abort even while the run is being cancelled, retrying for up to 30 s (the failure that brought us here
    may be an outage that is still going on); if it cannot be done, say so: the original error wins."""
    # Not the run's attempt count (a file may have 3 tries): an abort keeps trying, a few seconds apart at most,
    # until the 30 s are up.
    persistent = dataclasses.replace(policy, attempts=ABORT_ATTEMPTS, max_delay_s=ABORT_MAX_DELAY_S)
    with anyio.CancelScope(shield=True):
        try:
            await persistent.call(
                lambda: store.abort_multipart(key, upload_id), deadline=policy.clock() + ABORT_TIMEOUT_S
            )
        except FileError as exc:
            log.warning(
                "could not abort the multipart upload of %s (id %s): %s; it stays billed until aborted "
                "(a bucket lifecycle rule for incomplete uploads removes such leftovers)",
                key,
                upload_id,
                exc,
            )
