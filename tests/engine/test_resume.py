"""Resuming an interrupted multipart upload (``async_uploader.engine.resume``) against an in-memory store: an upload
of this very file is continued from the parts that still match it, any other is aborted."""

from __future__ import annotations

from pathlib import Path

import anyio

from async_uploader.config import MIB
from async_uploader.engine.multipart import checksum_mode
from async_uploader.events import Event, FileDone, PartDone
from async_uploader.options import make_config
from async_uploader.runner import run
from async_uploader.source.checksum import Algorithm
from tests.memory_store import MemoryStore
from tests.trees import make_tree, random_bytes

PART = 5 * MIB


def config_for(source: Path, **options: object):  # type: ignore[no-untyped-def]
    defaults: dict[str, object] = {"part_size": PART, "multipart_threshold": PART}
    defaults.update(options)
    return make_config(source, "s3://bucket/pre", **defaults)  # type: ignore[arg-type]


def test_the_checksum_mode_names_how_an_upload_was_created() -> None:
    assert checksum_mode(Algorithm.CRC32, True) == "crc32/full"
    assert checksum_mode(Algorithm.SHA256, False) == "sha256/composite"
    assert checksum_mode(None, False) == "none"


async def interrupt_after_parts(source: Path, store: MemoryStore, parts: int, **options: object) -> None:
    """Run until ``parts`` parts have landed, then cancel the run, as Ctrl-C does."""
    landed = 0
    done = anyio.Event()

    def on_event(event: Event) -> None:
        nonlocal landed
        if isinstance(event, PartDone):
            landed += 1
            if landed == parts:
                done.set()

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(run, config_for(source, concurrency=1, **options), store, on_event)
            await done.wait()
            scope.cancel()


async def test_an_interrupted_upload_kept_open_is_resumed_from_its_parts(tmp_path: Path) -> None:
    data = random_bytes(5 * PART + 7, seed=11)
    make_tree(tmp_path, {"big.bin": data})
    store = MemoryStore()
    await interrupt_after_parts(tmp_path, store, 3, keep_partial=True)
    assert len(store.uploads) == 1
    events: list[Event] = []

    result = await run(config_for(tmp_path), store, events.append)

    assert result.uploaded == 1
    done = next(e for e in events if isinstance(e, FileDone))
    assert done.resumed_parts >= 3
    assert store.objects["pre/big.bin"].data == data
    assert store.uploads == {}


async def test_a_part_that_no_longer_matches_the_file_is_uploaded_again(tmp_path: Path) -> None:
    data = random_bytes(4 * PART, seed=12)
    make_tree(tmp_path, {"big.bin": data})
    store = MemoryStore()
    await interrupt_after_parts(tmp_path, store, 3, keep_partial=True)
    (_, _, received) = next(iter(store.uploads.values()))
    received[2] = b"\0" * len(received[2])  # damaged where it is stored
    kept = len(received)
    events: list[Event] = []

    await run(config_for(tmp_path), store, events.append)

    done = next(e for e in events if isinstance(e, FileDone))
    assert done.resumed_parts == kept - 1
    assert store.objects["pre/big.bin"].data == data


async def test_uploads_that_cannot_be_resumed_are_aborted(tmp_path: Path) -> None:
    data = random_bytes(3 * PART, seed=13)
    make_tree(tmp_path, {"big.bin": data})
    store = MemoryStore()
    await interrupt_after_parts(tmp_path, store, 1, keep_partial=True)
    (tmp_path / "big.bin").write_bytes(random_bytes(3 * PART, seed=14))  # another version of the file
    foreign = await store.create_multipart(
        "pre/big.bin", metadata={}, checksum=None, full_object=False
    )  # one this machine knows nothing of
    events: list[Event] = []

    await run(config_for(tmp_path), store, events.append)

    assert next(e for e in events if isinstance(e, FileDone)).resumed_parts == 0
    assert store.uploads == {}
    assert foreign not in store.uploads
    assert store.objects["pre/big.bin"].data == random_bytes(3 * PART, seed=14)


async def test_without_keep_partial_an_interruption_aborts_and_nothing_is_resumed(tmp_path: Path) -> None:
    make_tree(tmp_path, {"big.bin": random_bytes(4 * PART, seed=15)})
    store = MemoryStore()
    await interrupt_after_parts(tmp_path, store, 2)
    assert store.uploads == {}
    events: list[Event] = []

    await run(config_for(tmp_path), store, events.append)

    assert next(e for e in events if isinstance(e, FileDone)).resumed_parts == 0


async def test_an_upload_is_resumed_only_with_the_checksums_it_was_created_with(tmp_path: Path) -> None:
    make_tree(tmp_path, {"big.bin": random_bytes(4 * PART, seed=17)})
    store = MemoryStore()
    await interrupt_after_parts(tmp_path, store, 2, keep_partial=True)
    events: list[Event] = []

    await run(config_for(tmp_path, checksum="sha256"), store, events.append)

    assert next(e for e in events if isinstance(e, FileDone)).resumed_parts == 0
    assert store.uploads == {}


async def test_under_sse_kms_a_part_without_a_listed_checksum_is_sent_again_not_matched_by_etag(
    tmp_path: Path,
) -> None:
    # The memory store's part ETags are MD5s; under SSE-KMS S3's are not, so nothing may match parts by them.
    data = random_bytes(3 * PART + 7, seed=12)
    make_tree(tmp_path, {"big.bin": data})
    store = MemoryStore()
    await interrupt_after_parts(tmp_path, store, 2, keep_partial=True, checksum="none", sse="aws:kms")
    events: list[Event] = []

    result = await run(config_for(tmp_path, checksum="none", sse="aws:kms"), store, events.append)

    assert result.uploaded == 1
    assert next(e for e in events if isinstance(e, FileDone)).resumed_parts == 0
    assert store.objects["pre/big.bin"].data == data
    assert store.objects["pre/big.bin"].headers.sse == "aws:kms"
    assert {headers.sse for headers in store.part_headers} == {"aws:kms"}
