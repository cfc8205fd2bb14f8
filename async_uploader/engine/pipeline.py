"""The engine: walk -> bounded queue -> a fixed set of workers -> the object store, emitting events.

Memory is flat by construction: the walk hands entries over a bounded stream (so a slow network pauses the
walk instead of piling entries up), there are exactly ``concurrency`` workers whatever the number of files,
every request holds one of ``concurrency`` slots, and every body holds its bytes in the ``ByteBudget``. Nothing
is kept per finished file. The engine knows no provider details, reads no report and never asks a subscriber
anything: it emits one event per thing that happened, and the caller (``runner.run``) adds them up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..config import UploadConfig
from ..errors import BucketError, FileChangedError, FileError, StoreError, UploaderError, ungroup_run_errors
from ..events import (
    Event,
    EventHandler,
    FileDone,
    FileFailed,
    FilePlanned,
    FileRetried,
    FileSkipped,
    FileStarted,
    PartDone,
    PhaseStarted,
    TotalsKnown,
    Verification,
)
from ..header_options import run_headers
from ..providers.base import ObjectHeaders, ObjectStore, StoredObject
from ..source.checksum import Checksum, verify_stored_checksum
from ..source.filters import PathFilter
from ..source.reader import FileReader
from ..source.scan import (
    FileEntry,
    ScanItem,
    ScanOptions,
    ScanSkipped,
    count_tree,
    file_batches,
    listed_batches,
    tree_batches,
)
from .adaptive import AdaptiveLimit, govern_cpu
from .budget import ByteBudget
from .compare import checksum_text
from .cut_short import report_not_started
from .deletion import WalkTally, delete_unmatched, seen_keys
from .destination import Decision, DestinationIndex
from .handout import Handout
from .headers import HeaderPlanner
from .limits import Limits
from .multipart import FileUpload, Journal, ResumePoint, upload_multipart
from .plan import UploadPlan, object_key, object_metadata, plan_upload
from .resume import abort_uploads, find_resume_point
from .retry import RetryPolicy
from .state import OpenUpload, StateFile
from .throttle import TokenBucket

log = logging.getLogger(__name__)

QUEUE_SLOTS_PER_WORKER: Final = 4
MAX_CHANGE_RETRIES: Final = 2


def _stat_again(entry: FileEntry) -> FileEntry:
    st = os.stat(entry.path)
    if not stat.S_ISREG(st.st_mode):
        raise FileChangedError("file is no longer a regular file")
    return FileEntry(entry.path, entry.rel, st.st_size, st.st_mtime_ns, st.st_mode)


async def _fresh_stat(entry: FileEntry) -> FileEntry:
    return await anyio.to_thread.run_sync(_stat_again, entry)


def _ignore(event: Event) -> None:
    pass


@dataclass(frozen=True, slots=True)
class RunStats:
    """What the engine measured of a run beside its events: how long it took, and its limits' high-water marks."""

    elapsed_s: float
    peak_requests: int
    peak_buffered_bytes: int
    lowest_concurrency: int
    delete_refused: str | None = None
    """``--delete`` deleted nothing because a guard held: the run's error, raised once it has ended."""


