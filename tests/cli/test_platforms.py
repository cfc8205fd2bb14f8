"""The command line where Linux's conveniences are missing: a loop without signal handlers (Windows), a stdout
that cannot encode every name (cp1252), no ``resource`` module. The runs against a server are in
``tests/e2e/test_platforms.py``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from async_uploader.cli.process import Stopped, cancel_on_signals, concurrency_within_open_files
from tests.simulated_platform import _no_signal_handlers
from tests.trees import make_tree

REPO = Path(__file__).parents[2]
DEADLINE_S = 30
on_linux_or_macos = pytest.mark.skipif(sys.platform == "win32", reason="simulates Windows where it is not")


@pytest.fixture
def loop_without_signal_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncio's loop as Windows has it: ``add_signal_handler`` raises ``NotImplementedError``."""
    import asyncio.unix_events

    loop_class: Any = asyncio.unix_events._UnixSelectorEventLoop
    monkeypatch.setattr(loop_class, "add_signal_handler", _no_signal_handlers)
    monkeypatch.setattr(loop_class, "remove_signal_handler", _no_signal_handlers)


@on_linux_or_macos
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_cancels_the_run_where_the_loop_takes_no_handlers(
    loop_without_signal_handlers: None, sig: signal.Signals, code: int
) -> None:
    cleaned_up: list[str] = []

    async def work() -> None:
        try:
            signal.raise_signal(sig)
            await asyncio.Event().wait()  # until the signal cancels the run
        finally:
            cleaned_up.append("aborted uploads in flight")

    before = signal.getsignal(sig)
    with pytest.raises(Stopped) as stopped:
        asyncio.run(cancel_on_signals(work()))
    assert stopped.value.exit_code == code
    assert cleaned_up == ["aborted uploads in flight"]
    assert signal.getsignal(sig) == before  # the process's own handling is back


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_off_the_main_thread_a_run_goes_on_without_signal_handlers(event_loop: str) -> None:
    if event_loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")  # not on Windows
        run: Any = uvloop.run
    else:
        run = asyncio.run
    results: list[object] = []

    def in_a_thread() -> None:
        try:
            results.append(run(cancel_on_signals(asyncio.sleep(0, "done"))))
        except BaseException as exc:
            results.append(exc)

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join(DEADLINE_S)
    assert results == ["done"]


def test_without_a_resource_module_the_concurrency_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "resource", None)  # Windows
    assert concurrency_within_open_files(512) == (512, None)


@on_linux_or_macos
@pytest.mark.parametrize("summary_format", ["text", "json", "github"])
def test_a_dry_run_on_windows_with_a_cp1252_stdout_lists_every_name(tmp_path: Path, summary_format: str) -> None:
    source = tmp_path / "src"
    make_tree(source, {"caf\u00e9.txt": b"1", "\u65e5\u672c/\u8a9e.txt": b"22", "plain.txt": b"333"})
    result = subprocess.run(
        [sys.executable, "-m", "tests.simulated_platform", "windows", "upload", str(source), "s3://bucket/p",
         "--dry-run", "--summary-format", summary_format],
        cwd=REPO, env={**os.environ, "PYTHONIOENCODING": "cp1252"}, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    stdout, stderr = result.stdout.decode("cp1252"), result.stderr.decode("cp1252")
    assert result.returncode == 0, stderr
    assert "would upload caf\u00e9.txt -> p/caf\u00e9.txt" in stdout
    assert "would upload \\u65e5\\u672c/\\u8a9e.txt -> p/\\u65e5\\u672c/\\u8a9e.txt" in stdout
    assert "Dry run: would upload 3 files" in stderr
