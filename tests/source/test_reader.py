"""Tests for ``async_uploader.source.reader.FileReader``: whole files with their checksums, small ones read in batches.

What a caller must get is what ``read_chunk`` gives (the bytes, the checksum, a torn or vanished file refused),
whichever batch its read lands in; and many concurrent small reads must share thread hops."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

import async_uploader.source.reader
from async_uploader.errors import FileChangedError
from async_uploader.providers.base import Body
from async_uploader.source.checksum import Algorithm, checksum_of
from async_uploader.source.reader import CACHED_READ_MAX_BYTES, Chunk, FileReader, read_chunk
from tests.trees import random_bytes, write_file

DEADLINE_S = 10
SMALL_FILES = 40


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _threads_only() -> FileReader:
    """A reader that reads every file in a worker thread: the library's (its caller's loop reads no files)."""
    return FileReader()


def _cached_on_loop() -> FileReader:
    """A reader that reads small files in the page cache on the loop: the CLI's."""
    return FileReader(cached_read_max_bytes=CACHED_READ_MAX_BYTES)


@dataclass
class Reads:
    """Where a reader's files were read: on the loop's thread (from the page cache), or in thread hops."""

    on_loop: int = 0
    hops: int = 0


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    """Counts, for every reader of the test, the files read on the loop and the batches handed to a thread."""
    seen = Reads()
    module = async_uploader.source.reader
    read_cached, read_batch = module._read_cached, FileReader._read_batch

    def counted_read_cached(*args: object) -> Chunk | None:
        chunk = read_cached(*args)  # type: ignore[arg-type]
        seen.on_loop += chunk is not None
        return chunk

    def counted_read_batch(self: FileReader, *args: object) -> None:
        seen.hops += 1
        read_batch(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "_read_cached", counted_read_cached)
    monkeypatch.setattr(FileReader, "_read_batch", counted_read_batch)
    return seen


async def test_concurrent_small_reads_get_their_own_bytes_and_checksums_in_shared_hops(
    tmp_path: Path, reads: Reads
) -> None:
    files = {write_file(tmp_path, f"f{i}", random_bytes(100 + i * 37, seed=i)): random_bytes(100 + i * 37, seed=i)
             for i in range(SMALL_FILES)}  # fmt: skip
    reader = _threads_only()
    got: dict[Path, tuple[bytes, str | None, int]] = {}

    async def read(path: Path) -> None:
        size, mtime_ns = _stat(path)
        chunk = await reader.read(str(path), size=size, mtime_ns=mtime_ns, algorithm=Algorithm.CRC32)
        value = chunk.checksum.value if chunk.checksum is not None else None
        got[path] = (chunk.body.getvalue(), value, chunk.crc)

    try:
        with anyio.fail_after(DEADLINE_S):
            async with anyio.create_task_group() as group:
                for path in files:
                    group.start_soon(read, path)
    finally:
        reader.close()
    assert got == {
        path: (data, checksum_of(Algorithm.CRC32, data).value, zlib.crc32(data)) for path, data in files.items()
    }
    assert reads.hops < SMALL_FILES  # reads asked for in the same turn of the loop shared a hop


@pytest.mark.parametrize("in_thread", [True, False], ids=["thread", "cached"])
async def test_one_files_failure_is_raised_in_its_own_caller_only(tmp_path: Path, in_thread: bool) -> None:
    good = write_file(tmp_path, "good", b"fine")
    changed = write_file(tmp_path, "changed", b"before")
    gone = write_file(tmp_path, "gone", b"soon gone")
    walked = {path: _stat(path) for path in (good, changed, gone)}
    changed.write_bytes(b"after, and longer")
    os.unlink(gone)
    reader = _threads_only() if in_thread else _cached_on_loop()
    outcomes: dict[str, object] = {}

    async def read(path: Path) -> None:
        size, mtime_ns = walked[path]
        try:
            chunk = await reader.read(str(path), size=size, mtime_ns=mtime_ns, algorithm=None)
        except (FileChangedError, FileNotFoundError) as exc:
            outcomes[path.name] = type(exc)
        else:
            outcomes[path.name] = (chunk.body.getvalue(), chunk.checksum)

    try:
        with anyio.fail_after(DEADLINE_S):
            async with anyio.create_task_group() as group:
                for path in walked:
                    group.start_soon(read, path)
    finally:
        reader.close()
    assert outcomes == {"good": (b"fine", None), "changed": FileChangedError, "gone": FileNotFoundError}


