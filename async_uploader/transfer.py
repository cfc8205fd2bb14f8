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
from typing import Final

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from .budget import ByteBudget
from .chunks import read_chunk
from .config import UploadConfig
from .errors import FileError, VerificationError
from .events import (
    Event,
    EventHandler,
    FileDone,
    FileFailed,
    FilePlanned,
    FileSkipped,
    FileStarted,
    PartDone,
    ResultBuilder,
    RunFinished,
    TotalsKnown,
    UploadResult,
)
from .filters import PathFilter
from .multipart import Limits, upload_multipart
from .plan import object_key, object_metadata, plan_upload
from .providers.base import ObjectStore, StoredObject
from .report import failed_paths
from .scan import FileEntry, ScanItem, ScanOptions, ScanSkipped, count_tree, stat_paths, walk_tree
from .throttle import TokenBucket

log = logging.getLogger(__name__)

QUEUE_SLOTS_PER_WORKER: Final = 4


class _Run:
    def __init__(self, config: UploadConfig, store: ObjectStore | None, on_event: EventHandler | None) -> None:
        self.config = config
        self.store = store
        bandwidth = TokenBucket(config.max_bandwidth) if config.max_bandwidth else None
        self.limits = Limits(anyio.Semaphore(config.concurrency), ByteBudget(config.max_memory), bandwidth)
        self.scan_options = ScanOptions(PathFilter.from_flags(config.filters), config.follow_symlinks)
        self.tally = ResultBuilder()
        self._on_event = on_event

    def emit(self, event: Event) -> None:
        self.tally.add(event)
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
            if self.config.dry_run:
                self.emit(FilePlanned(entry.rel, key, entry.size, plan.part_count))
                return
            assert self.store is not None, "only a dry run goes without a store"
            metadata = object_metadata(entry.size, entry.mtime_ns, entry.mode)
            self.emit(FileStarted(entry.rel, key, entry.size, plan.part_count))
            started = time.monotonic()
            if plan.multipart:
                stored = await upload_multipart(
                    self.store, entry, key, plan, metadata, self.limits, self._part_reporter(entry.rel)
                )
            else:
                stored = await self._put_single(self.store, entry, key, metadata)
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
            self.emit(FileFailed(entry.rel, key, str(exc), entry.size))
        except FileNotFoundError:
            self.emit(FileFailed(entry.rel, key, "file vanished before it could be read", entry.size))
        except OSError as exc:
            self.emit(FileFailed(entry.rel, key, f"cannot read file: {exc.strerror or exc}", entry.size))
        except Exception as exc:  # a bug must cost one file, loudly, not the whole run
            log.exception("unexpected error uploading %s", entry.rel)
            self.emit(FileFailed(entry.rel, key, f"internal error: {type(exc).__name__}: {exc}", entry.size))

    def _part_reporter(self, rel: str) -> Callable[[int, int], None]:
        return lambda number, size: self.emit(PartDone(rel, number, size))

    async def _put_single(
        self, store: ObjectStore, entry: FileEntry, key: str, metadata: dict[str, str]
    ) -> StoredObject:
        async with self.limits.slots, self.limits.budget.reserve(entry.size):
            chunk = await read_chunk(entry.path, 0, entry.size, size=entry.size, mtime_ns=entry.mtime_ns)
            if self.limits.bandwidth is not None:
                await self.limits.bandwidth.consume(entry.size)
            stored = await store.put_object(key, chunk.data, checksum=chunk.checksum, metadata=metadata)
        if stored.checksum is not None and stored.checksum != chunk.checksum:
            raise VerificationError(f"store computed CRC32 {stored.checksum}, expected {chunk.checksum}")
        return stored

    async def worker(self, receive: ObjectReceiveStream[ScanItem]) -> None:
        async with receive:
            async for item in receive:
                if isinstance(item, FileEntry):
                    await self.upload_file(item)
                elif isinstance(item, ScanSkipped):
                    self.emit(FileSkipped(item.rel, None, item.reason))
                else:
                    self.emit(FileFailed(item.rel, None, item.reason))

    async def walk(self, send: ObjectSendStream[ScanItem]) -> None:
        async with send:
            if self.config.retry_failed is not None:
                rels = await anyio.to_thread.run_sync(list, failed_paths(self.config.retry_failed))
                items = stat_paths(self.config.source, rels, self.scan_options)
                self.emit(TotalsKnown(len(rels), 0))
            else:
                items = walk_tree(self.config.source, self.scan_options)
            async for item in items:
                await send.send(item)

    async def precount(self, stop: threading.Event) -> None:
        totals = await count_tree(self.config.source, stop, self.scan_options)
        if totals is not None:
            self.emit(TotalsKnown(totals.files, totals.bytes))


async def run_upload(
    config: UploadConfig, store: ObjectStore | None, on_event: EventHandler | None = None, *, precount: bool = True
) -> UploadResult:
    """Upload ``config.source`` to ``store``; returns when every file is uploaded or reported failed.

    ``store`` may be ``None`` only for a dry run, which plans every file and sends nothing.
    """
    run = _Run(config, store, on_event)
    send, receive = anyio.create_memory_object_stream[ScanItem](config.concurrency * QUEUE_SLOTS_PER_WORKER)
    stop_count = threading.Event()
    async with anyio.create_task_group() as outer:
        if precount and config.retry_failed is None:
            outer.start_soon(run.precount, stop_count)
        try:
            async with anyio.create_task_group() as pipeline:
                pipeline.start_soon(run.walk, send)
                async with receive:
                    for _ in range(config.concurrency):
                        pipeline.start_soon(run.worker, receive.clone())
        finally:
            stop_count.set()  # the count only feeds the display; once the files are done it has no use
    result = run.tally.result()
    run.emit(RunFinished(result))
    return result
