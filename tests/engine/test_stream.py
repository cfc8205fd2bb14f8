"""A stream to one key, against the in-memory store, with small parts: parts read one at a time within the
memory budget land byte for byte; a short stream is one put; a stream over 10,000 parts (3 here) or with a part
that fails is aborted, leaving nothing behind."""

from __future__ import annotations

import dataclasses
import io
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from async_uploader.config import Destination, UploadConfig
from async_uploader.engine import stream as stream_engine
from async_uploader.engine.stream import stream_part_size
from async_uploader.events import Event, FileDone, FileFailed, PartDone
from async_uploader.runner import run
from async_uploader.source.checksum import Algorithm, full_object_crc
from async_uploader.source.stream import byte_stream
from tests.memory_store import MemoryStore
from tests.trees import random_bytes

PART = 1024
"""Below S3's 5 MiB minimum, which only the option's parser enforces: a small stream makes many parts."""


def config(**changes: object) -> UploadConfig:
    base = UploadConfig(
        source=Path("-"),
        destination=Destination("bucket", "logs/", "s3", "logs/today.txt"),
        part_size=PART,
        multipart_threshold=PART,
        max_memory=3 * PART,
        concurrency=4,
        retries=1,
        state_file=None,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("source", ["file", "iterable"])
async def test_a_stream_lands_byte_for_byte_in_parts_within_the_budget(source: str) -> None:
    data = random_bytes(10 * PART + 17, seed=5)
    store = MemoryStore()
    events: list[Event] = []
    given = io.BytesIO(data) if source == "file" else chunks(data, 333)

    result = await run(config(), store, events.append, stream=byte_stream(given))

    assert (result.uploaded, result.failed, result.bytes_uploaded) == (1, 0, len(data))
    stored = store.objects["logs/today.txt"]
    assert (stored.data, stored.parts) == (data, 11)
    assert set(stored.metadata) == {"mtime"}  # no size (unknown at the start), no mode
    [done] = [e for e in events if isinstance(e, FileDone)]
    assert (done.path, done.key, done.size, done.parts) == ("-", "logs/today.txt", len(data), 11)
    assert done.checksum == full_object_crc(Algorithm.CRC32, [(zlib.crc32(data), len(data))]).value
    assert sum(e.bytes for e in events if isinstance(e, PartDone)) == len(data)
    assert result.peak_buffered_bytes <= 3 * PART
    assert store.max_bytes_in_flight <= 3 * PART


async def test_a_stream_that_ends_within_its_first_part_is_one_put() -> None:
    store = MemoryStore()
    result = await run(config(), store, stream=byte_stream(io.BytesIO(b"short")))
    assert result.uploaded == 1
    stored = store.objects["logs/today.txt"]
    assert (stored.data, stored.parts, stored.metadata["size"]) == (b"short", 1, "5")
    assert stored.headers.content_type == "text/plain"  # guessed from the key's name


async def test_an_empty_stream_is_one_empty_put_whatever_the_threshold() -> None:
    store = MemoryStore()
    result = await run(config(multipart_threshold=0), store, stream=byte_stream(io.BytesIO(b"")))
    assert result.uploaded == 1
    assert (store.objects["logs/today.txt"].data, store.objects["logs/today.txt"].parts) == (b"", 1)


async def test_a_stream_over_the_part_limit_fails_and_is_aborted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_engine, "MAX_PARTS", 3)
    store = MemoryStore()
    events: list[Event] = []

    result = await run(config(), store, events.append, stream=byte_stream(io.BytesIO(bytes(3 * PART + 1))))

    assert (result.uploaded, result.failed) == (0, 1)
    [failed] = [e for e in events if isinstance(e, FileFailed)]
    assert "longer than 3 parts" in failed.reason
    assert "--expected-size" in failed.reason
    assert (store.objects, store.uploads) == ({}, {})
    assert store.aborted == ["logs/today.txt"]


async def test_a_stream_of_exactly_the_part_limit_lands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_engine, "MAX_PARTS", 3)
    store = MemoryStore()
    result = await run(config(), store, stream=byte_stream(io.BytesIO(bytes(3 * PART))))
    assert result.uploaded == 1
    assert store.objects["logs/today.txt"].parts == 3


async def test_a_failing_part_aborts_the_upload_and_leaves_nothing() -> None:
    store = MemoryStore(fail_parts={("logs/today.txt", 4)})
    result = await run(config(), store, stream=byte_stream(io.BytesIO(bytes(8 * PART))))
    assert (result.uploaded, result.failed) == (0, 1)
    assert (store.objects, store.uploads) == ({}, {})


def test_expected_size_picks_a_part_size_that_fits_it_in_10000_parts() -> None:
    mib = 1024 * 1024
    assert stream_part_size(8 * mib, None) == 8 * mib
    assert stream_part_size(8 * mib, 10 * 1024 * mib) == 8 * mib
    assert stream_part_size(8 * mib, 200 * 1024 * mib) == 21 * mib  # 200 GiB / 10,000 = 20.48 MiB, rounded up
