"""Typed progress events, and the ``UploadResult`` they add up to.

The engine emits events and never looks at who listens: the rich display, the plain log lines and an
application's ``on_event`` callback are all subscribers. Events carry plain values (paths, keys, sizes), never
the engine's own objects, so a subscriber cannot reach back into the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

MAX_FAILURES_KEPT: Final = 1000


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


@dataclass(frozen=True, slots=True)
class FileFailed:
    path: str
    key: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class UploadResult:
    """What a run did. Only counters grow with the number of files; failures are kept up to a cap."""

    uploaded: int = 0
    skipped: int = 0
    failed: int = 0
    bytes_uploaded: int = 0
    elapsed_s: float = 0.0
    failures: tuple[tuple[str, str], ...] = field(default=())
    """``(path, reason)`` for the first ``MAX_FAILURES_KEPT`` failed files."""

    @property
    def ok(self) -> bool:
        return self.failed == 0

    @property
    def throughput_bps(self) -> float:
        return self.bytes_uploaded / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class RunFinished:
    result: UploadResult


Event = TotalsKnown | FileStarted | PartDone | FileDone | FileFailed | RunFinished
EventHandler = Callable[[Event], None]
