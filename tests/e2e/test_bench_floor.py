"""The benchmark's floor uploader does the same per-file work as the tool: its objects are the tool's, byte for byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.test_upload import assert_bucket_holds
from tests.trees import make_tree
from tools.bench import uploaders
from tools.bench.peers import PeerInstall
from tools.seaweedfs import S3Server


def _floor_job(source: Path, bucket: str, server: S3Server, tmp_path: Path) -> uploaders.Invocation:
    job = uploaders.UploadJob(source, bucket, "floor", server, tmp_path, tmp_path / "cache")
    return uploaders.UPLOADERS["floor"](job, PeerInstall(tmp_path, Path(sys.executable)))


def test_floor_uploads_every_file_with_the_tools_metadata(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any
) -> None:
    source = tmp_path / "tree"
    make_tree(source, {f"d{i % 3}/sub/f{i}.bin": bytes([i]) * (i * 97) for i in range(40)} | {"ü n/é.txt": b"x"})
    invocation = _floor_job(source, bucket, s3_server, tmp_path)
    done = subprocess.run(invocation.argv, env=invocation.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "uploaded 41 files" in done.stderr
    assert_bucket_holds(s3_client, bucket, "floor/", source)


def test_floor_refuses_a_file_it_would_need_multipart_for(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any
) -> None:
    source = tmp_path / "tree"
    make_tree(source, {"big.bin": b"\0" * (1024 * 1024 + 1)})
    invocation = _floor_job(source, bucket, s3_server, tmp_path)
    done = subprocess.run(invocation.argv, env=invocation.env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "big.bin: larger than" in done.stderr
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket)