class _Run:
    def __init__(
        self,
        config: UploadConfig,
        store: ObjectStore | None,
        on_event: EventHandler | None,
        state: StateFile | None,
        write_probe_key: str | None,
        only_paths: Sequence[str] | None,
    ) -> None:
        self.config = config
        self.store = store
        self.emit: EventHandler = on_event if on_event is not None else _ignore
        self.files_seen = self.files_failed = 0
        if config.delete:  # its guards need the run's failures; a run without --delete pays nothing for them
            self.emit = self._counting_failures(self.emit)
        self._only_paths = only_paths
        self._write_probe_key = write_probe_key
        self._write_probe = anyio.Lock()
        self._wrote = False
        """A write of this run has succeeded: a refused one is then that file's failure, not the run's."""
        bandwidth = TokenBucket(config.max_bandwidth) if config.max_bandwidth else None
        retry = RetryPolicy(attempts=config.retries, deadline_s=config.retry_deadline_s)
        self.limits = Limits(AdaptiveLimit(config.concurrency), ByteBudget(config.max_memory), bandwidth, retry)
        self.scan_options = ScanOptions(PathFilter.from_flags(config.filters), config.follow_symlinks, config.shard)
        self.reader = FileReader()
        rules = (*config.header_rules, *config.header_rule)
        self.headers = HeaderPlanner(run_headers(config), guess=config.guess_mime_type, rules=rules)
        self.extra_metadata = dict(config.metadata)
        self.index = DestinationIndex(store, state, config, self.limits) if store and state else None
        self._exact_key = config.destination.key
        """A single file's key (``upload FILE``): the source is that file, not a tree."""
        if self._exact_key is not None:
            self.handout = Handout(file_batches(config.source, self.scan_options, only_paths))
        elif only_paths is not None:
            self.handout = Handout(listed_batches(config.source, only_paths, self.scan_options))
        else:
            self.handout = Handout(tree_batches(config.source, self.scan_options))
        self.in_hand: list[FileEntry | None] = [None] * config.concurrency
        """Each worker's file while it uploads it: a run cut short reports these as not finished."""

    def _counting_failures(self, emit: EventHandler) -> EventHandler:
        def counting(event: Event) -> None:
            if isinstance(event, FileFailed):
                self.files_failed += 1
            emit(event)

        return counting

    async def upload_file(self, entry: FileEntry) -> None:
        """Upload one file; every outcome becomes exactly one ``FileDone`` or ``FileFailed``.

        A file that changes while it is read is tried again from a fresh stat, a few times; a file that keeps
        changing fails. Transient store errors are retried inside, per request, within the file's deadline.
        """
        key: str | None = None
        try:
            key = self.key_of(entry.rel)
            if self.config.dry_run:
                plan = self._plan(entry)
                self.emit(FilePlanned(entry.rel, key, entry.size, plan.part_count))
                return
            for change in range(MAX_CHANGE_RETRIES + 1):
                try:
                    await self._upload_entry(entry, key)
                    return
                except FileChangedError as exc:
                    if change == MAX_CHANGE_RETRIES:
                        raise FileChangedError(f"{exc} (it kept changing over {change + 1} tries)") from None
                    self.emit(FileRetried(entry.rel, str(exc)))
                    entry = await _fresh_stat(entry)
        except FileError as exc:
            if isinstance(exc, StoreError) and exc.denied and not self._wrote and self.store is not None:
                # The run's first writes are its write check (no probe: any would leave something behind for a
                # role without abort or delete rights): refused before any write succeeded, they end the run.
                raise BucketError(f"these credentials cannot write to {self.store.location}: {exc}") from exc
            self.emit(FileFailed(entry.rel, key, str(exc), entry.size))
        except FileNotFoundError:
            self.emit(FileFailed(entry.rel, key, "file vanished before it could be read", entry.size))
        except OSError as exc:
            self.emit(FileFailed(entry.rel, key, f"cannot read file: {exc.strerror or exc}", entry.size))
        except UploaderError:
            raise  # not the file's fault: the destination refused the run (write access), which ends it
        except Exception as exc:  # a bug must cost one file, loudly, not the whole run
            log.exception("unexpected error uploading %s", entry.rel)
            self.emit(FileFailed(entry.rel, key, f"internal error: {type(exc).__name__}: {exc}", entry.size))

    def key_of(self, rel: str) -> str:
        """The object key of the file at ``rel``: below the prefix, or the one key a single file goes to."""
        if self._exact_key is None:
            return object_key(self.config.destination.prefix, rel)
        return object_key("", self._exact_key)

    def _plan(self, entry: FileEntry) -> UploadPlan:
        return plan_upload(
            entry.size, part_size=self.config.part_size, multipart_threshold=self.config.multipart_threshold
        )

    async def _upload_entry(self, entry: FileEntry, key: str) -> None:
        assert self.store is not None, "only a dry run goes without a store"
        assert self.index is not None
        plan = self._plan(entry)

        def on_retry(exc: FileError) -> None:
            self.emit(FileRetried(entry.rel, str(exc)))

        decision = await self.index.skip_reason(entry, key, on_retry=on_retry)
        if decision.skip is not None:
            self.emit(FileSkipped(entry.rel, key, decision.skip, entry.size, decision.compared))
            return
        await self._ensure_writable(self.store)
        deadline = self.limits.retry.deadline()  # from here: waiting for the listing is not retrying
        metadata = object_metadata(entry.size, entry.mtime_ns, entry.mode)
        if self.extra_metadata:
            metadata = {**self.extra_metadata, **metadata}
        headers = self.headers.for_file(entry.rel, key)
        self.emit(FileStarted(entry.rel, key, entry.size, plan.part_count))
        started = time.monotonic()
        resumed = resumed_bytes = 0
        sent: Checksum | None = None
        if plan.multipart:
            job = FileUpload(
                self.store,
                entry,
                key,
                plan,
                self.limits,
                self.config.checksum,
                deadline,
                on_retry=on_retry,
                headers=headers,
            )
            resume = await self._resume_point(job, self.index)
            if resume is not None:
                resumed = len(resume.parts)
                resumed_bytes = sum(min(plan.part_size, entry.size - (n - 1) * plan.part_size) for n in resume.parts)
            index = self.index

            def completed(checksum: Checksum) -> None:
                nonlocal sent
                sent = checksum

            def opened(upload_id: str, mode: str) -> None:
                record = OpenUpload(upload_id, entry.size, entry.mtime_ns, plan.part_size, mode)
                index.upload_opened(key, record)

            stored = await upload_multipart(
                job,
                metadata,
                self._part_reporter(entry.rel),
                resume=resume,
                journal=Journal(opened, lambda upload_id: index.upload_closed(key, upload_id)),
                keep_partial=self.config.keep_partial,
                on_full_checksum=completed,
            )
        else:
            stored, sent = await self._put_single(self.store, entry, key, metadata, headers, deadline, on_retry)
        self._wrote = True
        self.index.remember(key, entry, stored.etag, checksum_text(sent))
        self.emit(
            FileDone(
                entry.rel,
                key,
                entry.size,
                stored.etag,
                stored.checksum or "",
                plan.part_count,
                time.monotonic() - started,
                resumed,
                self._verification(stored),
                resumed_bytes,
                decision.compared,
            )
        )

    def _verification(self, stored: StoredObject) -> Verification:
        """``checksum`` when the store confirmed the checksum sent (one it answered was compared and matched, or it
        checked the body itself); ``size`` when it answered none, which must not pass for a verified object."""
        confirmed = stored.checksum is not None or stored.body_verified
        return "checksum" if self.config.checksum is not None and confirmed else "size"

    async def _ensure_writable(self, store: ObjectStore) -> None:
        """Prove write access once, before the first upload: a run with nothing to upload needs none. A refusal
        is the run's error (``BucketError``), not a file's: it ends the run."""
        if self._write_probe_key is None:
            return
        async with self._write_probe:
            if self._write_probe_key is not None:
                await store.check_writable(self._write_probe_key, headers=self.headers.run)
                self._write_probe_key = None

    async def _resume_point(self, job: FileUpload, index: DestinationIndex) -> ResumePoint | None:
        open_uploads = await index.open_uploads(job.key)
        if not open_uploads:
            return None
        resume, unusable = await find_resume_point(job, open_uploads)
        await abort_uploads(job.store, job.key, unusable, self.limits.retry)
        for upload_id in unusable:
            index.upload_closed(job.key, upload_id)
        return resume

    def _part_reporter(self, rel: str) -> Callable[[int, int], None]:
        return lambda number, size: self.emit(PartDone(rel, number, size))

    async def _put_single(
        self,
        store: ObjectStore,
        entry: FileEntry,
        key: str,
        metadata: dict[str, str],
        headers: ObjectHeaders,
        deadline: float,
        on_retry: Callable[[FileError], None],
    ) -> tuple[StoredObject, Checksum | None]:
        """The store's answer, and the checksum sent with the body (the whole file's)."""
        algorithm = self.config.checksum
        reader = self.reader

        async def send() -> tuple[StoredObject, Checksum | None]:
            chunk = await reader.read(entry.path, size=entry.size, mtime_ns=entry.mtime_ns, algorithm=algorithm)
            stored = await store.put_object(
                key, chunk.body, checksum=chunk.checksum, metadata=metadata, headers=headers
            )
            verify_stored_checksum(stored.checksum, chunk.checksum)
            return stored, chunk.checksum

        return await self.limits.send_body(entry.size, send, deadline=deadline, on_retry=on_retry)

    async def worker(self, receive: MemoryObjectReceiveStream[ScanItem], slot: int) -> None:
        in_hand = self.in_hand
        async with receive:
            while True:
                # An item already queued is taken without the stream's checkpoint (a turn of the loop per file);
                # uploading it awaits soon enough.
                try:
                    item = receive.receive_nowait()
                except anyio.WouldBlock:
                    try:
                        item = await receive.receive()
                    except anyio.EndOfStream:
                        return
                except anyio.EndOfStream:
                    return
                if isinstance(item, FileEntry):
                    in_hand[slot] = item
                    await self.upload_file(item)
                    in_hand[slot] = None
                elif isinstance(item, ScanSkipped):
                    self.emit(FileSkipped(item.rel, None, item.reason))
                else:
                    self.emit(FileFailed(item.rel, None, item.reason))

    async def walk(self, send: MemoryObjectSendStream[ScanItem]) -> None:
        handout = self.handout
        async with send:
            if self._only_paths is not None:
                self.emit(TotalsKnown(len(self._only_paths), 0))
            while await anyio.to_thread.run_sync(handout.take_batch):
                if self.config.delete and self.index is not None:
                    keys, files = seen_keys(self.config.destination.prefix, handout.held)
                    self.index.note_seen(keys)
                    self.files_seen += files
                skipped = await self._known_skips(handout.held)
                if skipped:
                    handout.held = [item for item in handout.held if id(item) not in skipped]
                for item in handout.held:
                    try:
                        send.send_nowait(item)  # room in the queue: no turn of the loop per file
                    except anyio.WouldBlock:
                        await send.send(item)
                    handout.position += 1

    async def _known_skips(self, batch: list[ScanItem]) -> set[int]:
        """The files of ``batch`` already there, as far as the listing and the state file say, and, with
        ``--compare checksum``, its small files whose content the listing shows: no worker needed."""
        if self.index is None or self.config.dry_run or not self.index.skips_known_now():
            return set()
        candidates: list[tuple[FileEntry, str]] = []
        for item in batch:
            if isinstance(item, FileEntry):
                with contextlib.suppress(FileError):  # a worker reports it
                    candidates.append((item, self.key_of(item.rel)))
        compared = self.index.skip_compared
        decided: list[Decision | None] = [
            None if reason is None else Decision(reason, compared) for reason in self.index.known_skips(candidates)
        ]
        if self.index.hashes_in_walk:
            rest = [i for i, decision in enumerate(decided) if decision is None]
            for i, decision in zip(rest, await self.index.content_skips([candidates[i] for i in rest]), strict=True):
                decided[i] = decision
        skipped: set[int] = set()
        for (entry, key), decision in zip(candidates, decided, strict=True):
            if decision is not None and decision.skip is not None:
                self.emit(FileSkipped(entry.rel, key, decision.skip, entry.size, decision.compared))
                skipped.add(id(entry))
        return skipped

    async def count_totals(self, stop: threading.Event) -> None:
        if self._exact_key is not None:  # one file: the walk is its stat
            batches = await anyio.to_thread.run_sync(list, file_batches(self.config.source, self.scan_options))
            sizes = [item.size for batch in batches for item in batch if isinstance(item, FileEntry)]
            self.emit(TotalsKnown(len(sizes), sum(sizes)))
            return
        totals = await count_tree(self.config.source, stop, self.scan_options)
        if totals is not None:
            self.emit(TotalsKnown(totals.files, totals.bytes))


