"""Re-runs against a real SeaweedFS (and moto, for the unchanged re-run and the resume): nothing is sent again for
an unchanged tree, only changed files go up, an interrupted multipart upload resumes from its parts, and
``cleanup`` aborts what is left."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from async_uploader.config import MIB
from async_uploader.events import Event, FileDone, FileSkipped, PartDone
from tests.e2e.conftest import S3Backend, read_bucket
from tests.e2e.test_cli_features import report_records
from tests.e2e.test_faults import MULTIPART, assert_no_orphans, leftover_uploads, uploader, wait_until
from tests.e2e.test_lean import imported_modules
from tests.e2e.test_upload import assert_bucket_holds, run_cli
from tests.fault_proxy import FaultProxy
from tests.trees import make_tree, random_bytes
from tools.seaweedfs import S3Server


def build(root: Path, small: int = 300) -> int:
    files = {f"d{i % 5}/sub/f{i}.txt": f"file {i}".encode() for i in range(small)}
    files.update({"top.txt": b"top", "empty": b"", "big.bin": random_bytes(11 * MIB, seed=1)})
    make_tree(root, files)
    return len(files)


def operation(line: str) -> str:
    """The S3 operation of a request line, as far as these tests need to tell them apart."""
    method, target, _ = line.split(" ", 2)
    path, _, query = target.partition("?")
    object_level = path.strip("/").count("/") >= 1
    if method == "GET" and "list-type=2" in query:
        return "ListObjectsV2"
    if method == "GET" and re.search(r"(^|&)uploads", query) and not object_level:
        return "ListMultipartUploads"
    if method == "HEAD":
        return "HeadObject" if object_level else "HeadBucket"
    return f"{method} {'object' if object_level else 'bucket'}"


@pytest.mark.parametrize("credentials", ["session", "environment"])
async def test_an_unchanged_rerun_sends_nothing_but_listings(
    tmp_path: Path, s3_backend: S3Backend, monkeypatch: pytest.MonkeyPatch, credentials: str
) -> None:
    """With the application's session (aiobotocore's clients) or credentials from the environment (the lean path
    alone, as the CLI runs), the same requests; on SeaweedFS and on moto alike (a smaller tree: moto is slow)."""
    files = build(tmp_path, small=300 if s3_backend.name == "seaweedfs" else 30)
    server, bucket = s3_backend.server, s3_backend.bucket
    options: dict[str, Any] = {}
    if credentials == "environment":
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        options["session"] = None
    async with FaultProxy(server.endpoint_url) as proxy, uploader(server, proxy.url, **options) as up:
        first = await up.upload(tmp_path, f"s3://{bucket}/p", **MULTIPART)
        assert (first.uploaded, first.failed) == (files, 0)
        proxy.request_lines.clear()
        events: list[Event] = []

        second = await up.upload(tmp_path, f"s3://{bucket}/p", on_event=events.append, **MULTIPART)

    assert (second.uploaded, second.skipped, second.failed) == (0, files, 0)
    assert {e.reason for e in events if isinstance(e, FileSkipped)} == {"unchanged"}
    sent = Counter(operation(line) for line in proxy.request_lines)
    # The bucket check; the files directly under the prefix, and each of the 5 top-level folders split in two
    # (the files directly in it, its one subfolder), 11 listings; the open multipart uploads. No write-access
    # probe (nothing to write), nothing per file.
    assert sent == {"HeadBucket": 1, "ListObjectsV2": 11, "ListMultipartUploads": 1}
    assert_bucket_holds(s3_backend.client, bucket, "p/", tmp_path)


def test_a_cli_rerun_of_an_unchanged_tree_never_imports_aiobotocore(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str]
) -> None:
    """Its bucket check, listings and open-upload listing go over the lean path: no botocore client is created,
    and the ~0.4 s of importing aiobotocore and aiohttp and building the clients is not spent."""
    source = tmp_path / "src"
    files = build(source)
    args = [str(source), f"s3://{bucket}/p", "--endpoint-url", s3_server.endpoint_url, "--part-size", "5MiB"]
    assert run_cli(server_env, *args).returncode == 0

    second = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "async_uploader", "upload", *args, "--summary-format", "json"],
        env=server_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert (summary["uploaded"], summary["skipped"], summary["failed"]) == (0, files, 0)
    imported = imported_modules(second.stderr)
    assert "async_uploader.providers.s3.store" in imported
    assert not {name for name in imported if name.split(".")[0] in {"aiobotocore", "aiohttp"}}


def test_after_touching_and_editing_only_those_files_go_up(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    source = tmp_path / "src"
    files = build(source)
    args = [str(source), f"s3://{bucket}", "--endpoint-url", s3_server.endpoint_url, "--part-size", "5MiB"]
    assert run_cli(server_env, *args).returncode == 0
    touched, edited = source / "d1/sub/f1.txt", source / "big.bin"
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    with edited.open("r+b") as handle:
        handle.seek(6 * MIB)
        handle.write(b"edited in the middle")
    report = tmp_path / "second.jsonl"

    result = run_cli(server_env, *args, "--report", str(report))

    assert result.returncode == 0, result.stderr
    statuses = {r["path"]: r["status"] for r in report_records(report) if "path" in r}
    assert {path for path, status in statuses.items() if status == "uploaded"} == {"d1/sub/f1.txt", "big.bin"}
    assert sum(status == "skipped" for status in statuses.values()) == files - 2
    assert_bucket_holds(s3_client, bucket, "", source)


def test_a_machine_without_state_still_skips_what_is_there(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str]
) -> None:
    source = tmp_path / "src"
    files = build(source)
    args = [str(source), f"s3://{bucket}", "--endpoint-url", s3_server.endpoint_url, "--part-size", "5MiB"]
    assert run_cli(server_env, *args).returncode == 0
    (source / "top.txt").write_bytes(b"TOP")  # same size, other bytes, and a new mtime
    report = tmp_path / "fresh-machine.jsonl"

    result = run_cli(server_env, *args, "--no-state", "--report", str(report))

    assert result.returncode == 0, result.stderr
    summary = report_records(report)[-1]["summary"]
    assert (summary["uploaded"], summary["skipped"]) == (1, files - 1)


def test_a_killed_multipart_upload_resumes_from_the_parts_already_there(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    source = tmp_path / "src"
    data = random_bytes(60 * MIB, seed=7)
    make_tree(source, {"huge.bin": data})
    args = [str(source), f"s3://{bucket}", "--endpoint-url", s3_server.endpoint_url, "--part-size", "5MiB"]
    # ~15 s at 4 MB/s: the kill lands mid-file even when a loaded machine polls slowly.
    slow = subprocess.Popen(
        [sys.executable, "-m", "async_uploader", "upload", *args, "--concurrency", "2", "--max-bandwidth", "4MB/s"],
        env=server_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def parts_on_server() -> int:
        uploads = s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        if not uploads:
            return 0
        try:
            listed = s3_client.list_parts(Bucket=bucket, Key="huge.bin", UploadId=uploads[0]["UploadId"])
        except s3_client.exceptions.NoSuchUpload:
            return 0  # completed (or aborted) between the two calls: the assertions below say which
        return len(listed.get("Parts", []))

    try:
        wait_until(lambda: parts_on_server() >= 3, "three parts uploaded", timeout_s=60)
    finally:
        slow.send_signal(signal.SIGKILL)  # no chance to abort: the upload stays open on the server
        slow.wait()
    kept = parts_on_server()
    assert kept >= 3
    report = tmp_path / "resume.jsonl"

    result = run_cli({**server_env, "PYTHONPROFILEIMPORTTIME": "1"}, *args, "--report", str(report))

    assert result.returncode == 0, result.stderr
    record = next(r for r in report_records(report) if r.get("path") == "huge.bin")
    assert record["status"] == "uploaded"
    assert record["resumed_parts"] >= kept - 1  # a part still arriving at the kill may be missing or torn
    # The resume's ListParts went over the lean path like the rest: aiobotocore was never needed.
    imported = imported_modules(result.stderr)
    assert "async_uploader.providers.s3.store" in imported
    assert not {name for name in imported if name.split(".")[0] == "aiobotocore"}
    assert read_bucket(s3_client, bucket)["huge.bin"][0] == data
    assert_no_orphans(s3_client, bucket)


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "aiobotocore"])
async def test_an_interrupted_upload_kept_open_resumes_from_its_parts(
    tmp_path: Path, s3_backend: S3Backend, lean: bool
) -> None:
    """A run cancelled once the first of two parts landed (Ctrl-C with ``keep_partial``) leaves its upload open;
    the next run lists it, checks that part's bytes against the file, sends only the second part, and completes.
    The SIGKILL case above is SeaweedFS only: it needs a slow, 60 MiB run to kill mid-file."""
    data = random_bytes(2 * 5 * MIB, seed=12)
    make_tree(tmp_path, {"two-parts.bin": data})
    options: dict[str, Any] = {**MULTIPART, "concurrency": 1, "keep_partial": True}
    landed = anyio.Event()

    def on_event(event: Event) -> None:
        if isinstance(event, PartDone):
            landed.set()

    async with uploader(s3_backend.server, lean=lean) as up:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(partial(up.upload, tmp_path, s3_backend.url(), on_event=on_event, **options))
                await landed.wait()
                scope.cancel()
        assert leftover_uploads(s3_backend.client, s3_backend.bucket) == ["two-parts.bin"]
        events: list[Event] = []

        result = await up.upload(tmp_path, s3_backend.url(), on_event=events.append, **options)

    assert (result.uploaded, result.failed) == (1, 0), result.failures
    (done,) = (e for e in events if isinstance(e, FileDone))
    assert (done.parts, done.resumed_parts, done.verified) == (2, 1, s3_backend.verified)
    assert read_bucket(s3_backend.client, s3_backend.bucket)["two-parts.bin"][0] == data
    assert_no_orphans(s3_backend.client, s3_backend.bucket)


def run_cleanup(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(env, *args, command="cleanup")


def test_cleanup_aborts_old_incomplete_uploads_and_only_those(
    bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    """By their start dates as the store lists them. SeaweedFS only: moto lists every upload as initiated on
    2010-11-10T20:48:33Z (a fixed placeholder), so no age can be told there."""
    for key in ("p/a.bin", "p/sub/b.bin", "elsewhere/c.bin"):
        s3_client.create_multipart_upload(Bucket=bucket, Key=key)
    target = [f"s3://{bucket}/p", "--endpoint-url", s3_server.endpoint_url]

    young = run_cleanup(server_env, *target)
    assert young.returncode == 0, young.stderr
    assert "0 incomplete uploads aborted, 0 failed; 2 younger than 1d left alone" in young.stderr

    dry = run_cleanup(server_env, *target, "--older-than", "0", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert sorted(line.split()[3] for line in dry.stdout.splitlines()) == ["p/a.bin", "p/sub/b.bin"]
    assert all(line.startswith("would be aborted: ") for line in dry.stdout.splitlines()), dry.stdout
    assert "2 incomplete uploads would be aborted, 0 failed" in dry.stderr
    assert len(s3_client.list_multipart_uploads(Bucket=bucket)["Uploads"]) == 3

    done = run_cleanup(server_env, *target, "--older-than", "0")
    assert done.returncode == 0, done.stderr
    assert "2 incomplete uploads aborted" in done.stderr
    assert [u["Key"] for u in s3_client.list_multipart_uploads(Bucket=bucket)["Uploads"]] == ["elsewhere/c.bin"]


def test_cleanup_refuses_a_bad_age_in_one_line(bucket: str, server_env: dict[str, str]) -> None:
    result = run_cleanup(server_env, f"s3://{bucket}", "--older-than", "soon")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "async-uploader: error: invalid duration 'soon': use a number with s, m, h, d or w, like 12h or 7d"
    ]
