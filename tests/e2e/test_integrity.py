"""Integrity against a real SeaweedFS: every checksum algorithm is sent and checked, a large file's whole CRC
is checked by the server, and a body damaged on its way is refused, never stored. Against moto, which answers no
checksum: its files are reported as checked by size only, never as verified."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path
from typing import Any

import google_crc32c
import pytest

from async_uploader.config import MIB
from async_uploader.events import Event, FileDone, FileRetried
from tests.e2e.conftest import S3Backend, read_bucket
from tests.e2e.test_cli_features import report_records
from tests.e2e.test_faults import MULTIPART, assert_no_orphans, uploader
from tests.e2e.test_upload import run_cli
from tests.fault_proxy import FaultProxy
from tests.trees import make_tree, random_bytes
from tools.seaweedfs import S3Server

WHOLE_CRC = {
    "crc32": ("ChecksumCRC32", zlib.crc32),
    "crc32c": ("ChecksumCRC32C", google_crc32c.value),
}


@pytest.mark.parametrize("algorithm", ["crc32", "crc32c", "sha256", "none"])
def test_every_checksum_choice_uploads_and_a_large_file_carries_its_whole_crc(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any, algorithm: str
) -> None:
    source = tmp_path / "src"
    files = make_tree(source, {"small.txt": b"small", "big.bin": random_bytes(11 * MIB, seed=3), "empty": b""})
    report = tmp_path / "report.jsonl"
    result = run_cli(
        server_env, str(source), f"s3://{bucket}", "--endpoint-url", s3_server.endpoint_url,
        "--part-size", "5MiB", "--checksum", algorithm, "--report", str(report),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    verified = {r["path"]: r["verified"] for r in report_records(report) if "path" in r}
    assert verified == dict.fromkeys(files, "size" if algorithm == "none" else "checksum")
    assert ("3 files were checked by size only (--checksum none)" in result.stderr) == (algorithm == "none")
    assert "warning" not in result.stderr
    assert {key: data for key, (data, _) in read_bucket(s3_client, bucket).items()} == files
    head = s3_client.head_object(Bucket=bucket, Key="big.bin", ChecksumMode="ENABLED")
    if algorithm in WHOLE_CRC:
        field, crc = WHOLE_CRC[algorithm]
        assert head[field] == base64.b64encode(crc(files["big.bin"]).to_bytes(4, "big")).decode()
        assert head.get("ChecksumType") == "FULL_OBJECT"


def test_a_store_that_returns_no_checksum_is_said_to_have_checked_by_size_only(
    tmp_path: Path, s3_backend: S3Backend
) -> None:
    """moto answers no checksum: its files are never reported as verified, the run says so once, and the report,
    its summary and the JSON summary count them. SeaweedFS answers the checksums, which match: nothing to say."""
    source = tmp_path / "src"
    files = make_tree(source, {"small.txt": b"small", "two-parts.bin": random_bytes(10 * MIB, seed=5), "empty": b""})
    report = tmp_path / "report.jsonl"
    result = run_cli(
        s3_backend.env, str(source), s3_backend.url("p"), *s3_backend.cli_args(), "--part-size", "5MiB",
        "--report", str(report), "--summary-format", "json", "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert {key: data for key, (data, _) in read_bucket(s3_backend.client, s3_backend.bucket, "p/").items()} == {
        f"p/{rel}": data for rel, data in files.items()
    }
    records = report_records(report)
    assert {r["path"]: r["verified"] for r in records if "path" in r} == dict.fromkeys(files, s3_backend.verified)
    unverified = 0 if s3_backend.returns_checksums else len(files)
    assert records[-1]["summary"]["checked_by_size"] == unverified
    assert json.loads(result.stdout)["checked_by_size"] == unverified
    warnings = [line for line in result.stderr.splitlines() if "checked by size only" in line]
    if s3_backend.returns_checksums:
        assert warnings == []
    else:
        assert warnings == ["  warning: the store returned no checksum: 3 files were checked by size only"]


@pytest.mark.parametrize("persistent", [False, True])
async def test_a_part_damaged_on_the_way_is_refused_never_stored(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, persistent: bool
) -> None:
    """The proxy flips a byte of an UploadPart body after the uploader computed its CRC32: the server must
    refuse it, the uploader must retry it (or fail the file), and the object must never hold the damage."""
    data = random_bytes(12 * MIB, seed=8)
    make_tree(tmp_path, {"big.bin": data})
    damage = FaultProxy(
        s3_server.endpoint_url,
        fault_rate=1.0,
        faults=("corrupt",),
        only=r"^PUT \S*partNumber=2",
        max_faults=None if persistent else 1,
    )
    events: list[Event] = []
    async with damage as proxy, uploader(s3_server, proxy.url) as up:
        result = await up.upload(
            tmp_path, f"s3://{bucket}", on_event=events.append, retries=3 if persistent else 20, **MULTIPART
        )
    assert proxy.counts["corrupt"] >= 1
    retried = [e.reason for e in events if isinstance(e, FileRetried)]
    assert retried
    assert all("checksum" in reason for reason in retried), retried
    if persistent:
        assert result.failed == 1
        assert "checksum" in result.failures[0][1]
        assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    else:
        assert [e.path for e in events if isinstance(e, FileDone)] == ["big.bin"]
        assert read_bucket(s3_client, bucket)["big.bin"][0] == data
    assert_no_orphans(s3_client, bucket)
