"""The CLI's everyday features against a real SeaweedFS: report, retry, dry run, filters, skips, interrupts."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import async_uploader
from async_uploader.config import MIB
from tests.e2e.conftest import read_bucket
from tests.e2e.test_upload import run_cli
from tests.trees import make_tree, random_bytes
from tools.seaweedfs import S3Server


def report_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_report_lists_every_file_then_a_summary(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str]
) -> None:
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"a", "sub/b.bin": random_bytes(6 * MIB, seed=1)})
    (source / os.fsdecode(b"bad-\xff")).write_bytes(b"x")
    report = tmp_path / "report.jsonl"
    result = run_cli(
        server_env, str(source), f"s3://{bucket}/p", "--endpoint-url", s3_server.endpoint_url,
        "--multipart-threshold", "5MiB", "--part-size", "5MiB", "--report", str(report),
    )  # fmt: skip
    assert result.returncode == 1
    records = report_records(report)
    files = {r["path"]: r for r in records if "path" in r}
    assert records[-1]["summary"]["uploaded"] == 2
    assert records[-1]["summary"]["failed"] == 1
    assert records[-1]["summary"]["interrupted"] is False
    assert files["a.txt"]["status"] == "uploaded"
    assert files["a.txt"]["key"] == "p/a.txt"
    assert files["a.txt"]["parts"] == 1
    assert files["a.txt"]["error"] is None
    assert files["sub/b.bin"]["parts"] == 2
    assert files["sub/b.bin"]["size"] == 6 * MIB
    assert files["sub/b.bin"]["etag"].endswith('-2"')
    bad = files[os.fsdecode(b"bad-\xff")]
    assert bad["status"] == "failed"
    assert "UTF-8" in bad["error"]


def test_retry_failed_uploads_only_what_the_report_lists(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    source = tmp_path / "src"
    make_tree(source, {"one.txt": b"1", "two/two.txt": b"2", "three.txt": b"3"})
    earlier = tmp_path / "earlier.jsonl"
    earlier.write_text(
        "\n".join(
            json.dumps(record)
            for record in (
                {"path": "one.txt", "status": "uploaded", "error": None},
                {"path": "two/two.txt", "status": "failed", "error": "connection reset"},
                {"path": "three.txt", "status": "failed", "error": "timeout"},
                {"summary": {"uploaded": 1, "failed": 2}},
            )
        )
        + "\n"
    )
    result = run_cli(
        server_env, str(source), f"s3://{bucket}", "--endpoint-url", s3_server.endpoint_url,
        "--retry-failed", str(earlier),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(read_bucket(s3_client, bucket)) == ["three.txt", "two/two.txt"]


def test_dry_run_plans_without_a_single_request(tmp_path: Path, server_env: dict[str, str]) -> None:
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"abc", "big.bin": random_bytes(11 * MIB, seed=2)})
    # A dead endpoint: any request at all would fail the run.
    result = run_cli(
        server_env, str(source), "s3://bucket/pre", "--endpoint-url", "http://127.0.0.1:9", "--dry-run",
        "--part-size", "5MiB", "--multipart-threshold", "5MiB",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "would upload a.txt -> pre/a.txt (3 B, single put)" in result.stdout
    assert "would upload big.bin -> pre/big.bin (11.0 MiB, 3 parts)" in result.stdout
    assert "Dry run: would upload 2 files" in result.stderr


def test_include_and_exclude_pick_the_files(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    source = tmp_path / "src"
    make_tree(
        source,
        {
            "app/main.py": b"m",
            "app/node_modules/dep/index.js": b"d",
            "app/cache.tmp": b"t",
            "app/keep.tmp": b"k",
            "docs/readme.md": b"r",
        },
    )
    result = run_cli(
        server_env, str(source), f"s3://{bucket}", "--endpoint-url", s3_server.endpoint_url,
        "--exclude", "node_modules", "--exclude", "*.tmp", "--include", "keep.tmp", "--exclude", "docs/",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # An --include is given: only what a rule takes goes up (main.py matches no rule).
    assert sorted(read_bucket(s3_client, bucket)) == ["app/keep.tmp"]


def test_an_include_alone_takes_only_what_it_names(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    source = tmp_path / "src"
    make_tree(source, {"f1.txt": b"1", "f2.txt": b"2", "sub/f1b.txt": b"3", "sub/f3.txt": b"4"})
    target = [str(source), f"s3://{bucket}", "--endpoint-url", s3_server.endpoint_url]
    result = run_cli(server_env, *target, "--include", "f1*")
    assert result.returncode == 0, result.stderr
    assert sorted(read_bucket(s3_client, bucket)) == ["f1.txt", "sub/f1b.txt"]


def test_special_files_are_skipped_with_a_warning_and_never_opened(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    source = tmp_path / "src"
    make_tree(source, {"real.txt": b"r", "elsewhere/inner.txt": b"i"})
    os.mkfifo(source / "pipe")  # opening this for reading would block the run forever
    (source / "dangling").symlink_to(source / "nowhere")
    (source / "linked-dir").symlink_to(source / "elsewhere")
    result = run_cli(server_env, str(source), f"s3://{bucket}", "--endpoint-url", s3_server.endpoint_url)
    assert result.returncode == 0, result.stderr
    assert "3 skipped, 0 failed" in result.stderr
    assert "skipped pipe: a FIFO" in result.stderr
    assert "skipped dangling: broken symbolic link" in result.stderr
    assert sorted(read_bucket(s3_client, bucket)) == ["elsewhere/inner.txt", "real.txt"]


def test_a_link_to_a_file_outside_source_is_not_published(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    source = tmp_path / "src"
    make_tree(source, {"app.whl": b"w"})
    make_tree(tmp_path, {"home/.aws/credentials": b"secret"})
    (source / "credentials").symlink_to(tmp_path / "home" / ".aws" / "credentials")
    (source / "latest.whl").symlink_to("app.whl")  # inside SOURCE: followed as ever
    report = tmp_path / "report.jsonl"
    target = [str(source), f"s3://{bucket}", "--endpoint-url", s3_server.endpoint_url, "--report", str(report)]
    result = run_cli(server_env, *target)
    assert result.returncode == 0, result.stderr
    assert "skipped credentials: symbolic link to a file outside SOURCE (use --follow-symlinks" in result.stderr
    assert sorted(read_bucket(s3_client, bucket)) == ["app.whl", "latest.whl"]
    records = {r["path"]: r for r in map(json.loads, report.read_text().splitlines()) if "path" in r}
    assert records["credentials"]["status"] == "skipped"
    assert "outside SOURCE" in records["credentials"]["reason"]

    followed = run_cli(server_env, *target, "--follow-symlinks")
    assert followed.returncode == 0, followed.stderr
    assert read_bucket(s3_client, bucket)["credentials"][0] == b"secret"


LATER_FILES = 20


def start_slow_upload(
    tmp_path: Path, bucket: str, s3_server: S3Server, env: dict[str, str], *extra: str
) -> subprocess.Popen[str]:
    """huge.bin crawls; with ``--concurrency 1`` the files of ``later/`` (walked after it, depth first) wait."""
    source = tmp_path / "src"
    make_tree(source, {"huge.bin": random_bytes(40 * MIB, seed=3)})
    make_tree(source / "later", {f"f{i}.txt": b"later" for i in range(LATER_FILES)})
    return subprocess.Popen(
        [
            sys.executable, "-m", "async_uploader", "upload", str(source), f"s3://{bucket}",
            "--endpoint-url", s3_server.endpoint_url, "--part-size", "5MiB", "--multipart-threshold", "5MiB",
            "--max-bandwidth", "4MiB/s", "--report", str(tmp_path / "report.jsonl"), *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def wait_for_multipart_upload(s3_client: Any, bucket: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60

    def started() -> bool:  # the file's own upload, not the write-access probe just before it
        return any(u["Key"] == "huge.bin" for u in s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))

    while not started():
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the multipart upload never started"
        time.sleep(0.05)  # polling the server's state with a deadline, not synchronising by time


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_aborts_in_flight_uploads_and_ends_the_report(
    tmp_path: Path,
    bucket: str,
    s3_server: S3Server,
    server_env: dict[str, str],
    s3_client: Any,
    sig: signal.Signals,
    code: int,
) -> None:
    outputs = tmp_path / "github-outputs"
    env = {**server_env, "GITHUB_OUTPUT": str(outputs)}
    summary_format = "json" if sig == signal.SIGINT else "github"
    process = start_slow_upload(
        tmp_path, bucket, s3_server, env, "--concurrency", "1", "--summary-format", summary_format
    )
    try:
        wait_for_multipart_upload(s3_client, bucket, process)
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == code, stderr
    assert "multipart uploads in flight were aborted" in stderr
    total = LATER_FILES + 1
    assert f"Interrupted: 0 of {total} uploaded" in stderr
    assert f"{total} not started" in stderr
    assert "Traceback" not in stderr
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert read_bucket(s3_client, bucket) == {}
    records = report_records(tmp_path / "report.jsonl")
    assert records[-1]["summary"]["interrupted"] is True
    assert sorted(r["path"] for r in records[:-1] if r["status"] == "not_started") == sorted(
        ["huge.bin", *(f"later/f{i}.txt" for i in range(LATER_FILES))]
    )
    if summary_format == "json":  # the machine summary CI reads, on this exit too
        summary = json.loads(stdout)
        assert (summary["interrupted"], summary["uploaded"], summary["not_started"]) == (True, 0, total)
    else:
        lines = outputs.read_text(encoding="utf-8").splitlines()
        assert "interrupted=true" in lines
        assert f"not_started={total}" in lines
        assert "**Interrupted**" in stdout


def test_retry_failed_after_an_interruption_uploads_what_was_not_started(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    process = start_slow_upload(tmp_path, bucket, s3_server, server_env, "--concurrency", "1")
    try:
        wait_for_multipart_upload(s3_client, bucket, process)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    source = str(tmp_path / "src")
    retried = run_cli(
        server_env, source, f"s3://{bucket}", "--endpoint-url", s3_server.endpoint_url,
        "--retry-failed", str(tmp_path / "report.jsonl"),
    )  # fmt: skip
    assert retried.returncode == 0, retried.stderr
    assert f"Uploaded {LATER_FILES + 1} files" in retried.stderr
    assert len(read_bucket(s3_client, bucket)) == LATER_FILES + 1

    other = tmp_path / "other"
    make_tree(other, {"huge.bin": b"not the same tree"})
    refused = run_cli(
        server_env, str(other), f"s3://{bucket}", "--endpoint-url", s3_server.endpoint_url,
        "--retry-failed", str(tmp_path / "report.jsonl"),
    )  # fmt: skip
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"async-uploader: error: --retry-failed: {tmp_path / 'report.jsonl'} is the report of "
        f"{Path(source).resolve()}, not of {other}"
    ]


def test_a_second_ctrl_c_exits_at_once_with_the_cursor_shown_again(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    env = {**server_env, "TTY_COMPATIBLE": "1"}  # stderr counts as a terminal: the live display hides the cursor
    process = start_slow_upload(tmp_path, bucket, s3_server, env)
    try:
        wait_for_multipart_upload(s3_client, bucket, process)
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "\x1b[?25l" in stderr  # hidden by the live display...
    assert stderr.rindex("\x1b[?25h") > stderr.rindex("\x1b[?25l")  # ...and shown again before the exit


async def test_unreadable_file_fails_alone(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    source = tmp_path / "src"
    make_tree(source, {"ok.txt": b"fine", "locked.txt": b"secret"})
    real_open = os.open

    def deny_locked(path: Any, flags: int, *args: Any) -> int:
        if str(path).endswith("locked.txt"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr("async_uploader.source.reader.os.open", deny_locked)  # root ignores chmod 000
    result = await async_uploader.upload(source, f"s3://{bucket}", endpoint_url=s3_server.endpoint_url)
    assert (result.uploaded, result.failed) == (1, 1)
    assert result.failures == (("locked.txt", "cannot read file: Permission denied"),)
    assert sorted(read_bucket(s3_client, bucket)) == ["ok.txt"]


@pytest.fixture
def not_s3_endpoint() -> Iterator[str]:
    """A plain web server that answers every request with an HTML 404, as a mistyped endpoint might."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = b"<html><body>Not here</body></html>"
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_PUT = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_endpoint_that_is_not_s3_is_exit_2(tmp_path: Path, server_env: dict[str, str], not_s3_endpoint: str) -> None:
    make_tree(tmp_path, {"a": b"a"})
    result = run_cli(server_env, str(tmp_path), "s3://some-bucket", "--endpoint-url", not_s3_endpoint)
    assert result.returncode == 2
    assert "does not answer like an S3 endpoint" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
