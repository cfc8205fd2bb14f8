"""Typed progress events, and the ``UploadResult`` they add up to.

The engine emits events and never looks at who listens: the rich display, the plain log lines and an
application's ``on_event`` callback are all subscribers. Events carry plain values (paths, keys, sizes), never
the engine's own objects, so a subscriber cannot reach back into the run.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

MAX_FAILURES_KEPT: Final = 1000

Verification = Literal["checksum", "size"]
"""How a file's upload was confirmed: ``checksum``, the store's checksum of the whole object matched the one
computed from the file (or the store checked the whole body against it); ``size``, by size only: the store
returned no checksum (moto, a committed Azure block list, ``--checksum none``), so only the byte count
(the request's length, the HEAD after a multipart upload) says the object is the file."""

Compared = Literal["size", "mtime", "stat", "md5", "multipart-md5", "state-checksum", "stored-checksum", "no-checksum"]
"""How a file was found unchanged (``FileSkipped``) or changed (``FileDone``) against the object at its key:
``size`` the size alone (``--compare size``, or a size that differs); ``mtime`` size and mtime (the state file, or
the object's metadata); ``stat`` (``--compare checksum``) size, mtime and listed ETag as this machine remembers them,
so the file was not read; ``md5`` a single put's ETag; ``multipart-md5`` a multipart ETag, recomputed for the part
size that wrote it; ``state-checksum`` the whole-object checksum remembered in the state file with the listed ETag;
``stored-checksum`` the checksum the store keeps (one HEAD); ``no-checksum`` nothing to compare the content with, so
uploaded. ``None``: nothing was compared (no object at the key, ``--overwrite always`` or ``never``)."""


@dataclass(frozen=True, slots=True)
class TotalsKnown:
    """The pre-count finished: how many files and bytes the walk will find (the display's denominators)."""

    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class FileStarted:
    path: str
    key: str
    size: int
    parts: int


@dataclass(frozen=True, slots=True)
class PartDone:
    path: str
    part_number: int
    bytes: int


@dataclass(frozen=True, slots=True)
class FileDone:
    path: str
    key: str
    size: int
    etag: str
    checksum: str
    parts: int
    seconds: float
    resumed_parts: int = 0
    """Parts an earlier, interrupted run had uploaded and this one reused."""
    verified: Verification = "checksum"
    """Whether the store confirmed the whole object's checksum, or only its size was checked."""
    resumed_bytes: int = 0
    """Their bytes: part of ``size``, not sent by this run."""
    compared: Compared | None = None
    """How the object at the key was found to differ (``None``: there was none, or nothing was compared)."""


@dataclass(frozen=True, slots=True)
class FileFailed:
    path: str
    key: str | None
    reason: str
    size: int | None = None
    """The walked size, if the file got that far (not for a directory the walk could not read)."""


@dataclass(frozen=True, slots=True)
class FilePlanned:
    """``--dry-run``: this file would be uploaded as ``key`` in ``parts`` parts (1 = a single put)."""

    path: str
    key: str
    size: int
    parts: int


@dataclass(frozen=True, slots=True)
class FileRetried:
    """A request for this file failed transiently (or the file changed while read) and is being tried again."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class FileSkipped:
    """Not uploaded on purpose: already at the destination (``key`` set; routine on a re-run), or not a regular
    file (FIFO, socket, device, broken link; ``key`` is ``None``)."""

    path: str
    key: str | None
    reason: str
    size: int | None = None
    compared: Compared | None = None
    """How the object was found unchanged (``None``: not compared, as with ``--overwrite never``)."""


@dataclass(frozen=True, slots=True)
class FileNotStarted:
    """A run cut short ended before this file was uploaded: it never started, or (``in_flight``) it was being
    uploaded. ``--retry-failed`` takes it again. Sent only at the end of an interrupted run."""

    path: str
    size: int | None = None
    in_flight: bool = False


@dataclass(frozen=True, slots=True)
class PhaseStarted:
    """The run began a step that sends no file bytes yet ("checking the bucket", "listing the destination"): a
    display has something true to say before the first byte."""

    name: str


@dataclass(frozen=True, slots=True)
class ObjectDeleted:
    """``--delete``: ``key`` was under the destination prefix with no source file mapping to it, and is deleted."""

    key: str


@dataclass(frozen=True, slots=True)
class DeleteFailed:
    """``--delete``: ``key`` should have been deleted and was not; a failure of the run."""

    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class DeletePlanned:
    """``--delete --dry-run``: ``key`` would be deleted."""

    key: str


@dataclass(frozen=True, slots=True)
class DeletesWithheld:
    """``--delete`` deleted nothing because a guard held (files failed, part of the walk failed): ``reason``."""

    reason: str


@dataclass(frozen=True, slots=True)
class UploadResult:
    """What a run did. Only counters grow with the number of files; failures are kept up to a cap."""

    uploaded: int = 0
    skipped: int = 0
    failed: int = 0
    bytes_uploaded: int = 0
    elapsed_s: float = 0.0
    planned: int = 0
    """Files a ``--dry-run`` would upload."""
    bytes_planned: int = 0
    retries: int = 0
    """Requests tried again after a transient failure (and files re-read after changing)."""
    peak_requests: int = 0
    """Diagnostics: the most requests in flight at once (never above the concurrency)..."""
    peak_buffered_bytes: int = 0
    """...and the most file bytes held in memory at once (never above ``max_memory``)."""
    lowest_concurrency: int = 0
    """The lowest the adaptive concurrency went (below the configured one: the store throttled)."""
    checked_by_size: int = 0
    """Uploaded files whose whole-object checksum the store did not confirm (it returned none): checked by size
    only (``FileDone.verified``)."""
    failures: tuple[tuple[str, str], ...] = field(default=())
    """``(path, reason)`` for the first ``MAX_FAILURES_KEPT`` failed files."""
    not_started: int = 0
    """Files a run cut short never uploaded (never started, or in flight when it stopped)."""
    bytes_resumed: int = 0
    """Bytes of the uploaded files that an earlier run had sent (resumed parts): in ``bytes_uploaded``, not sent
    by this run."""
    compared: Mapping[str, int] = field(default_factory=dict)
    """Files uploaded or skipped, by how their object was compared (``Compared``; files compared with none are not
    counted)."""
    deleted: int = 0
    """``--delete``: keys deleted because no source file maps to them."""
    delete_failed: int = 0
    """``--delete``: keys that could not be deleted (also listed in ``failures``); the run is not ``ok``."""
    would_delete: int = 0
    """``--delete --dry-run``: keys that would be deleted."""

    @property
    def bytes_sent(self) -> int:
        """File bytes this run sent itself: ``bytes_uploaded`` less what resumed uploads already held."""
        return self.bytes_uploaded - self.bytes_resumed

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.delete_failed == 0

    @property
    def throughput_bps(self) -> float:
        """Bytes this run sent per second (resumed bytes were sent by another run, not at this rate)."""
        return self.bytes_sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The last event of every run: its result, or, for a run cut short (cancelled, or ended by a run-level error
    such as ``BucketError``), what it did until then, with ``interrupted`` set."""

    result: UploadResult
    interrupted: bool = False


Event = (
    TotalsKnown
    | FileStarted
    | PartDone
    | FileDone
    | FileFailed
    | FileSkipped
    | FilePlanned
    | FileRetried
    | RunFinished
    | FileNotStarted
    | PhaseStarted
    | ObjectDeleted
    | DeleteFailed
    | DeletePlanned
    | DeletesWithheld
)
EventHandler = Callable[[Event], None]


class ResultBuilder:
    """Adds events up into an ``UploadResult``: the run's one tally (``runner.run`` keeps it), whose result the
    ``RunFinished`` event carries to every subscriber, finished or cut short."""

    __slots__ = (
        "_failures",
        "_started",
        "bytes_planned",
        "bytes_resumed",
        "bytes_uploaded",
        "checked_by_size",
        "compared",
        "delete_failed",
        "deleted",
        "failed",
        "not_started",
        "planned",
        "retries",
        "skipped",
        "uploaded",
        "would_delete",
    )

    def __init__(self) -> None:
        self.uploaded = self.skipped = self.failed = self.bytes_uploaded = self.planned = self.bytes_planned = 0
        self.retries = self.checked_by_size = self.not_started = self.bytes_resumed = 0
        self.deleted = self.delete_failed = self.would_delete = 0
        self._failures: list[tuple[str, str]] = []
        self._started = time.monotonic()
        self.compared: Counter[str] = Counter()

    def add(self, event: Event) -> None:
        if isinstance(event, FileDone):
            self.uploaded += 1
            self.bytes_uploaded += event.size
            if event.verified == "size":
                self.checked_by_size += 1
            self.bytes_resumed += event.resumed_bytes
            if event.compared is not None:
                self.compared[event.compared] += 1
        elif isinstance(event, FileNotStarted):
            self.not_started += 1
        elif isinstance(event, FileSkipped):
            self.skipped += 1
            if event.compared is not None:
                self.compared[event.compared] += 1
        elif isinstance(event, FileRetried):
            self.retries += 1
        elif isinstance(event, FilePlanned):
            self.planned += 1
            self.bytes_planned += event.size
        elif isinstance(event, FileFailed):
            self.failed += 1
            if len(self._failures) < MAX_FAILURES_KEPT:
                self._failures.append((event.path, event.reason))
        elif isinstance(event, ObjectDeleted):
            self.deleted += 1
        elif isinstance(event, DeletePlanned):
            self.would_delete += 1
        elif isinstance(event, DeleteFailed):
            self.delete_failed += 1
            if len(self._failures) < MAX_FAILURES_KEPT:
                self._failures.append((event.key, f"not deleted: {event.reason}"))

    def result(self) -> UploadResult:
        return UploadResult(
            uploaded=self.uploaded,
            skipped=self.skipped,
            failed=self.failed,
            bytes_uploaded=self.bytes_uploaded,
            elapsed_s=time.monotonic() - self._started,
            planned=self.planned,
            bytes_planned=self.bytes_planned,
            retries=self.retries,
            checked_by_size=self.checked_by_size,
            failures=tuple(self._failures),
            not_started=self.not_started,
            bytes_resumed=self.bytes_resumed,
            compared=dict(self.compared),
            deleted=self.deleted,
            delete_failed=self.delete_failed,
            would_delete=self.would_delete,
        )
