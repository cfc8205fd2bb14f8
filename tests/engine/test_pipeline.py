"""The engine against an in-memory store: every file lands or is reported, bounds hold, failures clean up."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from async_uploader.config import MIB
from async_uploader.engine.plan import object_metadata
from async_uploader.events import (
    Event,
    FileDone,
    FileFailed,
    FileRetried,
    FileStarted,
    PartDone,
    RunFinished,
    TotalsKnown,
)
from async_uploader.options import make_config
from async_uploader.providers.base import StoredObject
from async_uploader.runner import run
from tests.memory_store import MemoryStore
from tests.trees import make_tree, random_bytes

PART = 5 * MIB


def config_for(source: Path, **options: object):  # type: ignore[no-untyped-def]
    defaults: dict[str, object] = {"part_size": PART, "multipart_threshold": PART}
    defaults.update(options)
    return make_config(source, "s3://bucket/pre/fix", **defaults)  # type: ignore[arg-type]


async def test_every_file_lands_with_its_bytes_and_metadata(tmp_path: Path) -> None:
    files = make_tree(
        tmp_path,
        {
            "a.txt": b"alpha",
            "empty": b"",
            ".hidden": b"h",
            "deep/er/still/x.bin": random_bytes(1000),
            "big.bin": random_bytes(2 * PART + 123, seed=1),
            "exact.bin": random_bytes(PART, seed=2),
        },
    )
    store = MemoryStore()
    events: list[Event] = []
    result = await run(config_for(tmp_path), store, events.append)

    assert result.uploaded == len(files)
    assert result.failed == 0
    assert result.bytes_uploaded == sum(len(d) for d in files.values())
    assert {k: v.data for k, v in store.objects.items()} == {f"pre/fix/{rel}": d for rel, d in files.items()}
    for rel in files:
        st = os.stat(tmp_path / rel)
        assert store.objects[f"pre/fix/{rel}"].metadata == object_metadata(st.st_size, st.st_mtime_ns, st.st_mode)
    assert store.objects["pre/fix/big.bin"].parts == 3
    assert store.objects["pre/fix/exact.bin"].parts == 1
    assert not store.uploads
    assert isinstance(events[-1], RunFinished)
    assert events[-1].result == result
    assert sum(e.bytes for e in events if isinstance(e, PartDone)) == len(files["big.bin"]) + PART


async def test_failed_part_aborts_the_upload_and_the_rest_still_lands(tmp_path: Path) -> None:
    make_tree(tmp_path, {"big.bin": random_bytes(3 * PART, seed=3), "small.txt": b"ok"})
    store = MemoryStore(fail_parts={("big.bin", 2)})
    events: list[Event] = []
    config = make_config(tmp_path, "s3://bucket", part_size=PART, multipart_threshold=PART)
    result = await run(config, store, events.append)

    assert (result.uploaded, result.failed) == (1, 1)
    assert result.failures[0][0] == "big.bin"
    assert "injected failure" in result.failures[0][1]
    assert "big.bin" not in store.objects
    assert store.uploads == {}
    assert store.aborted == ["big.bin"]
    assert store.objects["small.txt"].data == b"ok"
    assert [e.path for e in events if isinstance(e, FileFailed)] == ["big.bin"]


async def test_requests_and_bytes_in_flight_stay_within_the_limits(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"d{i % 7}/f{i}": random_bytes(3000, seed=i) for i in range(300)})
    make_tree(tmp_path, {f"big{i}.bin": random_bytes(4 * PART, seed=i) for i in range(3)})
    store = MemoryStore()
    config = config_for(tmp_path, concurrency=8, max_memory=2 * PART + PART // 2)
    result = await run(config, store)

    assert result.uploaded == 303
    assert result.failed == 0
    assert 1 < store.max_in_flight <= 8
    assert store.max_bytes_in_flight <= config.max_memory


async def test_a_file_that_changes_once_is_uploaded_again_from_a_fresh_stat(tmp_path: Path) -> None:
    path = tmp_path / "growing.bin"
    path.write_bytes(random_bytes(3 * PART, seed=4))
    store = MemoryStore()
    events: list[Event] = []

    def append_on_first_part(key: str) -> None:
        if store.uploads and path.stat().st_size == 3 * PART:
            with path.open("ab") as f:
                f.write(b"more")

    store.before_request = append_on_first_part
    result = await run(config_for(tmp_path), store, events.append)

    assert result.uploaded == 1
    assert store.objects["pre/fix/growing.bin"].data == path.read_bytes()  # the new content, whole
    assert store.objects["pre/fix/growing.bin"].metadata["size"] == str(3 * PART + 4)
    assert store.uploads == {}
    assert store.aborted == ["pre/fix/growing.bin"]  # the torn first attempt was abandoned
    assert any(isinstance(e, FileRetried) and "changed" in e.reason for e in events)


async def test_a_file_that_keeps_changing_fails_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_bytes(random_bytes(3 * PART, seed=6))
    store = MemoryStore()

    def append_always(key: str) -> None:  # between the parts of every attempt
        with path.open("ab") as f:
            f.write(b"line\n")

    store.before_request = append_always
    result = await run(config_for(tmp_path), store)

    assert result.failed == 1
    assert "kept changing" in result.failures[0][1]
    assert "pre/fix/log.txt" not in store.objects
    assert store.uploads == {}


async def test_cancelling_the_run_aborts_multipart_uploads_in_flight(tmp_path: Path) -> None:
    make_tree(tmp_path, {"big.bin": random_bytes(6 * PART, seed=5)})
    store = MemoryStore()
    parts_seen = anyio.Event()
    events: list[Event] = []

    def on_event(event: Event) -> None:
        events.append(event)
        if isinstance(event, PartDone):
            parts_seen.set()

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(run, config_for(tmp_path, concurrency=2), store, on_event)
            await parts_seen.wait()
            scope.cancel()
    assert scope.cancelled_caught
    assert store.uploads == {}
    assert store.aborted == ["pre/fix/big.bin"]
    assert "pre/fix/big.bin" not in store.objects


async def test_unreadable_names_are_reported_not_dropped(tmp_path: Path) -> None:
    bad = os.fsdecode(b"bad\xff.txt")
    (tmp_path / bad).write_bytes(b"x")
    (tmp_path / "good.txt").write_bytes(b"y")
    store = MemoryStore()
    result = await run(config_for(tmp_path), store)
    assert (result.uploaded, result.failed) == (1, 1)
    assert "not valid UTF-8" in result.failures[0][1]


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_file_started_precedes_done_for_every_file(tmp_path: Path, concurrency: int) -> None:
    make_tree(tmp_path, {f"f{i}": b"z" * i for i in range(20)})
    events: list[Event] = []
    await run(config_for(tmp_path, concurrency=concurrency), MemoryStore(), events.append)
    started = [e.path for e in events if isinstance(e, FileStarted)]
    done = [e.path for e in events if isinstance(e, FileDone)]
    assert sorted(started) == sorted(done) == sorted(f"f{i}" for i in range(20))


@pytest.mark.parametrize("count_totals", [True, False])
async def test_the_tree_is_counted_up_front_only_when_asked(tmp_path: Path, count_totals: bool) -> None:
    files = make_tree(tmp_path, {f"d{i % 3}/f{i}": random_bytes(100, seed=i) for i in range(12)})
    events: list[Event] = []
    result = await run(config_for(tmp_path), MemoryStore(), events.append, count_totals=count_totals)
    assert result.uploaded == len(files)
    totals = [event for event in events if isinstance(event, TotalsKnown)]
    assert totals == ([TotalsKnown(len(files), 1200)] if count_totals else [])


class NoChecksumStore(MemoryStore):
    """Answers no checksum, as moto does; ``checks_bodies``: checks each body itself without saying its checksum,
    as Azure does for a single put with ``Content-MD5``."""

    checks_bodies = False

    async def put_object(self, key, stream, *, checksum, metadata, **options):  # type: ignore[no-untyped-def]
        stored = await super().put_object(key, stream, checksum=checksum, metadata=metadata, **options)
        return StoredObject(stored.etag, None, body_verified=self.checks_bodies and checksum is not None)

    async def complete_multipart(self, key, upload_id, parts, *, full_checksum, **options):  # type: ignore[no-untyped-def]
        stored = await super().complete_multipart(key, upload_id, parts, full_checksum=full_checksum, **options)
        return StoredObject(stored.etag, None)


class BodyCheckingStore(NoChecksumStore):
    checks_bodies = True


@pytest.mark.parametrize(
    ("store_type", "checksum", "expected"),
    [
        (MemoryStore, "crc32", {"small": "checksum", "big": "checksum"}),
        (MemoryStore, "none", {"small": "size", "big": "size"}),
        (NoChecksumStore, "crc32", {"small": "size", "big": "size"}),
        (BodyCheckingStore, "sha256", {"small": "checksum", "big": "size"}),
    ],
    ids=["checksums", "checksum-none", "no-checksum-answered", "bodies-checked"],
)
async def test_a_file_is_verified_by_checksum_only_when_the_store_confirmed_it(
    tmp_path: Path, store_type: type[MemoryStore], checksum: str, expected: dict[str, str]
) -> None:
    """The checksum a store answered was compared and matched; one it did not answer proves nothing: that file
    was checked by size only, and counted so, whatever the user asked for."""
    make_tree(tmp_path, {"small": b"small", "big": random_bytes(PART + 1, seed=2)})
    events: list[Event] = []
    result = await run(config_for(tmp_path, checksum=checksum), store_type(), events.append)
    assert {e.path: e.verified for e in events if isinstance(e, FileDone)} == expected
    assert result.checked_by_size == list(expected.values()).count("size")
