"""``main``'s contract: bad input is one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import asyncio
import functools
import sys
from pathlib import Path

import pytest

import async_uploader.cli.process
import async_uploader.source.reader
from async_uploader.cli import main, runner_from_args
from async_uploader.cli.parser import build_parser, config_from_args
from async_uploader.cli.process import run_event_loop, show_cursor
from async_uploader.source.reader import CACHED_READ_MAX_BYTES, FileReader


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    code = exited.value.code
    return (code if isinstance(code, int) else 1), capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required"),
        (["upload"], "required"),
        (["upload", "{src}"], "required"),
        (["upload", "{src}", "bucket-without-scheme"], "s3://bucket/prefix"),
        (["upload", "{src}", "s3://b/x"], "invalid bucket name"),
        (["upload", "{src}/missing", "s3://bucket"], "does not exist"),
        (["upload", "{src}", "s3://bucket", "--part-size", "lots"], "invalid size"),
        (["upload", "{src}", "s3://bucket", "--part-size", "1MiB"], "between 5MiB and 5GiB"),
        (["upload", "{src}", "s3://bucket", "--concurrency", "0"], "--concurrency"),
        (["upload", "{src}", "s3://bucket", "--concurrency", "many"], "invalid int value"),
        (["upload", "{src}", "s3://bucket", "--endpoint-url", "localhost:9000"], "http:// or https://"),
        (["upload", "{src}", "s3://bucket", "--quiet", "--verbose"], "not allowed with"),
        (["frobnicate"], "invalid choice"),
        (["upload", "{src}", "s3:/x"], "s3://bucket/prefix"),
        (["upload", "{src}", "s3://bucket", "--bogus"], "unrecognized arguments: --bogus"),
        (["upload", "{src}", "s3://bucket", "--max-bandwidth", "fast"], "invalid rate"),
        (["upload", "{src}", "s3://bucket", "--max-bandwidth", "10"], "give a unit, e.g. 10MB/s"),
        (["upload", "{src}", "s3://bucket", "--max-bandwidth", "10Mbps"], "write 10MB/s for bytes or 10Mbit/s"),
        (["upload", "{src}", "s3://bucket", "--exclude", "[z-a]"], "invalid glob"),
        (["upload", "{src}", "s3://bucket", "--retries", "0"], "--retries"),
        (["upload", "{src}", "s3://bucket", "--max-cpu", "0"], "--max-cpu"),
        (["upload", "{src}", "s3://bucket", "--summary-format", "xml"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, err = run_main(capsys, *(a.format(src=tmp_path) for a in argv))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("async-uploader: error: ")
    assert message in lines[0]


@pytest.mark.parametrize(("flags", "counted"), [((), True), (("-q",), False), (("--no-progress",), False)])
def test_the_tree_is_counted_first_only_for_a_progress_display(
    tmp_path: Path, flags: tuple[str, ...], counted: bool
) -> None:
    args = build_parser().parse_args(["upload", str(tmp_path), "s3://bucket", *flags])
    runner = runner_from_args(args, config_from_args(args))
    assert isinstance(runner, functools.partial)
    assert runner.keywords["count_totals"] is counted


@pytest.mark.skipif(not CACHED_READ_MAX_BYTES, reason="no RWF_NOWAIT reads on this platform")
def test_the_cli_loop_reads_files_in_the_page_cache_itself_and_a_library_loop_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = async_uploader.source.reader
    monkeypatch.setattr(module, "_loop_read_max_bytes", 0)  # the library's default, restored after the test
    monkeypatch.setattr(async_uploader.cli.process, "collect_garbage_less_often", lambda: None)  # pytest's process
    on_loop: list[str] = []
    read_cached = module._read_cached

    def recording_read_cached(path: str, *args: object) -> object:
        on_loop.append(path)
        return read_cached(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "_read_cached", recording_read_cached)
    hot = tmp_path / "hot.txt"
    hot.write_bytes(b"just written: in the page cache")

    async def read() -> bytes:
        reader, st = FileReader(), hot.stat()
        try:
            chunk = await reader.read(str(hot), size=st.st_size, mtime_ns=st.st_mtime_ns, algorithm=None)
        finally:
            reader.close()
        return chunk.body.getvalue()

    assert asyncio.run(read()) == hot.read_bytes()
    assert on_loop == []  # an application's loop reads no files
    assert run_event_loop(read()) == hot.read_bytes()
    assert on_loop == [str(hot)]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("async-uploader ")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--dask", "tcp://127.0.0.1:8786", "--shard", "0/2"], "--dask plans its own shards"),
        (["--shards", "4"], "--shards needs --dask"),
        (["--dask", "tcp://127.0.0.1:8786", "--shards", "0"], "--shards must be at least 1"),
    ],
)
def test_dask_flags_that_do_not_fit_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    code, err = run_main(capsys, "upload", str(tmp_path), "s3://bucket", *flags)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("async-uploader: error: ")
    assert message in lines[0]


def test_dask_without_the_extra_names_the_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if `pip install async-uploader` alone
    code, err = run_main(capsys, "upload", str(tmp_path), "s3://bucket", "--dask", "tcp://127.0.0.1:8786")
    assert code == 2
    assert err == "async-uploader: error: --dask needs the dask extra: pip install 'async-uploader[dask]'\n"


@pytest.mark.parametrize(("terminal", "written"), [("1", "\x1b[?25h"), ("0", "")])
def test_the_cursor_is_shown_again_only_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], terminal: str, written: str
) -> None:
    # The second Ctrl-C leaves through os._exit, past the live display's own restore: it calls this first.
    monkeypatch.setenv("TTY_COMPATIBLE", terminal)
    show_cursor()
    assert capsys.readouterr().err == written
