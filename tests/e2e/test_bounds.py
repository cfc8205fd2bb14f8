"""Flat memory, shown by instruments rather than timing: a few thousand files against the real server never
exceed the request, byte and task bounds, however many files there are."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import async_uploader
from async_uploader.config import MIB
from async_uploader.engine.destination import LISTINGS_AT_ONCE
from async_uploader.events import Event
from tests.trees import make_tree, random_bytes
from tools.seaweedfs import S3Server

CONCURRENCY = 16
MAX_MEMORY = 12 * MIB


async def test_live_tasks_requests_and_buffered_bytes_stay_bounded(
    tmp_path: Path, bucket: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    make_tree(tmp_path, {f"d{i % 40}/f{i}.bin": random_bytes(2048, seed=i) for i in range(3000)})
    make_tree(tmp_path, {f"big/{i}.bin": random_bytes(16 * MIB, seed=i) for i in range(3)})
    live_tasks: list[int] = []

    def sample(event: Event) -> None:
        live_tasks.append(len(asyncio.all_tasks()))

    result = await async_uploader.upload(
        tmp_path, f"s3://{bucket}", endpoint_url=s3_server.endpoint_url, concurrency=CONCURRENCY,
        max_memory=MAX_MEMORY, part_size="5MiB", multipart_threshold="5MiB", on_event=sample,
    )  # fmt: skip
    assert result.uploaded == 3003
    assert result.failed == 0
    assert 1 < result.peak_requests <= CONCURRENCY
    assert 0 < result.peak_buffered_bytes <= MAX_MEMORY
    # Workers and part tasks are bounded by the concurrency, plus the walker, the pre-count, the caller and the
    # destination's listings: never one task per file (3003 files here), nor per folder (41 here).
    assert max(live_tasks) <= 2 * CONCURRENCY + 8 + LISTINGS_AT_ONCE + 2
