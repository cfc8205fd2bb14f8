"""The display as a subscriber: what it counts from events, and what its plain lines say."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from async_uploader.cli.progress import PlainConsole, ProgressDisplay, stream_is_terminal
from async_uploader.cli.summaries import summary_lines
from async_uploader.cli.units import format_bytes, format_duration
from async_uploader.events import (
    Event,
    FileDone,
    FileFailed,
    FileSkipped,
    FileStarted,
    PartDone,
    PhaseStarted,
    RunFinished,
    TotalsKnown,
    UploadResult,
)


def plain_display() -> tuple[ProgressDisplay, io.StringIO]:
    out = io.StringIO()
    return ProgressDisplay(Console(file=out, force_terminal=False, width=200), live=False), out


def test_bytes_count_parts_once_and_totals_come_from_the_precount() -> None:
    display, _ = plain_display()
    display.handle(TotalsKnown(files=2, bytes=30))
    display.handle(FileStarted("big", "k/big", 20, 2))
    display.handle(PartDone("big", 1, 10))
    assert display.bytes_done == 10
    display.handle(PartDone("big", 2, 10))
    display.handle(FileDone("big", "k/big", 20, '"e-2"', "", 2, 1.0))
    display.handle(FileDone("small", "k/small", 10, '"e"', "", 1, 0.1))
    assert (display.bytes_done, display.files_done, display.failed) == (30, 2, 0)
    line = display.plain_line()
    assert "2/2 files" in line
    assert "(100%)" in line
    assert "\x1b[" not in line


def test_a_failed_multipart_file_does_not_leave_bytes_half_counted() -> None:
    display, out = plain_display()
    display.handle(TotalsKnown(files=1, bytes=20))
    display.handle(FileStarted("big", "big", 20, 2))
    display.handle(PartDone("big", 1, 10))
    display.handle(FileFailed("big", "big", "UploadPart 2 failed: boom"))
    assert display.failed == 1
    assert display.bytes_done == 0
    assert "failed big: UploadPart 2 failed: boom" in out.getvalue()


def test_formatting_helpers() -> None:
    assert format_bytes(0) == "0 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(5 * 1024**4) == "5.0 TiB"
    assert format_duration(59) == "0:59"
    assert format_duration(3661) == "1:01:01"


@pytest.mark.parametrize("totals_first", [True, False])
def test_files_already_there_leave_the_byte_total_quietly(totals_first: bool) -> None:
    console = Console(file=io.StringIO(), width=200)
    display = ProgressDisplay(console, live=False)
    skips = [FileSkipped(f"f{i}", f"p/f{i}", "unchanged", 1000) for i in range(50)]
    events: list[Event] = [TotalsKnown(51, 51_000), *skips] if totals_first else [*skips, TotalsKnown(51, 51_000)]
    for event in events:
        display.handle(event)
    display.handle(FileSkipped("pipe", None, "a FIFO, not a regular file"))
    assert display.bytes_total == 1000  # the one file still to upload: speed and ETA are about it alone
    assert display.bytes_done == 0
    printed = console.file.getvalue()  # type: ignore[attr-defined]
    assert "unchanged" not in printed
    assert "skipped pipe: a FIFO" in printed
    assert "51/51 files (0 uploaded, 51 skipped)" in display.plain_line()


@pytest.mark.parametrize(
    "text",
    [
        "[0:05] 3/10 files (3 uploaded), 1.5 MiB of 3.0 MiB (50%), 300.0 KiB/s, ETA 0:05",
        "uploaded [bold]x[/bold] -> p/[red]x",  # markup stays text
        "failed a\tb/c\td.txt: UploadPart 2 failed:\tboom",
        "skipped weird\rname\x07\x08\x0b\x0c: a FIFO, not a regular file",
        "failed " + "deep/" * 60 + "f: reason",  # longer than any terminal: never wrapped
        "failed two\nlines:\tx",
        "uploaded caf\u00e9 \u65e5\u672c -> k",
        "",
    ],
)
def test_plain_lines_are_what_rich_prints(text: str) -> None:
    # Without a terminal the CLI prints through PlainConsole and never imports rich: the bytes must not change.
    ours, theirs = io.StringIO(), io.StringIO()
    PlainConsole(ours).print(text, markup=False, highlight=False)
    Console(file=theirs, soft_wrap=True, highlight=False, emoji=False).print(text, markup=False, highlight=False)
    assert ours.getvalue() == theirs.getvalue()


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"FORCE_COLOR": "1"},
        {"FORCE_COLOR": ""},
        {"TTY_COMPATIBLE": "1"},
        {"TTY_COMPATIBLE": "0", "FORCE_COLOR": "1"},
    ],
)
@pytest.mark.parametrize("tty", [False, True])
def test_the_live_display_is_chosen_as_rich_would(
    env: dict[str, str], tty: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    class Stream(io.StringIO):
        def isatty(self) -> bool:
            return tty

    stream = Stream()
    assert stream_is_terminal(stream) == Console(file=stream).is_terminal


def test_the_run_s_last_event_gives_the_result_to_print_even_for_a_run_cut_short() -> None:
    display, _ = plain_display()
    display.handle(FileDone("a", "k/a", 10, '"e"', "", 1, 0.1))
    assert display.result is None
    so_far = UploadResult(uploaded=1, bytes_uploaded=10, elapsed_s=1.0)
    display.handle(RunFinished(so_far, interrupted=True))
    assert display.result == so_far
    assert summary_lines(display.result)[0].startswith("Uploaded 1 files (10 B) in 1.0 s")


def test_before_the_first_file_the_display_says_what_the_run_is_doing() -> None:
    display, _ = plain_display()
    display.handle(PhaseStarted("checking the bucket"))
    assert display.plain_line().endswith("] checking the bucket ...")
    display.handle(PhaseStarted("listing the destination"))
    display.handle(TotalsKnown(files=3, bytes=30))
    assert display.plain_line().endswith("] listing the destination ...")
    display.handle(FileDone("a", "k/a", 10, '"e"', "", 1, 0.1))
    assert "1/3 files (1 uploaded)" in display.plain_line()
    display.handle(PhaseStarted("listing the destination"))  # a late phase no longer hides the files
    assert "1/3 files" in display.plain_line()


def test_the_eta_counts_the_files_left_not_only_the_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("async_uploader.cli.progress.time.monotonic", lambda: now[0])
    display, _ = plain_display()
    display.handle(TotalsKnown(files=1001, bytes=1_000_000 + 1000))
    display.handle(FileDone("big", "big", 1_000_000, '"e"', "", 1, 1.0))
    now[0] += 10.0
    for i in range(100):
        display.handle(FileDone(f"s{i}", f"s{i}", 1, '"e"', "", 1, 0.01))
    # Bytes alone: 900 bytes left at ~100 kB/s, "0:00". Files: 900 left at 10.1 files/s, about 89 s.
    eta = display.eta_s()
    assert eta is not None
    assert 85 < eta < 95
    assert "ETA 1:29" in display.plain_line()


def test_resumed_bytes_leave_the_total_instead_of_counting_as_sent() -> None:
    display, _ = plain_display()
    display.handle(TotalsKnown(files=1, bytes=30))
    display.handle(FileStarted("big", "big", 30, 3))
    display.handle(PartDone("big", 3, 10))
    display.handle(FileDone("big", "big", 30, '"e-3"', "", 3, 1.0, resumed_parts=2, resumed_bytes=20))
    assert (display.bytes_done, display.bytes_total) == (10, 10)


def test_the_live_display_fits_80_columns_in_binary_units() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, soft_wrap=True, emoji=False, highlight=False)
    display = ProgressDisplay(console, live=True)
    display.handle(TotalsKnown(files=123_456, bytes=900 * 1024**3))
    display.handle(FileStarted("a/very/long/path/to/some/deeply/nested/artifact-1.2.3.tar.gz", "k", 10**9, 100))
    display.handle(PartDone("a/very/long/path/to/some/deeply/nested/artifact-1.2.3.tar.gz", 1, 8 * 1024**2))
    for i in range(1234):
        display.handle(FileDone(f"f{i}", f"f{i}", 1024**2, '"e"', "", 1, 0.1))
    display.handle(FileFailed("bad", "bad", "boom"))
    assert display._progress is not None
    console.print(display._progress.get_renderable())
    lines = [line for line in out.getvalue().splitlines() if "files" in line or "tar.gz" in line]
    assert len(lines) == 2, out.getvalue()
    plain = [re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", line) for line in lines]
    assert all(len(line) <= 80 for line in plain), plain
    assert "1,235/123,456 files" in plain[0]
    assert "GiB" in plain[0]
    assert "MB" not in plain[0]
    assert "ETA" in plain[0]
