"""What Windows' and macOS' runners meet, simulated on Linux against the real server: a Python without
positional reads or loop signal handlers (``tests.simulated_platform``), a stdout in cp1252, 256 open files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from async_uploader.config import MIB
from tests.e2e.conftest import read_bucket
from tests.e2e.test_cli_features import report_records, wait_for_multipart_upload
from tests.trees import make_tree, random_bytes
from tools.seaweedfs import S3Server

REPO = Path(__file__).parents[2]
NAMES = {
    "caf\u00e9.txt": b"latin-1 has it",
    "\u65e5\u672c/\u8a9e.bin": random_bytes(6 * MIB + 7, seed=11),  # cp1252 has neither; multipart, 2 parts
    "plain.txt": b"ascii",
}
SMALL_FILES = 400
MACOS_OPEN_FILES = 256
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="simulates Windows and macOS where they are not")


def windows_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.simulated_platform", "windows", "upload", *args]


def run_on_windows(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(windows_cli(*args), env=env, cwd=REPO, capture_output=True, timeout=120, check=False)


def test_on_windows_a_cp1252_stdout_shows_every_name_and_every_file_is_read(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    source = tmp_path / "src"
    make_tree(source, NAMES)
    outputs, step_summary = tmp_path / "github_output", tmp_path / "step_summary"
    env = dict(server_env, PYTHONIOENCODING="cp1252", GITHUB_OUTPUT=str(outputs), GITHUB_STEP_SUMMARY=str(step_summary))
    args = [str(source), f"s3://{bucket}/p", "--endpoint-url", s3_server.endpoint_url, "--part-size", "5MiB",
            "--multipart-threshold", "5MiB", "-v"]  # fmt: skip
    github, again = (
        run_on_windows(env, *args, "--summary-format", summary_format) for summary_format in ("github", "json")
    )
    assert github.returncode == 0, github.stderr.decode("cp1252")
    stdout, stderr = github.stdout.decode("cp1252"), github.stderr.decode("cp1252")
    assert "\\u65e5\\u672c/\\u8a9e.bin" in stderr  # the -v line of the name cp1252 cannot hold, escaped
    assert "caf\u00e9.txt" in stderr
    assert "| 3 | 0 | 0 |" in stdout
    assert "Traceback" not in stderr
    stored = read_bucket(s3_client, bucket, "p/")
    assert {key: body for key, (body, _) in stored.items()} == {f"p/{rel}": data for rel, data in NAMES.items()}
    assert "uploaded=3" in outputs.read_text(encoding="utf-8")
    assert "async-uploader:" in step_summary.read_text(encoding="utf-8")
    assert again.returncode == 0, again.stderr.decode("cp1252")
    assert json.loads(again.stdout)["skipped"] == 3  # the second run read the state file, and every file again


def test_on_windows_ctrl_c_aborts_uploads_in_flight_and_exits_130(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    source = tmp_path / "src"
    make_tree(source, {"huge.bin": random_bytes(40 * MIB, seed=3)})
    process = subprocess.Popen(
        windows_cli(
            str(source), f"s3://{bucket}", "--endpoint-url", s3_server.endpoint_url, "--part-size",
            "5MiB", "--multipart-threshold", "5MiB", "--max-bandwidth", "4MiB/s", "--report",
            str(tmp_path / "report.jsonl"),
        ),
        env=server_env, cwd=REPO, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_multipart_upload(s3_client, bucket, process)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "multipart uploads in flight were aborted" in stderr
    assert "Traceback" not in stderr
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert report_records(tmp_path / "report.jsonl")[-1]["summary"]["interrupted"] is True


def _macos_open_files() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (MACOS_OPEN_FILES, MACOS_OPEN_FILES))


def test_a_256_open_file_limit_lowers_the_concurrency_and_uploads_every_file(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    source = tmp_path / "src"
    make_tree(source, {f"d{i % 7}/f{i}.txt": b"%d" % i for i in range(SMALL_FILES)})
    result = subprocess.run(
        [sys.executable, "-m", "async_uploader", "upload", str(source), f"s3://{bucket}", "--endpoint-url",
         s3_server.endpoint_url, "--concurrency", "256", "--no-progress"],
        env=server_env, capture_output=True, text=True, timeout=120, check=False, preexec_fn=_macos_open_files,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lowered = [line for line in result.stderr.splitlines() if "--concurrency lowered" in line]
    assert lowered == ["async-uploader: --concurrency lowered from 256 to 96: the open-file limit is 256 "
                       "(raise it with 'ulimit -n')"]  # fmt: skip
    assert f"Uploaded {SMALL_FILES} files" in result.stderr
    assert len(read_bucket(s3_client, bucket)) == SMALL_FILES
