"""Progress for people: a rich live display on a terminal, plain lines in CI logs.

The display is an event subscriber: the engine never knows it exists. Handling an event is a few counter
updates; redrawing happens on rich's own refresh clock (10 per second) or, in plain mode, on a ticker that
prints at most one line every few seconds.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any, Final, Protocol, TextIO

import anyio

from ..events import (
    DeleteFailed,
    DeletePlanned,
    DeletesWithheld,
    Event,
    FileDone,
    FileFailed,
    FileNotStarted,
    FilePlanned,
    FileRetried,
    FileSkipped,
    FileStarted,
    ObjectDeleted,
    PartDone,
    PhaseStarted,
    RunFinished,
    TotalsKnown,
    UploadResult,
)
from .units import format_bytes, format_duration

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

PLAIN_INTERVAL_S: Final = 5.0
TAB_SIZE: Final = 8
# What rich removes from printed text (bell, backspace, vertical tab, form feed, carriage return): a file name
# holding a carriage return must not overwrite the log line it is on.
_STRIPPED_CONTROLS: Final = dict.fromkeys((7, 8, 11, 12, 13))
MAX_FILE_BARS: Final = 4
FILE_NAME_WIDTH: Final = 20
"""Room for a large file's name on its bar: with the columns beside it, a line fits 80 columns."""


class LineConsole(Protocol):
    """Where the display prints its lines: a rich ``Console``, or a ``PlainConsole`` where nothing is live."""

    def print(self, *objects: Any, markup: bool | None = None, highlight: bool | None = None) -> None: ...


class PlainConsole:
    """Lines of text to a stream, as rich prints them without markup or highlighting, without importing rich.

    For logs and pipes, where nothing is redrawn: importing rich and its tables costs megabytes that a process
    printing a line every few seconds need not pay. Like rich with ``soft_wrap=True`` and ``emoji=False``: no
    wrapping, tabs expanded to 8 columns, control characters that move the cursor removed, flushed line by line.
    The stream is looked up at each print (``sys.stderr`` or ``sys.stdout`` unless one is given), as rich does.
    """

    def __init__(self, file: TextIO | None = None, *, stderr: bool = False) -> None:
        self._file = file
        self.stderr = stderr

    @property
    def file(self) -> TextIO:
        return self._file or (sys.stderr if self.stderr else sys.stdout)

    def print(self, *objects: Any, markup: bool | None = None, highlight: bool | None = None) -> None:
        text = " ".join(str(item) for item in objects).translate(_STRIPPED_CONTROLS)
        if "\t" in text:
            text = "\n".join(line.expandtabs(TAB_SIZE) for line in text.split("\n"))
        out = self.file
        out.write(text + "\n")
        out.flush()


