"""``upload FILE DEST``: one file to a folder (``dir/`` or the bucket), or to the exact key the URL names, on
SeaweedFS and moto (and Azurite once); a re-run skips it after listing that one key, and its report and headers
are a tree's."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from async_uploader.config import MIB
from async_uploader.events import Event, FileDone, FileSkipped, PartDone
from tests.e2e.conftest import Backend, S3Backend, read_bucket
from tests.e2e.test_cli_features import report_records
from tests.e2e.test_faults import MULTIPART, assert_no_orphans, leftover_uploads, uploader
from tests.e2e.test_incremental import operation
from tests.e2e.test_upload import expected_metadata, run_cli
from tests.fault_proxy import FaultProxy
from tests.trees import random_bytes


@pytest.mark.parametrize(
    ("destination", "key"),
    [("dir/", "dir/notes.json"), ("", "notes.json"), ("/", "notes.json"), ("exact/key.txt", "exact/key.txt")],
)
async def test_a_file_lands_where_the_url_says_then_a_rerun_skips_it(
    tmp_path: Path, s3_backend: S3Backend, destination: str, key: str
) -> None:
    path = tmp_path / "notes.json"
    path.write_bytes(b'{"a": 1}')
    (tmp_path / "other.txt").write_bytes(b"not uploaded")
    url = f"s3://{s3_backend.bucket}{destination if destination in ('', '/') else '/' + destination}"
    async with uploader(s3_backend.server) as up:
        first = await up.upload(path, url)
        events: list[Event] = []
        second = await up.upload(path, url, on_event=events.append)

    assert (first.uploaded, first.failed) == (1, 0)
    stored = read_bucket(s3_backend.client, s3_backend.bucket)
    assert list(stored) == [key]
    assert stored[key] == (b'{"a": 1}', expected_metadata(path))
    head = s3_backend.client.head_object(Bucket=s3_backend.bucket, Key=key)
    assert head["ContentType"] == ("text/plain" if key.endswith(".txt") else "application/json")  # from the key
    assert (second.uploaded, second.skipped) == (0, 1)
    skips = [(e.path, e.key, e.reason) for e in events if isinstance(e, FileSkipped)]
    assert skips == [("notes.json", key, "unchanged")]


async def test_a_rerun_lists_the_one_key_not_the_folder(tmp_path: Path, s3_backend: S3Backend) -> None:
    path = tmp_path / "app.tar.gz"
    path.write_bytes(b"tarball")
    s3_backend.client.put_object(Bucket=s3_backend.bucket, Key="releases/other", Body=b"x")
    url = f"s3://{s3_backend.bucket}/releases/"
    async with FaultProxy(s3_backend.server.endpoint_url) as proxy, uploader(s3_backend.server, proxy.url) as up:
        await up.upload(path, url)
        proxy.request_lines.clear()
        second = await up.upload(path, url)

    assert (second.uploaded, second.skipped) == (0, 1)
    listings = [line for line in proxy.request_lines if operation(line) == "ListObjectsV2"]
    assert len(listings) == 1
    assert "prefix=releases%2Fapp.tar.gz" in listings[0]
    assert "HeadObject" not in {operation(line) for line in proxy.request_lines}


def test_cli_uploads_a_large_file_to_an_exact_key_in_parts_with_its_report(
    tmp_path: Path, s3_backend: S3Backend
) -> None:
    path = tmp_path / "build.bin"
    data = random_bytes(11 * MIB, seed=3)
    path.write_bytes(data)
    report = tmp_path / "report.jsonl"
    args = (str(path), f"s3://{s3_backend.bucket}/artifacts/latest.bin", *s3_backend.cli_args())
    parts = ("--part-size", "5MiB", "--multipart-threshold", "5MiB")

    first = run_cli(s3_backend.env, *args, *parts, "--report", str(report), "--no-progress")

    assert first.returncode == 0, first.stderr
    stored = read_bucket(s3_backend.client, s3_backend.bucket)
    assert list(stored) == ["artifacts/latest.bin"]
    assert stored["artifacts/latest.bin"][0] == data
    [record] = [r for r in report_records(report) if "path" in r]
    assert (record["path"], record["key"], record["status"], record["parts"]) == (
        "build.bin",
        "artifacts/latest.bin",
        "uploaded",
        3,
    )
    second = run_cli(s3_backend.env, *args, *parts, "--no-progress", "--summary-format", "json")
    assert second.returncode == 0, second.stderr
    assert '"skipped": 1' in second.stdout


@pytest.mark.parametrize("backend", ["azurite"], indirect=True)
def test_cli_uploads_a_file_to_a_container_folder_and_to_an_exact_blob(backend: Backend, tmp_path: Path) -> None:
    path = tmp_path / "index.html"
    path.write_bytes(b"<html></html>")
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))

    into_folder = run_cli(backend.env, str(path), f"{backend.scheme}://{backend.bucket}/site/", *backend.cli_args)
    exact = run_cli(backend.env, str(path), backend.url("pages/home"), *backend.cli_args)
    again = run_cli(backend.env, str(path), f"{backend.scheme}://{backend.bucket}/site/", *backend.cli_args)

    assert (into_folder.returncode, exact.returncode, again.returncode) == (0, 0, 0), exact.stderr
    stored = backend.read("")
    assert sorted(stored) == ["pages/home", "site/index.html"]
    assert stored["site/index.html"][1] == expected_metadata(path)
    assert "Uploaded 0 files" in again.stderr


async def test_an_interrupted_single_file_resumes_from_its_parts(tmp_path: Path, s3_backend: S3Backend) -> None:
    """As a tree's large file: cancelled with ``keep_partial`` after its first part, then resumed from it (the
    open upload found by listing the uploads of that one key)."""
    data = random_bytes(2 * 5 * MIB, seed=21)
    path = tmp_path / "image.iso"
    path.write_bytes(data)
    url = f"s3://{s3_backend.bucket}/images/latest.iso"
    options: dict[str, Any] = {**MULTIPART, "concurrency": 1, "keep_partial": True}
    landed = anyio.Event()

    def on_event(event: Event) -> None:
        if isinstance(event, PartDone):
            landed.set()

    async with uploader(s3_backend.server) as up:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(partial(up.upload, path, url, on_event=on_event, **options))
                await landed.wait()
                scope.cancel()
        assert leftover_uploads(s3_backend.client, s3_backend.bucket) == ["images/latest.iso"]
        events: list[Event] = []

        result = await up.upload(path, url, on_event=events.append, **options)

    assert (result.uploaded, result.failed) == (1, 0), result.failures
    (done,) = (e for e in events if isinstance(e, FileDone))
    assert (done.path, done.parts, done.resumed_parts) == ("image.iso", 2, 1)
    assert read_bucket(s3_backend.client, s3_backend.bucket)["images/latest.iso"][0] == data
    assert_no_orphans(s3_backend.client, s3_backend.bucket)
