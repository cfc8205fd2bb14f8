"""``--shard K/N`` against a real SeaweedFS: shards run as separate processes cover the tree exactly once, and
``merge-reports`` adds their reports up."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from async_uploader.config import MIB
from tests.e2e.test_cli_features import report_records
from tests.e2e.test_upload import assert_bucket_holds, run_cli
from tests.trees import make_tree, random_bytes
from tools.seaweedfs import S3Server

SHARDS = 3


def start_shard(
    k: int, source: Path, report: Path, bucket: str, s3_server: S3Server, env: dict[str, str]
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "async_uploader", "upload", str(source), f"s3://{bucket}/p",
            "--endpoint-url", s3_server.endpoint_url, "--part-size", "5MiB", "--multipart-threshold", "5MiB",
            "--shard", f"{k}/{SHARDS}", "--report", str(report), "-q",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_shards_run_apart_upload_every_file_exactly_once(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    source = tmp_path / "src"
    files = {f"d{i % 9}/f{i}.txt": f"file {i}".encode() for i in range(300)}
    files.update({"flat/big-1.bin": random_bytes(6 * MIB, seed=1), "flat/big-2.bin": random_bytes(7 * MIB, seed=2)})
    make_tree(source, files)
    reports = [tmp_path / f"shard-{k}.jsonl" for k in range(SHARDS)]
    shards = [start_shard(k, source, report, bucket, s3_server, server_env) for k, report in enumerate(reports)]
    for shard in shards:
        _, stderr = shard.communicate(timeout=300)
        assert shard.returncode == 0, stderr

    uploaded = Counter(r["path"] for report in reports for r in report_records(report) if "path" in r)
    assert uploaded == Counter(list(files))  # every file, each exactly once
    assert all(0 < sum(1 for r in report_records(rep) if "path" in r) < len(files) for rep in reports)
    assert_bucket_holds(s3_client, bucket, "p/", source)

    merged = tmp_path / "merged.jsonl"
    result = run_cli(
        server_env, *map(str, reports), "-o", str(merged), "--summary-format", "json", command="merge-reports"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["uploaded"], summary["failed"]) == (len(files), 0)
    assert report_records(merged)[-1]["summary"]["uploaded"] == len(files)