def stream_is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` takes a live display: rich's own test, so the choice is the one it would make.

    ``TTY_COMPATIBLE=1`` or ``0`` decides; else a non-empty ``FORCE_COLOR`` says yes, an empty one no; else isatty.
    """
    compatible = os.environ.get("TTY_COMPATIBLE", "")
    if compatible in {"0", "1"}:
        return compatible == "1"
    force_color = os.environ.get("FORCE_COLOR")
    if force_color is not None:
        return force_color != ""
    try:
        return stream.isatty()
    except ValueError:  # closed
        return False


class ProgressDisplay:
    """Counts what the events say, and shows it live (``live=True``) or as periodic plain lines."""

    def __init__(
        self,
        console: LineConsole,
        *,
        live: bool,
        verbose: bool = False,
        quiet: bool = False,
        out: LineConsole | None = None,
    ) -> None:
        self.console = console
        self.out = out or console  # where --dry-run lists its plan: stdout, for scripts
        self.verbose = verbose
        self.quiet = quiet
        self.uploaded = self.skipped = self.failed = 0
        """The label's counts; the run's own tally is the ``RunFinished`` result."""
        self.result: UploadResult | None = None
        """The run's result from its last event (``RunFinished``), once it came; a run cut short sends one too."""
        self.interrupted = False
        self.phase: str | None = None
        """What the run is doing before its first file ("listing the destination"); ``None`` once files move."""
        self._work_started: float | None = None
        self.files_total: int | None = None
        self.bytes_total: int | None = None
        self.bytes_done = 0
        self._bytes_skipped = 0
        self._partial: dict[str, int] = {}  # bytes of parts landed, per multipart file in flight
        self._file_bars: dict[str, TaskID] = {}
        self._started = time.monotonic()
        self._seen_work = False
        self._progress: Progress | None = None
        self._overall: TaskID | None = None
        if live:
            from rich.console import Console  # only here: plain lines never need rich

            from .live import live_progress

            if not isinstance(console, Console):
                raise TypeError("a live display draws on a rich Console")
            self._progress = live_progress(console, self.eta_text)
            self._overall = self._progress.add_task(self.live_label(), total=None)

    def __enter__(self) -> ProgressDisplay:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    @property
    def files_done(self) -> int:
        """Files finished one way or another: uploaded, skipped or failed."""
        return self.uploaded + self.skipped + self.failed

    def _files_label(self) -> str:
        if self.phase is not None:
            return f"{self.phase} ..."
        total = "?" if self.files_total is None else f"{self.files_total:,}"
        counts = [f"{self.uploaded:,} uploaded"]
        if self.skipped:
            counts.append(f"{self.skipped:,} skipped")
        if self.failed:
            counts.append(f"{self.failed:,} failed")
        return f"{self.files_done:,}/{total} files ({', '.join(counts)})"

    def live_label(self) -> str:
        """The live display's short label (its line must fit 80 columns): files done of the total, and the
        failures, or the phase the run is in before its first file."""
        if self.phase is not None:
            return f"{self.phase} ..."
        total = "?" if self.files_total is None else f"{self.files_total:,}"
        failed = f", {self.failed:,} failed" if self.failed else ""
        return f"{self.files_done:,}/{total} files{failed}"

    def elapsed_s(self) -> float:
        return time.monotonic() - self._started

    def eta_s(self) -> float | None:
        """Seconds left: the longer of the bytes left at the byte rate and the files left at the file rate, both
        since the first file moved. Bytes alone would say "0:04" through a long tail of small files, each of
        which costs requests, not bytes. ``None`` until the totals and some progress are known."""
        if self._work_started is None or self.files_total is None:
            return None
        working = time.monotonic() - self._work_started
        if working <= 0:
            return None
        eta = 0.0
        if self.bytes_total and self.bytes_done:
            eta = max(0, self.bytes_total - self.bytes_done) / (self.bytes_done / working)
        if self.files_done:
            eta = max(eta, max(0, self.files_total - self.files_done) / (self.files_done / working))
        elif not self.bytes_done:
            return None
        return eta

    def handle(self, event: Event) -> None:
        """Count ``event`` and print what it asks for; called on the event loop for every event, so it is cheap."""
        self._seen_work = True
        if self._work_started is None and not isinstance(event, PhaseStarted | TotalsKnown):
            self._work_started = time.monotonic()
            if self.phase is not None:
                self.phase = None
                self._relabel()
        if isinstance(event, PartDone):
            self._partial[event.path] = self._partial.get(event.path, 0) + event.bytes
            self._advance(event.bytes)
            bar = self._file_bars.get(event.path)
            if bar is not None and self._progress is not None:
                self._progress.advance(bar, event.bytes)
        elif isinstance(event, FileStarted):
            if self._progress is not None and event.parts > 1 and len(self._file_bars) < MAX_FILE_BARS:
                self._file_bars[event.path] = self._progress.add_task(f"  {_shorten(event.path)}", total=event.size)
        elif isinstance(event, FileDone | FileFailed):
            size = event.size if isinstance(event, FileDone) else 0
            if isinstance(event, FileDone) and event.resumed_bytes:
                size -= event.resumed_bytes  # sent by an earlier run: not this run's progress, nor its speed
                self._discount(event.resumed_bytes)
            self._advance(size - self._partial.pop(event.path, 0))
            if isinstance(event, FileDone):
                self.uploaded += 1
                if self.verbose:
                    self.console.print(f"uploaded {event.path} -> {event.key}", markup=False, highlight=False)
            else:
                self.failed += 1
                self.console.print(f"failed {event.path}: {event.reason}", markup=False, highlight=False)
            bar = self._file_bars.pop(event.path, None)
            if bar is not None and self._progress is not None:
                self._progress.remove_task(bar)
            self._relabel()
        elif isinstance(event, FileSkipped):
            self.skipped += 1
            already_there = event.key is not None
            if already_there and event.size:
                self._discount(event.size)
            # A file already at the destination is routine (a re-run skips thousands); a FIFO is a warning.
            if (self.verbose or not already_there) and not self.quiet:
                self.console.print(f"skipped {event.path}: {event.reason}", markup=False, highlight=False)
            self._relabel()
        elif isinstance(event, FileRetried):
            if self.verbose:
                self.console.print(f"retrying {event.path}: {event.reason}", markup=False, highlight=False)
        elif isinstance(event, FilePlanned):
            kind = "single put" if event.parts == 1 else f"{event.parts} parts"
            self.out.print(
                f"would upload {event.path} -> {event.key} ({format_bytes(event.size)}, {kind})",
                markup=False,
                highlight=False,
            )
        elif isinstance(event, TotalsKnown):
            self.files_total, self.bytes_total = event.files, max(0, event.bytes - self._bytes_skipped)
            if self._progress is not None and self._overall is not None:
                self._progress.update(self._overall, total=event.bytes)
            self._relabel()
        elif isinstance(event, PhaseStarted):
            if self._work_started is None:
                self.phase = event.name
                self._relabel()
        elif isinstance(event, FileNotStarted | DeletesWithheld):
            pass  # counted in the result; the summary says how many (a withheld deletion: a logged warning)
        elif isinstance(event, DeletePlanned):
            self.out.print(f"would delete {event.key}", markup=False, highlight=False)
        elif isinstance(event, ObjectDeleted):
            if self.verbose:
                self.console.print(f"deleted {event.key}", markup=False, highlight=False)
        elif isinstance(event, DeleteFailed):
            self.console.print(f"failed to delete {event.key}: {event.reason}", markup=False, highlight=False)
        elif isinstance(event, RunFinished):
            self.result = event.result
            self.interrupted = event.interrupted
            if not event.interrupted and self._progress is not None and self._overall is not None:
                self._progress.update(self._overall, total=self.bytes_done, completed=self.bytes_done)

    def _advance(self, count: int) -> None:
        self.bytes_done += count
        if self._progress is not None and self._overall is not None:
            self._progress.advance(self._overall, count)

    def _discount(self, count: int) -> None:
        """Bytes that need no upload leave the total, rather than count as done: they would make the speed
        and the ETA lie (10 GB skipped in a second is not 10 GB/s)."""
        self._bytes_skipped += count
        if self.bytes_total is not None:  # else the totals, when they come, are counted net of it
            self.bytes_total = max(0, self.bytes_total - count)
            if self._progress is not None and self._overall is not None:
                self._progress.update(self._overall, total=self.bytes_total)

    def _relabel(self) -> None:
        if self._progress is not None and self._overall is not None:
            self._progress.update(self._overall, description=self.live_label())

    def eta_text(self) -> str:
        eta = self.eta_s()
        return "ETA -:--" if eta is None else f"ETA {format_duration(eta)}"

    def plain_line(self) -> str:
        """Where the run is, in one line for a log: files, bytes, rate and, once the totals are known, the ETA;
        before the first file, the phase the run is in."""
        elapsed = time.monotonic() - self._started
        if self.phase is not None:
            return f"[{format_duration(elapsed)}] {self.phase} ..."
        working = time.monotonic() - self._work_started if self._work_started is not None else 0.0
        rate = self.bytes_done / working if working > 0 else 0.0
        line = f"[{format_duration(elapsed)}] {self._files_label()}, {format_bytes(self.bytes_done)}"
        if self.bytes_total:
            line += f" of {format_bytes(self.bytes_total)} ({100 * self.bytes_done / self.bytes_total:.0f}%)"
        line += f", {format_bytes(rate)}/s"
        eta = self.eta_s()
        if eta is not None:
            line += f", ETA {format_duration(eta)}"
        return line

    async def tick_plain(self, interval_s: float = PLAIN_INTERVAL_S) -> None:
        """Print a plain progress line every ``interval_s`` until cancelled; for logs, not terminals."""
        while True:
            await anyio.sleep(interval_s)
            if self._seen_work:  # nothing to say while the preflight is still running
                self.console.print(self.plain_line(), markup=False, highlight=False)


def _shorten(path: str, width: int = FILE_NAME_WIDTH) -> str:
    return path if len(path) <= width else "..." + path[-(width - 3) :]
