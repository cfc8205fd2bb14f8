"""What the command line prints, and where: the display beside a run, the summaries, an error as one line.

Progress and summaries go to stderr, so that stdout carries only what scripts read: a dry run's plan and the
machine summary (``--summary-format json`` or ``github``).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import anyio

from ..cleanup import CleanupResult
from ..config import UploadConfig
from ..errors import UploaderError, ungroup_run_errors
from ..events import Event, UploadResult
from ..options import PROG
from .progress import LineConsole, PlainConsole, ProgressDisplay, stream_is_terminal
from .summaries import summary_json, summary_lines, summary_markdown, write_github_files

Runner = Callable[..., Coroutine[Any, Any, UploadResult]]
"""``run_config``, or ``run_distributed`` with its cluster: called as ``runner(config, on_event=...)``."""


def escape_what_streams_cannot_encode() -> None:
    """Print any name on stdout and stderr, whatever their encoding: what the encoding lacks becomes a backslash
    escape (``\\u65e5``) instead of a ``UnicodeEncodeError``.

    Windows gives a redirected stream its ANSI code page (cp1252), which has no CJK, say; a name that is not UTF-8
    is a lone surrogate, which no encoding takes. The encoding stays the one the environment chose
    (``PYTHONIOENCODING``, ``PYTHONUTF8=1``), which is what the reader of the stream expects.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)  # a TextIOWrapper's; not a replaced stream's
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def open_display(*, silent: bool, quiet: bool, verbose: bool) -> tuple[ProgressDisplay, bool]:
    """The display on stderr, and whether it needs the plain ticker: live on a terminal, else a progress line
    every few seconds; neither when ``silent`` (``--no-progress``, ``-q``, a dry run)."""
    on_terminal = stream_is_terminal(sys.stderr)
    live = on_terminal and not silent
    console: LineConsole
    if live:
        from rich.console import Console  # only for the live display: plain lines do without rich

        # A line is never wrapped at 80 columns; a name is printed as it is, not as the emoji ":name:" could be.
        console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
    else:
        console = PlainConsole(stderr=True)
    display = ProgressDisplay(console, live=live, verbose=verbose, quiet=quiet, out=PlainConsole())
    return display, not on_terminal and not silent


async def run_with_display(
    config: UploadConfig, display: ProgressDisplay, plain_ticker: bool, runner: Runner
) -> UploadResult:
    """Run ``config`` with ``display`` subscribed to its events, and the plain ticker beside it if asked."""

    def on_event(event: Event) -> None:
        display.handle(event)

    result = UploadResult()
    with ungroup_run_errors():
        async with anyio.create_task_group() as group:
            if plain_ticker:
                group.start_soon(display.tick_plain)
            try:
                with display:
                    result = await runner(config, on_event=on_event)
            finally:
                group.cancel_scope.cancel()
    return result


def print_summary(
    console: LineConsole, result: UploadResult, *, interrupted: bool = False, checksums_asked: bool = True
) -> None:
    for line in summary_lines(result, interrupted=interrupted, checksums_asked=checksums_asked):
        console.print(line, markup=False, highlight=False)


def print_machine_summary(
    summary_format: str,
    result: UploadResult,
    *,
    destination: str,
    report: Path | None,
    github_files: bool,
    interrupted: bool = False,
) -> None:
    """The ``--summary-format`` summary on stdout (nothing for ``text``); ``github_files``: also to the files
    the GitHub runner reads (job summary, step outputs). Written for a run cut short too, marked ``interrupted``:
    CI needs it most then."""
    if summary_format == "json":
        print(summary_json(result, destination=destination, report=report, interrupted=interrupted), flush=True)
    elif summary_format == "github":
        print(summary_markdown(result, destination=destination, interrupted=interrupted), end="", flush=True)
        if github_files:
            write_github_files(result, destination=destination, report=report, interrupted=interrupted)


def print_cleanup(result: CleanupResult, *, dry_run: bool, older_than: str) -> None:
    """One line per upload aborted (on stdout) or that could not be (stderr), then the totals."""
    verb = "would be aborted" if dry_run else "aborted"
    for upload in result.aborted:
        started = datetime.fromtimestamp(upload.initiated, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        print(f"{verb}: {upload.key} (started {started}, id {upload.upload_id})")
    for upload, reason in result.failed:
        print(f"{PROG}: could not abort {upload.key} (id {upload.upload_id}): {reason}", file=sys.stderr)
    younger = f"; {result.younger} younger than {older_than} left alone" if result.younger else ""
    print(f"{len(result.aborted)} incomplete uploads {verb}, {len(result.failed)} failed{younger}", file=sys.stderr)


def fail(code: int, error: UploaderError | str, debug: bool) -> NoReturn:
    """Exit with ``code`` after one line saying ``error`` (and its traceback first, with ``--debug``)."""
    if debug and isinstance(error, BaseException):
        traceback.print_exception(error)
    print(f"{PROG}: error: {error}", file=sys.stderr)
    sys.exit(code)
