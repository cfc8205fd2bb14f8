"""What the CLI prints: the live display on a terminal, and the quiet, verbose and debug modes elsewhere."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import async_uploader
from tests.e2e.test_upload import run_cli
from tests.trees import make_tree, random_bytes
from tools.seaweedfs import S3Server

MIB = 1024 * 1024


def run_on_a_terminal(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal, as a person would, and collect what the terminal got."""
    controller, terminal = pty.openpty()
    env = dict(env, COLUMNS="120", LINES="40", TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "async_uploader", "upload", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    return process.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")


def test_live_display_on_a_terminal(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str]
) -> None:
    make_tree(tmp_path, {f"d/f{i}.txt": b"x" * i for i in range(300)} | {"big.bin": random_bytes(11 * MIB, seed=1)})
    code, screen = run_on_a_terminal(
        server_env, str(tmp_path), f"s3://{bucket}", "--endpoint-url", s3_server.endpoint_url,
        "--part-size", "5MiB", "--multipart-threshold", "5MiB", "--max-bandwidth", "8MiB/s",
    )  # fmt: skip
    assert code == 0, screen
    assert "\x1b[" in screen  # a live, redrawn display
    assert "301/301 files" in screen
    assert "━" in screen  # rich's bar
    assert "MiB/s" in screen  # one unit family: never MB/s beside MiB
    assert "MB/s" not in screen.replace("MiB/s", "")
    assert "ETA " in screen
    assert "Uploaded 301 files" in screen


def test_quiet_prints_only_the_summary(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str]
) -> None:
    make_tree(tmp_path, {"a.txt": b"a", "b.txt": b"b"})
    result = run_cli(server_env, str(tmp_path), f"s3://{bucket}", "--endpoint-url", s3_server.endpoint_url, "-q")
    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr.splitlines() == [result.stderr.splitlines()[0]]
    assert result.stderr.startswith("Uploaded 2 files")


def test_verbose_prints_a_line_per_file(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str]
) -> None:
    make_tree(tmp_path, {"a.txt": b"a", "sub/b.txt": b"b"})
    result = run_cli(server_env, str(tmp_path), f"s3://{bucket}/p", "--endpoint-url", s3_server.endpoint_url, "-v")
    assert result.returncode == 0
    assert "uploaded a.txt -> p/a.txt" in result.stderr
    assert "uploaded sub/b.txt -> p/sub/b.txt" in result.stderr


def test_debug_adds_a_traceback_to_the_error(tmp_path: Path, s3_server: S3Server, server_env: dict[str, str]) -> None:
    make_tree(tmp_path, {"a": b"a"})
    args = [str(tmp_path), "s3://no-such-bucket-x", "--endpoint-url", s3_server.endpoint_url]
    plain = run_cli(server_env, *args)
    debug = run_cli(server_env, *args, "--debug")
    assert plain.returncode == debug.returncode == 2
    assert "Traceback" not in plain.stderr
    assert "Traceback" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == plain.stderr.strip()


async def test_a_file_that_vanishes_fails_alone(
    tmp_path: Path, bucket: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    make_tree(tmp_path, {"stays.txt": b"s", "goes.txt": b"g"})
    real_open = os.open

    def delete_then_open(path: Any, flags: int, *args: Any) -> int:
        if str(path).endswith("goes.txt"):
            os.unlink(path)  # deleted after the walk saw it, before it is read
        return real_open(path, flags, *args)

    monkeypatch.setattr("async_uploader.source.reader.os.open", delete_then_open)
    result = await async_uploader.upload(tmp_path, f"s3://{bucket}", endpoint_url=s3_server.endpoint_url)
    assert (result.uploaded, result.failed) == (1, 1)
    assert result.failures == (("goes.txt", "file vanished before it could be read"),)
