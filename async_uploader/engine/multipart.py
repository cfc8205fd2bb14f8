"""One large file as a multipart upload: create, parts streamed and uploaded concurrently, complete or abort.

Parts are scheduled one at a time: each waits for a request slot and for its bytes in the memory budget
*before* its task exists, so a 10,000-part file never has more than a handful of parts alive. A part that fails
transiently is read again from disk and retried; whatever goes wrong for good (a part, the file changing, the
run being cancelled), the upload is aborted in a shielded ``finally`` so no orphaned parts are left to be billed
(unless the user asked to keep it open, to resume it).

Integrity: each part carries its checksum; with a CRC and a store that can, the completion carries the CRC of
the whole file (combined from the parts' CRCs), which the server checks; the store's answer is compared with
ours, and a HEAD confirms the size. A resumed upload reuses only the parts whose bytes still match the file.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

import anyio

from ..errors import FileError, StoreError, VerificationError
from ..providers.base import (
    NO_HEADERS,
    Body,
    ObjectHeaders,
    ObjectStore,
    StoredObject,
    UploadedPart,
    sweep_after_create,
)
from ..source.checksum import Algorithm, Checksum, composite, full_object_crc, verify_stored_checksum
from ..source.reader import check_unchanged, read_chunk
from ..source.scan import FileEntry
from .limits import Limits, RetryNote
from .plan import PartPlan, UploadPlan
from .retry import RetryPolicy

log = logging.getLogger(__name__)

ABORT_TIMEOUT_S: Final = 30.0
ABORT_ATTEMPTS: Final = 1000
ABORT_MAX_DELAY_S: Final = 4.0

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FileUpload:
    """One file's multipart upload: what to send, where, with which checksum, under which limits."""

    store: ObjectStore
    entry: FileEntry
    key: str
    plan: UploadPlan
    limits: Limits
    algorithm: Algorithm | None
    deadline: float
    on_retry: RetryNote | None = None
    headers: ObjectHeaders = NO_HEADERS
    """The object's headers, sent with its creation (and the SSE-C key with every request of it)."""

    async def request(self, call: Callable[[], Awaitable[T]]) -> T:
        return await self.limits.request(call, deadline=self.deadline, on_retry=self.on_retry)


def checksum_mode(algorithm: Algorithm | None, full_object: bool) -> str:
    """How an upload's checksums were asked for (``crc32/full``, ``sha256/composite``, ``none``): a resumed
    upload must be completed the way it was created."""
    if algorithm is None:
        return "none"
    return f"{algorithm.value}/{'full' if full_object else 'composite'}"


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """An open upload of this very file (same size, mtime, part size and checksums) and its parts that match."""

    upload_id: str
    full_object: bool
    parts: Mapping[int, UploadedPart]
    crcs: Mapping[int, int]
    """The reused parts' raw CRCs, for the whole file's CRC."""


@dataclass(frozen=True, slots=True)
class Journal:
    """Told when an upload is created (with its checksum mode) and when it is closed (completed or aborted), so a
    run that dies between the two leaves a record the next run can resume from."""

    opened: Callable[[str, str], None]
    closed: Callable[[str], None]


QUIET_JOURNAL: Final = Journal(lambda _id, _mode: None, lambda _id: None)


async def upload_multipart(
    job: FileUpload,
    metadata: Mapping[str, str],
    on_part: Callable[[int, int], None],
    *,
    resume: ResumePoint | None = None,
    journal: Journal = QUIET_JOURNAL,
    keep_partial: bool = False,
    on_full_checksum: Callable[[Checksum], None] | None = None,
) -> StoredObject:
    """Upload the file in ``plan.part_count`` parts; ``on_part(number, bytes)`` is called as each part lands, and
    ``on_full_checksum`` with the whole file's CRC (``_tell_full_checksum``).

    With ``resume``, its upload is continued and its parts are not sent again. On any failure the upload is
    aborted, except that with ``keep_partial`` a cancelled run (Ctrl-C, SIGTERM) leaves it open to resume.
    """
    store, key, entry = job.store, job.key, job.entry
    if resume is not None:
        upload_id, full_object = resume.upload_id, resume.full_object
        reused, crcs = dict(resume.parts), dict(resume.crcs)
    else:
        upload_id, full_object = await _create(job, metadata)
        journal.opened(upload_id, checksum_mode(job.algorithm, full_object))
        reused, crcs = {}, {}
    completed = kept = False
    try:
        parts = await _upload_parts(job, upload_id, on_part, reused, crcs)
        await check_unchanged(entry.path, size=entry.size, mtime_ns=entry.mtime_ns)
        full = None
        if full_object and job.algorithm is not None:
            full = full_object_crc(job.algorithm, ((crcs[p.number], p.size) for p in job.plan.parts()))
        stored = await job.request(
            lambda: store.complete_multipart(key, upload_id, parts, full_checksum=full, headers=job.headers)
        )
        completed = True
    except anyio.get_cancelled_exc_class():
        kept = keep_partial
        raise
    finally:
        if not completed and not kept:
            await abort_upload(store, key, upload_id, job.limits.retry)
        if not kept:
            journal.closed(upload_id)
    expected = full
    if expected is None and job.algorithm is not None:
        expected = composite(part.checksum for part in parts if part.checksum is not None)
    verify_stored_checksum(stored.checksum, expected)
    if on_full_checksum is not None:
        _tell_full_checksum(job, full, crcs, on_full_checksum)
    try:
        info = await job.request(lambda: store.head_object(key, headers=job.headers))
    except StoreError as exc:
        if not exc.denied:
            raise
        return stored  # a write-only role may not read it back: the completion's own answer is all there is
    if info is None or info.size != entry.size:
        found = "no object" if info is None else f"{info.size} bytes"
        raise VerificationError(f"after completing the upload the store holds {found}, expected {entry.size}")
    return stored