async def run_upload(
    config: UploadConfig,
    store: ObjectStore | None,
    on_event: EventHandler | None = None,
    *,
    only_paths: Sequence[str] | None = None,
    count_totals: bool = True,
    write_probe_key: str | None = None,
) -> RunStats:
    """Upload ``config.source`` to ``store``; returns when every file is uploaded, skipped or reported failed.

    Every file's outcome is an event to ``on_event`` (which adds them up: ``runner.run`` does). ``store`` may be
    ``None`` only for a dry run, which plans every file and sends nothing. ``only_paths``: upload only these
    paths relative to the source (``--retry-failed``), not the whole tree. ``count_totals``: count the tree
    beside the upload, for the ``TotalsKnown`` a progress display shows (a second walk: off when nothing shows
    it). With ``write_probe_key``, write access is proven with it before the first upload; a refusal raises the
    store's run-level error (``BucketError``...) after cancelling the rest of the run.
    """
    state = StateFile(config.state_file, store.location) if store is not None else None
    started = time.monotonic()
    try:
        run = _Run(config, store, on_event, state, write_probe_key, only_paths)
        try:
            # Files' failures never escape a worker; what does is a run-level error, raised bare as promised.
            with ungroup_run_errors():
                await _run_pipeline(run, count_totals and only_paths is None)
                refused = None
                if config.delete and run.index is not None and state is not None:
                    tally = WalkTally(run.files_seen, run.files_failed, await run.index.listing_problem())
                    refused = await delete_unmatched(
                        config,
                        run.store,
                        state,
                        run.limits,
                        run.emit,
                        tally,
                        path_filter=run.scan_options.path_filter,
                        keep=write_probe_key,
                    )
        finally:
            run.reader.close()
            run.handout.close()
    finally:
        if state is not None:
            state.close()
    slots = run.limits.slots
    return RunStats(time.monotonic() - started, slots.peak_in_use, run.limits.budget.peak_used, slots.lowest, refused)


