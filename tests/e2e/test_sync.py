"""``--delete`` against real servers, through the CLI: the destination ends up mirroring the source, and every
guard deletes nothing when it holds."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from async_uploader.events import DeletePlanned, Event, ObjectDeleted
from tests.e2e.conftest import Backend, S3Backend
from tests.e2e.test_faults import uploader
from tests.e2e.test_upload import run_cli
from tests.trees import make_tree
from tools.seaweedfs import S3Server

TREE = {"index.html": b"<html>", "css/site.css": b"body{}", "notes.tmp": b"scratch"}
STALE = ["site/old.html", "site/gone/deep/page.html", "site/css/old.css", "site/x.tmp"]
OUTSIDE = ["sitex/keep", "site-other/keep", "other/keep"]


def keys(client: Any, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def put(client: Any, bucket: str, *names: str) -> None:
    for name in names:
        client.put_object(Bucket=bucket, Key=name, Body=b"stale")


def records(report: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]


def test_delete_mirrors_the_source_and_keeps_what_is_outside_or_excluded(tmp_path: Path, s3_backend: S3Backend) -> None:
    source = tmp_path / "src"
    make_tree(source, TREE)
    client, bucket = s3_backend.client, s3_backend.bucket
    put(client, bucket, *STALE, *OUTSIDE)
    report = tmp_path / "report.jsonl"
    common = (str(source), s3_backend.url("site"), *s3_backend.cli_args(), "--delete", "--exclude", "*.tmp")
    result = run_cli(s3_backend.env, *common, "--report", str(report), "--summary-format", "json")
    assert result.returncode == 0, result.stderr
    assert keys(client, bucket) == sorted(["site/index.html", "site/css/site.css", "site/x.tmp", *OUTSIDE])
    deleted = sorted(r["key"] for r in records(report) if r.get("status") == "deleted")
    assert deleted == ["site/css/old.css", "site/gone/deep/page.html", "site/old.html"]
    assert json.loads(result.stdout.splitlines()[-1])["deleted"] == 3
    assert "deleted 3" in result.stderr
    # The excluded key goes only when asked; the next run has nothing more to delete.
    again = run_cli(s3_backend.env, *common, "--delete-excluded", "--summary-format", "json")
    assert again.returncode == 0, again.stderr
    assert keys(client, bucket) == sorted(["site/index.html", "site/css/site.css", *OUTSIDE])
    assert json.loads(again.stdout.splitlines()[-1])["deleted"] == 1


def test_the_botocore_path_deletes_alike(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, server_env: dict[str, str]
) -> None:
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"a"})
    put(s3_client, bucket, "p/gone", "pq/kept")
    args = (str(source), f"s3://{bucket}/p", "--endpoint-url", s3_server.endpoint_url, "--delete", "--lean", "off")
    result = run_cli(server_env, *args)
    assert result.returncode == 0, result.stderr
    assert keys(s3_client, bucket) == ["p/a.txt", "pq/kept"]


def test_guards_delete_nothing(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, server_env: dict[str, str]
) -> None:
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"a"})
    stale = [f"p/stale{i}" for i in range(5)]
    put(s3_client, bucket, *stale)
    target = (f"s3://{bucket}/p", "--endpoint-url", s3_server.endpoint_url, "--delete")

    over = run_cli(server_env, str(source), *target, "--max-delete", "2")
    assert over.returncode != 0
    assert (
        over.stderr.strip().splitlines()[-1].endswith("5 keys would be deleted, over --max-delete 2: nothing deleted")
    )
    assert keys(s3_client, bucket) == sorted(["p/a.txt", *stale])

    dry = run_cli(server_env, str(source), *target, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert sorted(line for line in dry.stdout.splitlines() if line.startswith("would delete")) == [
        f"would delete {key}" for key in stale
    ]
    assert "would delete 5 keys" in dry.stderr
    assert keys(s3_client, bucket) == sorted(["p/a.txt", *stale])

    empty = tmp_path / "empty"
    empty.mkdir()
    refused = run_cli(server_env, str(empty), *target)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "async-uploader: error: --delete: SOURCE has no file: nothing deleted (--allow-empty-source empties the prefix)"
    ]
    assert len(keys(s3_client, bucket)) == 6

    (source / os.fsdecode(b"bad-\xff")).write_bytes(b"x")  # not UTF-8: it cannot be a key, so it fails
    failing = run_cli(server_env, str(source), *target)
    assert failing.returncode == 1
    assert "nothing deleted, as 1 files failed" in failing.stderr
    assert len(keys(s3_client, bucket)) == 6

    emptied = run_cli(server_env, str(empty), *target, "--allow-empty-source")
    assert emptied.returncode == 0, emptied.stderr
    assert keys(s3_client, bucket) == []


@pytest.mark.parametrize(
    ("extra", "word"),
    [
        (("--shard", "0/2"), "--shard"),
        (("--dask", "tcp://127.0.0.1:9"), "--dask"),
        (("--retry-failed", "earlier.jsonl"), "--retry-failed"),
    ],
)
def test_delete_is_refused_with_a_partial_view_of_the_tree(
    tmp_path: Path, server_env: dict[str, str], extra: tuple[str, ...], word: str
) -> None:
    (tmp_path / "earlier.jsonl").write_text("")
    extra = tuple(str(tmp_path / arg) if arg.endswith(".jsonl") else arg for arg in extra)
    result = run_cli(server_env, str(tmp_path), "s3://my-bucket/p", "--delete", *extra)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert word in result.stderr


@pytest.mark.parametrize("backend", ["azurite"], indirect=True)
def test_azure_deletes_in_blob_batches(tmp_path: Path, backend: Backend) -> None:
    from azure.storage.blob import BlobServiceClient

    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"a"})
    connection = backend.env["AZURE_STORAGE_CONNECTION_STRING"]
    with BlobServiceClient.from_connection_string(connection) as service:
        container = service.get_container_client(backend.bucket)
        for name in [*(f"p/old{i}" for i in range(300)), "pq/kept"]:  # more than one batch of 256
            container.upload_blob(name, b"stale")
        result = run_cli(backend.env, str(source), backend.url("p"), *backend.cli_args, "--delete")
        assert result.returncode == 0, result.stderr
        assert sorted(blob.name for blob in container.list_blobs()) == ["p/a.txt", "pq/kept"]
    assert "deleted 300" in result.stderr


async def test_the_library_takes_the_same_options_and_sends_deletions_as_events(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any
) -> None:
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"a"})
    put(s3_client, bucket, "p/gone")
    events: list[Event] = []
    async with uploader(s3_server) as up:
        planned = await up.upload(source, f"s3://{bucket}/p", delete=True, dry_run=True, on_event=events.append)
        assert keys(s3_client, bucket) == ["p/gone"]
        done = await up.upload(source, f"s3://{bucket}/p", delete=True, max_delete=1, on_event=events.append)
    assert (planned.would_delete, done.deleted, done.uploaded) == (1, 1, 1)
    assert [type(e).__name__ for e in events if isinstance(e, DeletePlanned | ObjectDeleted)] == [
        "DeletePlanned",
        "ObjectDeleted",
    ]
    assert keys(s3_client, bucket) == ["p/a.txt"]
