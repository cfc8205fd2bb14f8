"""The engine: walk -> bounded queue -> a fixed set of workers -> the object store, emitting events.

Memory is flat by construction: the walk hands entries over a bounded stream (so a slow network pauses the
walk instead of piling entries up), there are exactly ``concurrency`` workers whatever the number of files,
every request holds one of ``concurrency`` slots, and every body holds its bytes in the ``ByteBudget``. Nothing
is kept per finished file except counters. The engine knows no provider details and never asks a subscriber
anything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from .budget import ByteBudget
from .chunks import read_chunk
from .config import UploadConfig
from .errors import FileError, VerificationError
from .events import (
    MAX_FAILURES_KEPT,
    Event,
    EventHandler,
    FileDone,
    FileFailed,
    FileStarted,
    PartDone,
    RunFinished,
    TotalsKnown,
    UploadResult,
)
from .multipart import Limits, upload_multipart
from .plan import object_key, object_metadata, plan_upload
from .providers.base import ObjectStore, StoredObject
from .scan import FileEntry, ScanFailure, ScanItem, count_tree, walk_tree

log = logging.getLogger(__name__)

QUEUE_SLOTS_PER_WORKER: Final = 4


@dataclass(slots=True)
class _Tally:
    """Counters of the run, updated from the events as they are emitted."""

    uploaded: int = 0
    failed: int = 0
    bytes_uploaded: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def count(self, event: Event) -> None:
        if isinstance(event, FileDone):
            self.uploaded += 1
            self.bytes_uploaded += event.size
        elif isinstance(event, FileFailed):
            self.failed += 1
            if len(self.failures) < MAX_FAILURES_KEPT:
                self.failures.append((event.path, event.reason))


class _Run:
    def __init__(self, config: UploadConfig, store: ObjectStore, on_event: EventHandler | None) -> None:
        self.config = config
        self.store = store
        self.limits = Limits(anyio.Semaphore(config.concurrency), ByteBudget(config.max_memory))
        self.tally = _Tally()
        self._on_event = on_event

    def emit(self, event: Event) -> None:
        self.tally.count(event)
        if self._on_event is not None:
            self._on_event(event)

    async def upload_file(self, entry: FileEntry) -> None:
        """Upload one file; every outcome becomes exactly one ``FileDone`` or ``FileFailed``."""
        key: str | None = None
        try:
            key = object_key(self.config.destination.prefix, entry.rel)
            plan = plan_upload(
                entry.size,
                part_size=self.config.part_size,
                multipart_threshold=self.config.multipart_threshold,
            )
            metadata = object_metadata(entry.size, entry.mtime_ns, entry.mode)
            self.emit(FileStarted(entry.rel, key, entry.size, plan.part_count))
            started = time.monotonic()
            if plan.multipart:
                stored = await upload_multipart(
                    self.store, entry, key, plan, metadata, self.limits, self._part_reporter(entry.rel)
                )
            else:
                stored = await self._put_single(entry, key, metadata)
            self.emit(
                FileDone(
                    entry.rel,
                    key,
                    entry.size,
                    stored.etag,
                    stored.checksum or "",
                    plan.part_count,
                    time.monotonic() - started,
                )
            )
        except FileError as exc:
            self.emit(FileFailed(entry.rel, key, str(exc)))
        except OSError as exc:
            self.emit(FileFailed(entry.rel, key, f"cannot read file: {exc.strerror or exc}"))
        except Exception as exc:  # a bug must cost one file, loudly, not the whole run
            log.exception("unexpected error uploading %s", entry.rel)
            self.emit(FileFailed(entry.rel, key, f"internal error: {type(exc).__name__}: {exc}"))

    def _part_reporter(self, rel: str) -> Callable[[int, int], None]:
        return lambda number, size: self.emit(PartDone(rel, number, size))

    async def _put_single(self, entry: FileEntry, key: str, metadata: dict[str, str]) -> StoredObject:
        async with self.limits.slots, self.limits.budget.reserve(entry.size):
            chunk = await read_chunk(entry.path, 0, entry.size, size=entry.size, mtime_ns=entry.mtime_ns)
            stored = await self.store.put_object(key, chunk.data, checksum=chunk.checksum, metadata=metadata)
        if stored.checksum is not None and stored.checksum != chunk.checksum:
            raise VerificationError(f"store computed CRC32 {stored.checksum}, expected {chunk.checksum}")
        return stored

    async def worker(self, receive: ObjectReceiveStream[ScanItem]) -> None:
        async with receive:
            async for item in receive:
                if isinstance(item, ScanFailure):
                    self.emit(FileFailed(item.rel, None, item.reason))
                else:
                    await self.upload_file(item)

    async def walk(self, send: ObjectSendStream[ScanItem]) -> None:
        async with send:
            async for item in walk_tree(self.config.source):
                await send.send(item)

    async def precount(self, stop: threading.Event) -> None:
        totals = await count_tree(self.config.source, stop)
        if totals is not None:
            self.emit(TotalsKnown(totals.files, totals.bytes))


async def run_upload(
    config: UploadConfig, store: ObjectStore, on_event: EventHandler | None = None, *, precount: bool = True
) -> UploadResult:
    """Upload ``config.source`` to ``store``; returns when every file is uploaded or reported failed."""
    run = _Run(config, store, on_event)
    started = time.monotonic()
    send, receive = anyio.create_memory_object_stream[ScanItem](config.concurrency * QUEUE_SLOTS_PER_WORKER)
    stop_count = threading.Event()
    async with anyio.create_task_group() as outer:
        if precount:
            outer.start_soon(run.precount, stop_count)
        try:
            async with anyio.create_task_group() as pipeline:
                pipeline.start_soon(run.walk, send)
                async with receive:
                    for _ in range(config.concurrency):
                        pipeline.start_soon(run.worker, receive.clone())
        finally:
            stop_count.set()  # the count only feeds the display; once the files are done it has no use
    tally = run.tally
    result = UploadResult(
        uploaded=tally.uploaded,
        failed=tally.failed,
        bytes_uploaded=tally.bytes_uploaded,
        elapsed_s=time.monotonic() - started,
        failures=tuple(tally.failures),
    )
    run.emit(RunFinished(result))
    return result