async def test_a_file_above_the_small_size_is_read_as_read_chunk_reads_it(tmp_path: Path, reads: Reads) -> None:
    data = random_bytes(5000, seed=7)
    path = write_file(tmp_path, "big", data)
    size, mtime_ns = _stat(path)
    reader = FileReader(small_file_max_bytes=1000, cached_read_max_bytes=1000)
    try:
        chunk = await reader.read(str(path), size=size, mtime_ns=mtime_ns, algorithm=Algorithm.SHA256)
    finally:
        reader.close()
    expected = await read_chunk(str(path), 0, size, size=size, mtime_ns=mtime_ns, algorithm=Algorithm.SHA256)
    assert chunk.body.getvalue() == data
    assert chunk.checksum == expected.checksum
    assert reads == Reads(on_loop=0, hops=0)  # neither on the loop nor batched: read_chunk's own hop


async def test_a_cancelled_read_leaves_the_others_in_its_batch_unharmed(tmp_path: Path, reads: Reads) -> None:
    paths = [write_file(tmp_path, f"f{i}", random_bytes(64, seed=i)) for i in range(3)]
    reader = _threads_only()
    got: dict[str, bytes] = {}
    cancelled = anyio.CancelScope()
    cancelled.cancel()  # the middle read is cancelled as it waits, in the same batch as the other two

    async def read(path: Path) -> None:
        size, mtime_ns = _stat(path)
        with cancelled if path is paths[1] else anyio.CancelScope():
            chunk = await reader.read(str(path), size=size, mtime_ns=mtime_ns, algorithm=None)
            got[path.name] = chunk.body.getvalue()

    try:
        with anyio.fail_after(DEADLINE_S):
            async with anyio.create_task_group() as group:
                for path in paths:
                    group.start_soon(read, path)
    finally:
        reader.close()
    assert cancelled.cancelled_caught
    assert got == {paths[0].name: paths[0].read_bytes(), paths[2].name: paths[2].read_bytes()}
    assert reads.hops == 1


@pytest.mark.parametrize("in_thread", [True, False], ids=["thread", "cached"])
@pytest.mark.parametrize("algorithm", [None, Algorithm.CRC32, Algorithm.SHA256])
async def test_an_empty_file_reads_as_no_bytes(tmp_path: Path, algorithm: Algorithm | None, in_thread: bool) -> None:
    path = write_file(tmp_path, "empty", b"")
    size, mtime_ns = _stat(path)
    reader = _threads_only() if in_thread else _cached_on_loop()
    try:
        chunk = await reader.read(str(path), size=size, mtime_ns=mtime_ns, algorithm=algorithm)
    finally:
        reader.close()
    assert chunk.body.getvalue() == b""
    assert chunk.checksum == (checksum_of(algorithm, b"") if algorithm is not None else None)


needs_nowait = pytest.mark.skipif(not CACHED_READ_MAX_BYTES, reason="no RWF_NOWAIT reads on this platform")


@needs_nowait
async def test_a_file_in_the_page_cache_is_read_without_a_thread_hop(tmp_path: Path, reads: Reads) -> None:
    data = random_bytes(40_000, seed=3)
    path = write_file(tmp_path, "hot", data)  # just written: its bytes are in the page cache
    size, mtime_ns = _stat(path)
    reader = _cached_on_loop()
    try:
        chunk = await reader.read(str(path), size=size, mtime_ns=mtime_ns, algorithm=Algorithm.CRC32)
    finally:
        reader.close()
    assert chunk.body.getvalue() == data
    assert chunk.checksum == checksum_of(Algorithm.CRC32, data)
    assert chunk.crc == zlib.crc32(data)
    assert reads == Reads(on_loop=1, hops=0)


