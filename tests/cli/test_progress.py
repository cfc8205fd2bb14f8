"""The display as a subscriber: what it counts from events, and what its plain lines say."""

from __future__ import annotations

import io

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
