"""The library as an application embeds it: a reused Uploader, events, cancellation, anyio, a free event loop."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiobotocore.session
import anyio
import pytest

import async_uploader
from async_uploader.config import MIB
from async_uploader.errors import BucketError
from async_uploader.events import Event, FileDone, FileStarted, PartDone, RunFinished
from async_uploader.source.checksum import Digest
from tests.e2e.conftest import read_bucket
from tests.trees import make_tree, random_bytes
from tools.seaweedfs import S3Server


@pytest.fixture
def credentials(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)


async def test_one_uploader_runs_several_uploads_on_a_client_the_app_owns(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, credentials: None
) -> None:
    make_tree(tmp_path, {"a.txt": b"a", "sub/b.txt": b"b"})
    session = aiobotocore.session.get_session()
    async with session.create_client("s3", endpoint_url=s3_server.endpoint_url) as client:
        async with async_uploader.Uploader(client=client) as uploader:
            first = await uploader.upload(tmp_path, f"s3://{bucket}/one")
            second = await uploader.upload(tmp_path, f"s3://{bucket}/two", include=["*.txt"], exclude=["sub/"])
        # The application's client outlives the Uploader: it was never the Uploader's to close.
        listed = await client.list_objects_v2(Bucket=bucket)
    assert (first.uploaded, second.uploaded) == (2, 1)
    assert sorted(read_bucket(s3_client, bucket)) == ["one/a.txt", "one/sub/b.txt", "two/a.txt"]
    assert listed["KeyCount"] == 3


async def test_events_iterate_in_order_and_end_with_the_result(
    tmp_path: Path, bucket: str, s3_server: S3Server, credentials: None
) -> None:
    make_tree(tmp_path, {"small.txt": b"s", "big.bin": random_bytes(11 * MIB, seed=1)})
    seen: list[Event] = []
    async with async_uploader.Uploader(endpoint_url=s3_server.endpoint_url) as uploader:
        async for event in uploader.events(tmp_path, f"s3://{bucket}", part_size="5MiB", multipart_threshold="5MiB"):
            seen.append(event)
    finished = seen[-1]
    assert isinstance(finished, RunFinished)
    assert finished.result.uploaded == 2
    for path in ("small.txt", "big.bin"):
        kinds = [type(e) for e in seen if getattr(e, "path", None) == path]
        assert kinds[0] is FileStarted
        assert kinds[-1] is FileDone
    assert sum(e.bytes for e in seen if isinstance(e, PartDone)) == 11 * MIB


async def test_events_raise_run_level_errors(tmp_path: Path, s3_server: S3Server, credentials: None) -> None:
    make_tree(tmp_path, {"a": b"a"})
    async with async_uploader.Uploader(endpoint_url=s3_server.endpoint_url) as uploader:
        with pytest.raises(BucketError, match="does not exist"):
            async for _ in uploader.events(tmp_path, "s3://no-such-bucket-for-events"):
                pass


async def test_cancelling_mid_file_leaves_no_incomplete_upload(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, credentials: None
) -> None:
    make_tree(tmp_path, {"huge.bin": random_bytes(40 * MIB, seed=2)})
    part_landed = anyio.Event()

    def on_event(event: Event) -> None:
        if isinstance(event, PartDone):
            part_landed.set()

    async def upload() -> None:
        await async_uploader.upload(
            tmp_path, f"s3://{bucket}", endpoint_url=s3_server.endpoint_url, part_size="5MiB",
            multipart_threshold="5MiB", max_bandwidth="4MiB/s", on_event=on_event,
        )  # fmt: skip

    async with anyio.create_task_group() as group:
        group.start_soon(upload)
        await part_landed.wait()
        assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads")  # mid-file, for real
        cancelled_at = time.monotonic()
        group.cancel_scope.cancel()
    took_s = time.monotonic() - cancelled_at
    assert took_s < 10, f"cancellation took {took_s:.1f} s"
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert read_bucket(s3_client, bucket) == {}


def test_runs_under_anyio_with_the_asyncio_backend(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, credentials: None
) -> None:
    make_tree(tmp_path, {"x.txt": b"x"})

    async def main() -> async_uploader.UploadResult:
        return await async_uploader.upload(tmp_path, f"s3://{bucket}/anyio", endpoint_url=s3_server.endpoint_url)

    result = anyio.run(main, backend="asyncio")
    assert result.uploaded == 1
    assert sorted(read_bucket(s3_client, bucket)) == ["anyio/x.txt"]


async def test_reads_and_checksums_never_run_on_the_event_loop(
    tmp_path: Path, bucket: str, s3_server: S3Server, credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An application's loop must stay free: every file read and every checksum happens in a worker thread.
    (Asserted on the calls themselves, not on a latency that a busy machine would make flaky.)"""
    make_tree(tmp_path, {f"s/{i}.bin": random_bytes(20_000, seed=i) for i in range(400)})
    make_tree(tmp_path, {f"big{i}.bin": random_bytes(12 * MIB, seed=i) for i in range(2)})
    loop_thread = threading.current_thread()
    calls: Counter[str] = Counter()
    real_preadv, real_update = os.preadv, Digest.update

    def preadv(fd: int, buffers: list[Any], offset: int) -> int:
        calls["read on the loop" if threading.current_thread() is loop_thread else "read"] += 1
        return real_preadv(fd, buffers, offset)

    def update(self: Digest, data: bytes | memoryview) -> None:
        calls["checksum on the loop" if threading.current_thread() is loop_thread else "checksum"] += 1
        real_update(self, data)

    monkeypatch.setattr(os, "preadv", preadv)
    monkeypatch.setattr(Digest, "update", update)
    result = await async_uploader.upload(
        tmp_path, f"s3://{bucket}", endpoint_url=s3_server.endpoint_url, part_size="5MiB"
    )
    assert result.uploaded == 402
    assert calls["read"] >= 402
    assert calls["checksum"] >= 402
    assert calls["read on the loop"] == calls["checksum on the loop"] == 0


def test_the_asyncio_example_runs(tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str]) -> None:
    make_tree(tmp_path, {"a.txt": b"a"})
    example = Path(__file__).parents[2] / "examples" / "embed_asyncio.py"
    result = subprocess.run(
        [sys.executable, str(example), str(tmp_path), f"s3://{bucket}/ex", "--endpoint-url", s3_server.endpoint_url],
        env=server_env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "stored ex/a.txt (1 bytes)" in result.stdout
    assert "1 uploaded, 0 failed; copy: 1 uploaded" in result.stdout