def _tell_full_checksum(
    job: FileUpload, full: Checksum | None, crcs: Mapping[int, int], tell: Callable[[Checksum], None]
) -> None:
    """The whole file's CRC: the one the completion carried, or, where the store takes only the parts' (COMPOSITE,
    Azure), combined from the parts' CRCs all the same (one multiplication a part), so that a later run can
    compare the file with what was stored here (``--compare checksum``)."""
    if full is None and job.algorithm is not None and job.algorithm.is_crc:
        if any(p.number not in crcs for p in job.plan.parts()):
            return
        full = full_object_crc(job.algorithm, ((crcs[p.number], p.size) for p in job.plan.parts()))
    if full is not None:
        tell(full)


async def _create(job: FileUpload, metadata: Mapping[str, str]) -> tuple[str, bool]:
    tries = 0
    full_object = False

    async def create() -> str:
        nonlocal tries, full_object
        tries += 1
        # Asked on every try: a store that refused a full-object checksum has said so by now.
        full_object = job.algorithm is not None and job.algorithm.is_crc and job.store.full_object_checksums
        return await job.store.create_multipart(
            job.key, metadata=metadata, checksum=job.algorithm, full_object=full_object, headers=job.headers
        )

    async def retried_create() -> tuple[str, bool]:
        upload_id = await job.request(create)
        return upload_id, tries > 1

    # The engine's retries are attempts too: an earlier one may have created an upload whose answer never came.
    return await sweep_after_create(job.store, job.key, retried_create), full_object


async def _upload_parts(
    job: FileUpload,
    upload_id: str,
    on_part: Callable[[int, int], None],
    reused: Mapping[int, UploadedPart],
    crcs: dict[int, int],
) -> list[UploadedPart]:
    store, entry, limits = job.store, job.entry, job.limits
    uploaded: list[UploadedPart | None] = [None] * job.plan.part_count
    failure: list[BaseException] = []
    bodies: dict[int, Body] = {}
    """Each part's body while it is in flight: read into again on a retry, then handed back with its bytes."""
    note = limits.note_retries(job.on_retry)

    async def send(part: PartPlan) -> UploadedPart:
        chunk = await read_chunk(
            entry.path,
            part.offset,
            part.size,
            size=entry.size,
            mtime_ns=entry.mtime_ns,
            algorithm=job.algorithm,
            into=bodies.get(part.number),
        )
        bodies[part.number] = chunk.body
        if limits.bandwidth is not None:
            await limits.bandwidth.consume(part.size)
        done = await store.upload_part(
            job.key, upload_id, part.number, chunk.body, checksum=chunk.checksum, headers=job.headers
        )
        crcs[part.number] = chunk.crc
        return done

    async def one_part(part: PartPlan, taken: int, spare: Body | None) -> None:
        if spare is not None:
            bodies[part.number] = spare
        try:
            # The slot and the bytes stay held across retries: a struggling store gets fewer requests, not more.
            uploaded[part.number - 1] = await limits.retry.call(
                lambda: send(part), deadline=job.deadline, on_retry=note
            )
            limits.slots.succeeded()
        except (FileError, OSError) as exc:
            if not failure:
                failure.append(exc)
            group.cancel_scope.cancel()
            return
        finally:
            limits.budget.release(taken, bodies.pop(part.number, None))
            limits.slots.release()
        on_part(part.number, part.size)

    async with anyio.create_task_group() as group:
        for part in job.plan.parts():
            if part.number in reused:
                uploaded[part.number - 1] = reused[part.number]
                on_part(part.number, part.size)
                continue
            await limits.slots.acquire()
            try:
                taken, spare = await limits.budget.acquire_body(part.size)
            except BaseException:
                limits.slots.release()
                raise
            group.start_soon(one_part, part, taken, spare)
    if failure:
        raise failure[0]
    return [part for part in uploaded if part is not None]


async def abort_upload(store: ObjectStore, key: str, upload_id: str, policy: RetryPolicy) -> None:
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