async def _run_pipeline(run: _Run, count_totals: bool) -> None:
    config = run.config
    send, receive = anyio.create_memory_object_stream[ScanItem](config.concurrency * QUEUE_SLOTS_PER_WORKER)
    stop_count = threading.Event()
    queued = receive.clone()  # kept open to the end: what is still queued when the run is cut short
    try:
        async with anyio.create_task_group() as outer:
            if count_totals:
                outer.start_soon(run.count_totals, stop_count)
            if config.max_cpu_percent is not None:
                outer.start_soon(govern_cpu, run.limits.slots, config.max_cpu_percent)
            if run.index is not None:
                run.emit(PhaseStarted("listing the destination"))
                outer.start_soon(run.index.load, config.source, run.scan_options.path_filter)
            try:
                async with anyio.create_task_group() as pipeline:
                    pipeline.start_soon(run.walk, send)
                    async with receive:
                        for slot in range(config.concurrency):
                            pipeline.start_soon(run.worker, receive.clone(), slot)
                if config.delete and run.index is not None:
                    await run.index.listing_problem()  # --delete needs the whole listing, even with no file
            finally:
                stop_count.set()  # the count only feeds the display; once the files are done it has no use
                outer.cancel_scope.cancel()  # and the CPU governor has nothing left to govern
    except BaseException:
        with anyio.CancelScope(shield=True):  # cut short: say what was never done, then go on ending
            try:
                await report_not_started(run.emit, run.in_hand, run.handout, queued)
            except Exception:  # the run's own error or cancellation must win
                log.warning("could not list the files not started", exc_info=True)
        raise
    finally:
        queued.close()
