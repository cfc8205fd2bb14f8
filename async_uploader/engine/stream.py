"""One object from a stream of unknown length (``upload - s3://b/key``): parts read one at a time, sent several at
once.

A part is read only once its bytes are taken from the run's ``ByteBudget``, and it holds them until it has
landed; up to ``concurrency`` parts are in flight, so memory stays under ``--max-memory`` whatever the stream's
length. A stream that ends inside its first part, under the multipart threshold, is one PutObject. A stream has
no name, size, mode or mtime of its own: its object's metadata is ``mtime`` (when the stream started) and, for
the one-PutObject case only, ``size`` (a multipart upload's metadata is sent before the size is known).

The part size is ``--part-size``, or with ``--expected-size`` the one that fits that many bytes in 10,000 parts;
a stream longer than 10,000 parts fails, and its upload is aborted. So is any failed or interrupted stream: it
cannot be read again to resume, so ``--keep-partial`` does not apply to it, and nothing torn is ever left.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Final

import anyio

from ..config import MIB, Overwrite, UploadConfig
from ..errors import FileError, FileTooLargeError, StoreError, VerificationError
from ..events import (
    EventHandler,
    FileDone,
    FileFailed,
    FileNotStarted,
    FileRetried,
    FileSkipped,
    FileStarted,
    PartDone,
    Verification,
)
from ..header_options import run_headers
from ..providers.base import ObjectHeaders, ObjectStore, StoredObject, UploadedPart, sweep_after_create
from ..source.checksum import composite, full_object_crc, verify_stored_checksum
from ..source.stream import ByteStream, StreamChunk
from .adaptive import AdaptiveLimit
from .budget import ByteBudget
from .headers import HeaderPlanner
from .limits import Limits
from .multipart import abort_upload
from .plan import MAX_PARTS, choose_part_size, format_mtime
from .retry import RetryPolicy
from .throttle import TokenBucket

log = logging.getLogger(__name__)

STREAM_PATH: Final = "-"
"""How a stream is named in events, the report and the summary (``path``)."""
SKIP_EXISTS: Final = "already exists (--overwrite never)"


def stream_part_size(part_size: int, expected_size: int | None) -> int:
    """``part_size``, or with ``expected_size`` the whole number of MiB that fits it in 10,000 parts if larger."""
    return part_size if expected_size is None else choose_part_size(expected_size, part_size)


def too_long_message(part_size: int) -> str:
    return (
        f"the stream is longer than {MAX_PARTS:,} parts of {part_size // MIB} MiB ({MAX_PARTS * part_size:,} "
        "bytes), the most one multipart upload takes: give --expected-size (or a larger --part-size)"
    )


class _StreamRun:
    def __init__(self, config: UploadConfig, store: ObjectStore, emit: EventHandler) -> None:
        assert config.destination.key is not None, "a stream goes to one key"
        self.config, self.store, self.emit = config, store, emit
        self.key = config.destination.key
        bandwidth = TokenBucket(config.max_bandwidth) if config.max_bandwidth else None
        retry = RetryPolicy(attempts=config.retries, deadline_s=config.retry_deadline_s)
        self.limits = Limits(AdaptiveLimit(config.concurrency), ByteBudget(config.max_memory), bandwidth, retry)
        planner = HeaderPlanner(run_headers(config), guess=config.guess_mime_type, rules=())
        self.run_headers = planner.run
        self.headers: ObjectHeaders = planner.for_file(STREAM_PATH, self.key)
        self.part_size = stream_part_size(config.part_size, config.expected_size)
        self.sent = 0
        self.deadline = 0.0

    def on_retry(self, exc: FileError) -> None:
        self.emit(FileRetried(STREAM_PATH, str(exc)))

    async def upload(self, stream: ByteStream, write_probe_key: str | None) -> None:
        config, key, limits = self.config, self.key, self.limits
        if config.overwrite is Overwrite.NEVER:
            deadline = limits.retry.deadline()
            found = await limits.request(
                lambda: self.store.head_object(key, headers=self.headers), deadline=deadline, on_retry=None
            )
            if found is not None:
                self.emit(FileSkipped(STREAM_PATH, key, SKIP_EXISTS, found.size))
                return
        if write_probe_key is not None:
            await self.store.check_writable(write_probe_key, headers=self.run_headers)
        metadata = {**dict(config.metadata), "mtime": format_mtime(time.time_ns())}
        self.emit(FileStarted(STREAM_PATH, key, 0, 0))
        started = time.monotonic()
        self.deadline = limits.retry.deadline()
        try:
            taken = await limits.budget.acquire(self.part_size)
            try:
                first = await stream.read_chunk(self.part_size, config.checksum)
            except BaseException:
                limits.budget.release(taken)
                raise
            if first.size < self.part_size and (first.size < config.multipart_threshold or not first.size):
                try:
                    stored = await self._put(first, {**metadata, "size": str(first.size)})
                finally:
                    limits.budget.release(taken)
                parts = 1
            else:
                stored, parts = await self._multipart(stream, first, taken, metadata)
        except FileError as exc:
            self.emit(FileFailed(STREAM_PATH, key, str(exc), self.sent))
            return
        except OSError as exc:
            self.emit(FileFailed(STREAM_PATH, key, f"cannot read the stream: {exc.strerror or exc}", self.sent))
            return
        except anyio.get_cancelled_exc_class():
            self.emit(FileNotStarted(STREAM_PATH, self.sent, in_flight=True))
            raise
        confirmed = stored.checksum is not None or stored.body_verified
        verified: Verification = "checksum" if config.checksum is not None and confirmed else "size"
        self.emit(
            FileDone(
                STREAM_PATH,
                key,
                self.sent,
                stored.etag,
                stored.checksum or "",
                parts,
                time.monotonic() - started,
                verified=verified,
            )
        )

    async def _put(self, chunk: StreamChunk, metadata: Mapping[str, str]) -> StoredObject:
        store, key = self.store, self.key

        async def send() -> StoredObject:
            chunk.body.seek(0)
            stored = await store.put_object(
                key, chunk.body, checksum=chunk.checksum, metadata=metadata, headers=self.headers
            )
            verify_stored_checksum(stored.checksum, chunk.checksum)
            return stored

        if self.limits.bandwidth is not None:
            await self.limits.bandwidth.consume(chunk.size)
        stored = await self.limits.request(send, deadline=self.deadline, on_retry=self.on_retry)
        self.sent = chunk.size
        self.emit(PartDone(STREAM_PATH, 1, chunk.size))
        return stored

    async def _create(self, metadata: Mapping[str, str]) -> tuple[str, bool]:
        algorithm, store, key = self.config.checksum, self.store, self.key
        tries = 0
        full_object = False

        async def create() -> str:
            nonlocal tries, full_object
            tries += 1
            full_object = algorithm is not None and algorithm.is_crc and store.full_object_checksums
            return await store.create_multipart(
                key, metadata=metadata, checksum=algorithm, full_object=full_object, headers=self.headers
            )

        async def retried_create() -> tuple[str, bool]:
            upload_id = await self.limits.request(create, deadline=self.deadline, on_retry=self.on_retry)
            return upload_id, tries > 1

        return await sweep_after_create(store, key, retried_create), full_object

    async def _multipart(
        self, stream: ByteStream, first: StreamChunk, taken: int, metadata: Mapping[str, str]
    ) -> tuple[StoredObject, int]:
        limits, algorithm = self.limits, self.config.checksum
        try:
            upload_id, full_object = await self._create(metadata)
        except BaseException:
            limits.budget.release(taken)
            raise
        completed = False
        try:
            parts, crcs = await self._send_parts(stream, upload_id, first, taken)
            full = None
            if full_object and algorithm is not None:
                full = full_object_crc(algorithm, crcs)
            stored = await limits.request(
                lambda: self.store.complete_multipart(
                    self.key, upload_id, parts, full_checksum=full, headers=self.headers
                ),
                deadline=self.deadline,
                on_retry=self.on_retry,
            )
            completed = True
        finally:
            if not completed:  # a stream cannot be read again: nothing to resume, so never kept open
                await abort_upload(self.store, self.key, upload_id, limits.retry)
        expected = full
        if expected is None and algorithm is not None:
            expected = composite(part.checksum for part in parts if part.checksum is not None)
        verify_stored_checksum(stored.checksum, expected)
        await self._check_size()
        return stored, len(parts)

    async def _check_size(self) -> None:
        try:
            info = await self.limits.request(
                lambda: self.store.head_object(self.key, headers=self.headers),
                deadline=self.deadline,
                on_retry=self.on_retry,
            )
        except StoreError as exc:
            if not exc.denied:
                raise
            return  # a write-only role may not read it back: the completion's own answer is all there is
        if info is None or info.size != self.sent:
            found = "no object" if info is None else f"{info.size} bytes"
            raise VerificationError(f"after completing the upload the store holds {found}, expected {self.sent}")

    async def _send_parts(
        self, stream: ByteStream, upload_id: str, chunk: StreamChunk, taken: int
    ) -> tuple[list[UploadedPart], list[tuple[int, int]]]:
        """Send ``chunk`` as part 1, then read and send the next parts until the stream ends; each part's bytes
        are held from before its read until it has landed."""
        limits, store, key = self.limits, self.store, self.key
        uploaded: dict[int, UploadedPart] = {}
        crcs: list[tuple[int, int]] = []
        failure: list[BaseException] = []
        note = limits.note_retries(self.on_retry)

        async def one_part(number: int, part: StreamChunk, held: int) -> None:
            async def send() -> UploadedPart:
                part.body.seek(0)
                if limits.bandwidth is not None:
                    await limits.bandwidth.consume(part.size)
                return await store.upload_part(
                    key, upload_id, number, part.body, checksum=part.checksum, headers=self.headers
                )

            try:
                uploaded[number] = await limits.retry.call(send, deadline=self.deadline, on_retry=note)
                limits.slots.succeeded()
            except FileError as exc:
                if not failure:
                    failure.append(exc)
                group.cancel_scope.cancel()
                return
            finally:
                limits.budget.release(held)
                limits.slots.release()
            self.sent += part.size
            self.emit(PartDone(STREAM_PATH, number, part.size))

        number = 0
        async with anyio.create_task_group() as group:
            # Errors are kept, not raised, in here: raised, anyio would wrap them in an exception group.
            try:
                while True:
                    number += 1
                    if number > MAX_PARTS:
                        limits.budget.release(taken)
                        raise FileTooLargeError(too_long_message(self.part_size))
                    crcs.append((chunk.crc, chunk.size))
                    try:
                        await limits.slots.acquire()
                    except BaseException:
                        limits.budget.release(taken)
                        raise
                    group.start_soon(one_part, number, chunk, taken)
                    if chunk.size < self.part_size:
                        break  # a short part is the last
                    taken = await limits.budget.acquire(self.part_size)
                    try:
                        chunk = await stream.read_chunk(self.part_size, self.config.checksum)
                    except BaseException:
                        limits.budget.release(taken)
                        raise
                    if chunk.size == 0:
                        limits.budget.release(taken)
                        break
            except (FileError, OSError) as exc:
                failure.insert(0, exc)  # the stream's own fault comes first: parts then fail for its abort
                group.cancel_scope.cancel()
        if failure:
            raise failure[0]
        return [uploaded[n] for n in sorted(uploaded)], crcs


async def upload_stream(
    config: UploadConfig,
    store: ObjectStore,
    stream: ByteStream,
    on_event: EventHandler,
    *,
    write_probe_key: str | None = None,
) -> tuple[float, int, int, int]:
    """Upload ``stream`` to ``config.destination.key``: one ``FileDone``, ``FileFailed`` or ``FileSkipped``
    (``--overwrite never`` and the key exists). Returns what ``RunStats`` holds: elapsed seconds, the peak
    requests and buffered bytes, the lowest concurrency."""
    started = time.monotonic()
    run = _StreamRun(config, store, on_event)
    await run.upload(stream, write_probe_key)
    slots = run.limits.slots
    return time.monotonic() - started, slots.peak_in_use, run.limits.budget.peak_used, slots.lowest
