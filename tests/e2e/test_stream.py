"""``upload - s3://b/key``: stdin piped into the CLI lands byte for byte as a multipart upload of unknown length
(or one put when short), and what cannot apply to a stream is refused with one line and exit 2."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from async_uploader.config import MIB
from tests.e2e.conftest import Backend, S3Backend, read_bucket, sync_s3_client
from tests.e2e.test_cli_features import report_records
from tests.e2e.test_faults import assert_no_orphans, leftover_uploads, uploader, wait_until
from tests.trees import random_bytes
from tools.seaweedfs import S3Server


def pipe_cli(env: dict[str, str], data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "async_uploader", "upload", "-", *args, "--no-progress"],
        input=data,
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
    )


def test_30_mib_of_stdin_lands_byte_for_byte_in_parts(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    data = random_bytes(30 * MIB + 123, seed=30)
    report = tmp_path / "report.jsonl"
    args = (f"s3://{bucket}/backups/db.dump", "--endpoint-url", s3_server.endpoint_url, "--part-size", "5MiB")

    result = pipe_cli(server_env, data, *args, "--max-memory", "16MiB", "--report", str(report))

    assert result.returncode == 0, result.stderr
    stored = read_bucket(s3_client, bucket)
    assert list(stored) == ["backups/db.dump"]
    body, metadata = stored["backups/db.dump"]
    assert body == data
    assert set(metadata) == {"mtime"}
    [record] = [r for r in report_records(report) if "path" in r]
    assert (record["path"], record["key"], record["status"], record["size"], record["parts"]) == (
        "-",
        "backups/db.dump",
        "uploaded",
        len(data),
        7,
    )
    # The whole object's CRC32, combined from the parts' and checked by the server on completion.
    assert record["checksum"] == base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    assert record["verified"] == "checksum"
    assert_no_orphans(s3_client, bucket)


def test_a_short_stdin_is_one_put(tmp_path: Path, s3_backend: S3Backend) -> None:
    result = pipe_cli(s3_backend.env, b"hello\n", f"s3://{s3_backend.bucket}/notes/hello.txt", *s3_backend.cli_args())
    assert result.returncode == 0, result.stderr
    body, metadata = read_bucket(s3_backend.client, s3_backend.bucket)["notes/hello.txt"]
    assert (body, metadata["size"]) == (b"hello\n", "6")
    head = s3_backend.client.head_object(Bucket=s3_backend.bucket, Key="notes/hello.txt")
    assert head["ContentType"] == "text/plain"
    assert "-" not in head["ETag"]  # one PutObject, not a multipart upload


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("s3://bucket/dir/",), "a stream needs an exact key"),
        (("s3://bucket",), "a stream needs an exact key"),
        (("s3://bucket/key", "--shard", "1/2"), "--shard: not for a stream"),
        (("s3://bucket/key", "--exclude", "*.tmp"), "--include/--exclude: not for a stream"),
        (("s3://bucket/key", "--compare", "size"), "--compare: not for a stream"),
        (("s3://bucket/key", "--dry-run"), "--dry-run: not for a stream"),
        (("s3://bucket/key", "--retry-failed", "r.jsonl"), "--retry-failed: not for a stream"),
        (("s3://bucket/key", "--dask", "tcp://127.0.0.1:9"), "a single file or a stream is uploaded without it"),
    ],
)
def test_what_cannot_apply_to_a_stream_is_one_line_and_exit_2(
    server_env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    result = pipe_cli(server_env, b"data", *args, "--endpoint-url", "http://127.0.0.1:9")
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2, lines
    assert len(lines) == 1, lines
    assert message in lines[0]


def test_an_interrupted_stream_aborts_its_upload(bucket: str, s3_server: S3Server, server_env: dict[str, str]) -> None:
    """The writer stops writing (the pipe stays open) after two parts: Ctrl-C then leaves no upload, no object."""
    client = sync_s3_client(s3_server)
    args = ("--no-progress", "--endpoint-url", s3_server.endpoint_url, "--part-size", "5MiB")
    process = subprocess.Popen(
        [sys.executable, "-m", "async_uploader", "upload", "-", f"s3://{bucket}/stream.bin", *args],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=server_env,
    )
    assert process.stdin is not None
    try:
        process.stdin.write(random_bytes(12 * MIB, seed=12))
        process.stdin.flush()
        wait_until(lambda: bool(leftover_uploads(client, bucket)), "the stream's multipart upload begun")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "multipart uploads in flight were aborted" in stderr.decode()
    assert leftover_uploads(client, bucket) == []
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)


@pytest.mark.parametrize("backend", ["azurite"], indirect=True)
def test_stdin_lands_in_blocks_on_azure(backend: Backend) -> None:
    data = random_bytes(11 * MIB, seed=11)
    result = pipe_cli(backend.env, data, f"az://{backend.bucket}/streams/out.bin", "--part-size", "5MiB")
    assert result.returncode == 0, result.stderr
    assert backend.read("streams/")["streams/out.bin"][0] == hashlib.md5(data).hexdigest()


async def test_the_library_streams_an_async_iterable(s3_backend: S3Backend) -> None:
    async def produce() -> AsyncIterator[bytes]:
        for i in range(12):
            yield random_bytes(MIB - i, seed=i)  # chunks of any size, cut into parts

    expected = b"".join(random_bytes(MIB - i, seed=i) for i in range(12))
    async with uploader(s3_backend.server) as up:
        result = await up.upload_stream(produce(), f"s3://{s3_backend.bucket}/lib/out.bin", part_size="5MiB")
    assert (result.uploaded, result.bytes_uploaded) == (1, len(expected))
    assert read_bucket(s3_backend.client, s3_backend.bucket)["lib/out.bin"][0] == expected


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="no pseudo-terminals on Windows")
def test_a_terminal_as_stdin_is_refused_rather_than_waited_on(server_env: dict[str, str]) -> None:
    controller, terminal = os.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "async_uploader", "upload", "-", "s3://bucket/key", "--no-progress"],
            stdin=terminal,
            env=server_env,
            capture_output=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2, lines
    assert len(lines) == 1
    assert "stdin, which is a terminal" in lines[0]
