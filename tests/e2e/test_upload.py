"""End to end against a real SeaweedFS (and moto, for the library's upload): the CLI and the library upload real
trees, read back byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest

import async_uploader
from async_uploader.config import MIB
from async_uploader.engine.plan import object_metadata
from tests.e2e.conftest import S3Backend, read_bucket
from tests.trees import make_tree, random_bytes, read_tree
from tools.seaweedfs import S3Server

PART = 5 * MIB


def run_cli(env: dict[str, str], *args: str, command: str = "upload") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "async_uploader", command, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def expected_metadata(path: Path) -> dict[str, str]:
    st = path.stat()
    return object_metadata(st.st_size, st.st_mtime_ns, st.st_mode)


def assert_bucket_holds(s3_client: Any, bucket: str, prefix: str, source: Path) -> None:
    """The bucket under prefix holds exactly the source tree: same keys, bytes and metadata."""
    on_disk = read_tree(source)
    stored = read_bucket(s3_client, bucket, prefix)
    assert sorted(stored) == sorted(prefix + rel for rel in on_disk)
    for rel, data in on_disk.items():
        body, metadata = stored[prefix + rel]
        assert body == data, rel
        assert metadata == expected_metadata(source / rel), rel


def build_awkward_tree(root: Path) -> None:
    nfc = unicodedata.normalize("NFC", "café")
    nfd = unicodedata.normalize("NFD", "café")
    files = {f"many/d{i % 20}/file-{i}.txt": f"content {i}\n".encode() for i in range(1500)}
    files.update(
        {
            "empty": b"",
            "dir with spaces/also empty": b"",
            ".hidden": b"secret-ish",
            ".config/settings.json": b"{}",
            f"unicode/{nfc}.txt": b"composed",
            f"unicode/{nfd}.txt": b"decomposed",
            "unicode/日本語 ファイル.md": "本文".encode(),
            "unicode/emoji 🎉.txt": b"party",
            "/".join(f"level{i}" for i in range(40)) + "/deep.txt": b"deep",
            "sizes/under": random_bytes(PART - 1, seed=1),
            "sizes/exact": random_bytes(PART, seed=2),
            "sizes/over": random_bytes(PART + 1, seed=3),
            "sizes/multi-short-last": random_bytes(2 * PART + 12345, seed=4),
        }
    )
    make_tree(root, files)
    (root / "sizes/exec.sh").write_bytes(b"#!/bin/sh\n")
    (root / "sizes/exec.sh").chmod(0o755)


def test_cli_uploads_an_awkward_tree_byte_for_byte(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    source = tmp_path / "src"
    build_awkward_tree(source)
    result = run_cli(
        server_env,
        str(source),
        f"s3://{bucket}/releases/v1",
        "--endpoint-url",
        s3_server.endpoint_url,
        "--part-size",
        "5MiB",
        "--multipart-threshold",
        "5MiB",
        "--concurrency",
        "16",
    )
    assert result.returncode == 0, result.stderr
    assert "Uploaded 1,514 files" in result.stderr
    assert "\x1b[" not in result.stderr  # not a terminal: plain text only
    assert_bucket_holds(s3_client, bucket, "releases/v1/", source)
    # The multipart file really went up in parts, and nothing is left half-uploaded (preflight probe included).
    head = s3_client.head_object(Bucket=bucket, Key="releases/v1/sizes/multi-short-last")
    assert head["ETag"].endswith('-3"')
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert s3_client.head_object(Bucket=bucket, Key="releases/v1/sizes/exec.sh")["Metadata"]["mode"] == "100755"


async def test_library_upload_without_prefix_puts_keys_at_the_bucket_root(
    tmp_path: Path, s3_backend: S3Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3_backend.server.env().items():
        monkeypatch.setenv(name, value)
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"a", "sub/b.txt": b"b", "big.bin": random_bytes(PART + 7, seed=9)})
    events: list[async_uploader.events.Event] = []
    result = await async_uploader.upload(
        source,
        s3_backend.url(),
        endpoint_url=s3_backend.server.endpoint_url,
        multipart_threshold="5MiB",
        part_size="5MiB",
        on_event=events.append,
    )
    assert result.ok
    assert (result.uploaded, result.failed, result.bytes_uploaded) == (3, 0, PART + 9)
    assert_bucket_holds(s3_backend.client, s3_backend.bucket, "", source)
    assert any(isinstance(e, async_uploader.events.PartDone) for e in events)
    assert result.checked_by_size == (0 if s3_backend.returns_checksums else 3)


def test_unnameable_file_fails_alone_with_exit_1(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    source = tmp_path / "src"
    make_tree(source, {"good.txt": b"fine"})
    (source / os.fsdecode(b"bad-\xff.txt")).write_bytes(b"cannot be a key")
    result = run_cli(server_env, str(source), f"s3://{bucket}", "--endpoint-url", s3_server.endpoint_url)
    assert result.returncode == 1
    assert "1 failed" in result.stderr
    assert "not valid UTF-8" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(read_bucket(s3_client, bucket)) == ["good.txt"]


def _single_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("async-uploader: error: ")
    return lines[0]


def test_missing_bucket_is_exit_2_with_one_line(
    tmp_path: Path, s3_server: S3Server, server_env: dict[str, str]
) -> None:
    make_tree(tmp_path, {"a": b"a"})
    result = run_cli(server_env, str(tmp_path), "s3://no-such-bucket-here", "--endpoint-url", s3_server.endpoint_url)
    assert result.returncode == 2
    assert "does not exist" in _single_error_line(result)


def test_wrong_credentials_are_exit_2_with_one_line(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    make_tree(tmp_path, {"a": b"a"})
    env = dict(server_env, AWS_SECRET_ACCESS_KEY="not-the-secret")
    result = run_cli(env, str(tmp_path), f"s3://{bucket}", "--endpoint-url", s3_server.endpoint_url)
    assert result.returncode == 2
    assert "credentials" in _single_error_line(result)
    assert "not-the-secret" not in result.stderr
    assert read_bucket(s3_client, bucket) == {}


def test_no_credentials_at_all_is_exit_2_with_one_line(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str]
) -> None:
    make_tree(tmp_path, {"a": b"a"})
    env = {k: v for k, v in server_env.items() if k not in {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}}
    result = run_cli(env, str(tmp_path), f"s3://{bucket}", "--endpoint-url", s3_server.endpoint_url)
    assert result.returncode == 2
    assert "no AWS credentials found" in _single_error_line(result)


@pytest.mark.parametrize(
    ("make_source", "message"),
    [
        (lambda p: p / "does-not-exist", "does not exist"),
        pytest.param(
            lambda p: os.mkfifo(p / "fifo") or p / "fifo",
            "is neither a directory nor a regular file",
            marks=pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on Windows"),
        ),
    ],
)
def test_bad_source_is_exit_2_with_one_line(
    tmp_path: Path, s3_server: S3Server, server_env: dict[str, str], make_source: Any, message: str
) -> None:
    result = run_cli(server_env, str(make_source(tmp_path)), "s3://whatever", "--endpoint-url", s3_server.endpoint_url)
    assert result.returncode == 2
    assert message in _single_error_line(result)


def test_unreachable_endpoint_is_exit_2_with_one_line(tmp_path: Path, server_env: dict[str, str]) -> None:
    make_tree(tmp_path, {"a": b"a"})
    result = run_cli(server_env, str(tmp_path), "s3://some-bucket", "--endpoint-url", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "cannot reach" in _single_error_line(result)