@needs_nowait
@pytest.mark.parametrize(
    ("refusal", "cached_afterwards"),
    [(BlockingIOError(errno.EAGAIN, "not cached"), True), (OSError(errno.EOPNOTSUPP, "not supported"), False)],
    ids=["not-in-cache", "unsupported"],
)
async def test_a_read_the_cache_cannot_serve_goes_to_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: Reads, refusal: OSError, cached_afterwards: bool
) -> None:
    data = random_bytes(5000, seed=4)
    path = write_file(tmp_path, "cold", data)
    size, mtime_ns = _stat(path)
    real_preadv = os.preadv
    refused: list[str] = []

    def preadv(fd: int, buffers: list[memoryview], offset: int, flags: int = 0) -> int:
        if flags & os.RWF_NOWAIT and not refused:  # the kernel's answer for pages not in memory, or no support
            refused.append("once")
            raise refusal
        return real_preadv(fd, buffers, offset, flags)

    monkeypatch.setattr(os, "preadv", preadv)
    reader = _cached_on_loop()
    try:
        first = await reader.read(str(path), size=size, mtime_ns=mtime_ns, algorithm=Algorithm.SHA256)
        assert reads == Reads(on_loop=0, hops=1)
        again = await reader.read(str(path), size=size, mtime_ns=mtime_ns, algorithm=Algorithm.SHA256)
    finally:
        reader.close()
    assert first.body.getvalue() == again.body.getvalue() == data
    assert first.checksum == again.checksum == checksum_of(Algorithm.SHA256, data)
    # Not in the cache: the next file is tried in the cache again. No support: never again this run.
    assert reads == (Reads(on_loop=1, hops=1) if cached_afterwards else Reads(on_loop=0, hops=2))


async def test_a_spare_body_is_read_into_without_touching_bytes_still_in_use(tmp_path: Path) -> None:
    data = random_bytes(3 * 4096 + 5, seed=3)
    st = os.stat(write_file(tmp_path, "f.bin", data))

    async def read(offset: int, length: int, into: Body | None = None) -> Chunk:
        return await read_chunk(
            str(tmp_path / "f.bin"), offset, length, size=st.st_size, mtime_ns=st.st_mtime_ns, into=into
        )

    first = await read(0, 4096)
    sent = first.body.getvalue()  # what a request may still hold: the body's own bytes, shared
    second = await read(4096, 4096, into=first.body)
    assert second.body is first.body
    assert (second.body.getvalue(), second.crc) == (data[4096:8192], zlib.crc32(data[4096:8192]))
    assert sent == data[:4096]  # copied away from, not overwritten
    del sent
    where = buffer_address(second.body)
    third = await read(8192, 4096, into=second.body)
    assert third.body.getvalue() == data[8192:12288]
    assert buffer_address(third.body) == where  # nothing held the bytes: read in place, no new pages
    last = await read(12288, 5, into=third.body)
    assert last.body is not third.body  # not its size: a body of its own
    assert last.body.getvalue() == data[12288:]


def buffer_address(body: Body) -> int:
    with body.getbuffer() as view:
        first_byte = ctypes.c_char.from_buffer(view)
        address = ctypes.addressof(first_byte)
        del first_byte
    return address


async def test_without_positional_reads_ranges_and_digests_read_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows has neither ``os.preadv`` nor ``os.pread``: the reader seeks, then reads into the buffer."""
    module = async_uploader.source.reader
    data = random_bytes(3 * module.VERIFY_BLOCK_BYTES + 123, seed=7)
    path = write_file(tmp_path, "big", data)
    size, mtime_ns = _stat(path)
    monkeypatch.delattr(os, "preadv")
    monkeypatch.delattr(os, "pread")
    monkeypatch.setattr(module, "_read_into", module._choose_read_into())
    assert module._read_into is module._seek_into
    offset, length = 1000, 2 * module.VERIFY_BLOCK_BYTES + 5

    chunks = [
        await read_chunk(str(path), offset, length, size=size, mtime_ns=mtime_ns, algorithm=Algorithm.CRC32)
        for _ in range(2)  # the second read's fresh descriptor starts where it is told, not where the first ended
    ]
    digest = await module.digest_range(str(path), offset, length, size=size, mtime_ns=mtime_ns, algorithm=None)
    reader = _threads_only()
    try:
        whole = await reader.read(str(path), size=size, mtime_ns=mtime_ns, algorithm=None)
    finally:
        reader.close()

    expected = data[offset : offset + length]
    assert [chunk.body.getvalue() for chunk in chunks] == [expected, expected]
    assert chunks[0].checksum == checksum_of(Algorithm.CRC32, expected)
    assert digest.md5 == hashlib.md5(expected, usedforsecurity=False).hexdigest()
    assert whole.body.getvalue() == data
    with pytest.raises(FileChangedError):  # a file shorter than walked is still refused
        await read_chunk(str(path), 0, size, size=size + 1, mtime_ns=mtime_ns, algorithm=None)
