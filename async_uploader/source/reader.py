"""Read a byte range of a file, with its checksum, in one worker-thread hop.

Open, ``pread``, CRC32 and ``fstat`` happen in one thread call rather than one hop each (as an async file
wrapper would do), which keeps the event loop free and the per-file overhead low. The ``fstat`` after reading
is what detects a file that changed since it was walked: a torn read is refused, never uploaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

import anyio.to_thread

from ..errors import FileChangedError
from ..providers.base import Body
from .checksum import Algorithm, Checksum, Digest


@dataclass(frozen=True, slots=True)
class Chunk:
    body: Body
    """The bytes, positioned at 0, in a buffer the BytesIO owns: the HTTP layer sends it without a copy."""
    checksum: Checksum | None
    crc: int
    """The raw CRC (CRC algorithms only), to combine into the whole file's."""


_OPEN_FLAGS: Final = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
"""Binary mode where the OS has a text mode (Windows' ``O_BINARY``), and no descriptor leaked to a child."""
_OPEN_NOWAIT_FLAGS: Final = _OPEN_FLAGS | getattr(os, "O_NONBLOCK", 0)


def _preadv_into(fd: int, view: memoryview, offset: int) -> int:
    """Fill ``view`` from ``offset`` with positional reads straight into it (Linux, the BSDs, recent macOS)."""
    got = 0
    while got < len(view):
        with view[got:] as rest:
            n = os.preadv(fd, [rest], offset + got)
        if n == 0:
            break
        got += n
    return got


def _seek_into(fd: int, view: memoryview, offset: int) -> int:
    """Fill ``view`` from ``offset`` by seeking, then reading into it: where ``os.preadv`` is missing (Windows).

    Safe because every read opens its own descriptor (``_read_range``, ``_digest_range``): no other read moves
    this one's file position."""
    os.lseek(fd, offset, os.SEEK_SET)
    got = 0
    with open(fd, "rb", buffering=0, closefd=False) as file:
        while got < len(view):
            with view[got:] as rest:
                n = file.readinto(rest)
            if not n:
                break
            got += n
    return got


def _choose_read_into() -> Callable[[int, memoryview, int], int]:
    """How this platform reads a range into a buffer: chosen once, at import, not per read."""
    return _preadv_into if hasattr(os, "preadv") else _seek_into


_read_into = _choose_read_into()


def _read_range(
    path: str, offset: int, length: int, size: int, mtime_ns: int, algorithm: Algorithm | None, into: Body | None = None
) -> Chunk:
    # Read straight into the BytesIO's own buffer. botocore would wrap a bytes body in BytesIO(bytes), which
    # shares the bytes until aiohttp asks for getbuffer() and so copies every body once: twice the memory.
    # BytesIO(bytes(n)) shares the zeroed bytes (untouched calloc pages, no memory yet); the first getbuffer()
    # gives the BytesIO its own buffer of exactly n bytes, where growing it by writing would over-allocate 1/8.
    # A spare body of an earlier part (``ByteBudget.acquire_body``) is read into again, its pages already mapped;
    # if its bytes are still referenced (a request's leftovers), getbuffer() copies them first, never overwrites.
    body = into if into is not None and into.seek(0, 2) == length else Body(bytes(length))
    digest = Digest(algorithm) if algorithm is not None else None
    fd = os.open(path, _OPEN_FLAGS)
    try:
        got = 0
        if length:
            with body.getbuffer() as view:
                got = _read_into(fd, view, offset)
                if digest is not None:
                    digest.update(view)
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if st.st_size != size or st.st_mtime_ns != mtime_ns or got != length:
        raise FileChangedError("file changed while it was being uploaded (size or mtime differ from the walk)")
    body.seek(0)
    if digest is None:
        return Chunk(body, None, 0)
    return Chunk(body, digest.checksum(), digest.crc)


_RWF_NOWAIT: Final = getattr(os, "RWF_NOWAIT", 0)
_NOWAIT_UNSUPPORTED: Final = frozenset({errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})


def _read_cached(path: str, size: int, mtime_ns: int, algorithm: Algorithm | None) -> Chunk | None:
    """The whole file as ``_read_range`` reads it, if its bytes are all in the page cache; ``None`` if not: the
    read never waits for the disk (``RWF_NOWAIT``). Raises ``OSError`` with an errno in ``_NOWAIT_UNSUPPORTED``
    where the file system cannot read that way."""
    body = Body(bytes(size))
    digest = Digest(algorithm) if algorithm is not None else None
    # O_NONBLOCK: should the path have become a FIFO since the walk, opening it must not wait for a writer.
    fd = os.open(path, _OPEN_NOWAIT_FLAGS)
    try:
        if size:
            with body.getbuffer() as view:
                try:
                    got = os.preadv(fd, [view], 0, _RWF_NOWAIT)
                except BlockingIOError:
                    return None
                if got != size:
                    return None  # partly cached, or the file shrank: the full read finds out which
                if digest is not None:
                    digest.update(view)
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if st.st_size != size or st.st_mtime_ns != mtime_ns:
        raise FileChangedError("file changed while it was being uploaded (size or mtime differ from the walk)")
    body.seek(0)
    if digest is None:
        return Chunk(body, None, 0)
    return Chunk(body, digest.checksum(), digest.crc)


async def read_chunk(
    path: str,
    offset: int,
    length: int,
    *,
    size: int,
    mtime_ns: int,
    algorithm: Algorithm | None = Algorithm.CRC32,
    into: Body | None = None,
) -> Chunk:
    """Bytes ``[offset, offset + length)`` of the file whose walked stat was ``size`` and ``mtime_ns``, with
    their checksum computed as they are read; into ``into`` if it is a body of ``length`` bytes."""
    return await anyio.to_thread.run_sync(_read_range, path, offset, length, size, mtime_ns, algorithm, into)


SMALL_FILE_MAX_BYTES: Final = 1024 * 1024
"""Files up to this size are read in batches (``FileReader``); a batch's reads run one after the other."""
READ_THREADS: Final = 4
"""Batches read at once: parallel reads for a cold disk; while all are busy, the next batch grows."""
CACHED_READ_MAX_BYTES: Final = 128 * 1024 if _RWF_NOWAIT else 0
"""Files up to this size whose bytes are in the page cache may be read on the loop's thread (``FileReader``):
in a process whose loop is its own (``read_cached_files_on_loop``), never on an application's."""
SLOW_CACHED_READ_S: Final = 0.001
SLOW_CACHED_READS_MIN: Final = 16
"""Once this many cached reads, and a quarter of them all, took longer than ``SLOW_CACHED_READ_S`` (opening a
file over NFS, say), the loop stops reading files itself for the rest of the run. A busy machine preempting the
loop now and then delays a few reads only, and does not stop it."""

_loop_read_max_bytes = 0
"""The process's setting (``read_cached_files_on_loop``): what a ``FileReader`` may read on the loop's thread."""


def read_cached_files_on_loop(enabled: bool = True) -> None:
    """Let this process's runs read small files whose bytes are in the page cache on the event loop's own thread,
    sparing each a worker-thread hop (see ``FileReader``): ~10% less CPU per small file. For a process whose event
    loop is its own, as the CLI's is; a library never turns it on, since it promises an application's loop no
    file reads or checksums."""
    global _loop_read_max_bytes
    _loop_read_max_bytes = CACHED_READ_MAX_BYTES if enabled else 0


class _Read:
    __slots__ = ("algorithm", "future", "mtime_ns", "path", "size")

    def __init__(
        self, path: str, size: int, mtime_ns: int, algorithm: Algorithm | None, future: asyncio.Future[Chunk]
    ) -> None:
        self.path = path
        self.size = size
        self.mtime_ns = mtime_ns
        self.algorithm = algorithm
        self.future = future


class FileReader:
    """Whole files with their checksums, the small ones read on the loop's thread or many per worker-thread hop.

    A thread hop costs the loop as much as the read itself of a small file, most of it in handing the GIL back
    and forth, so one hop per file would dominate the client's CPU on a tree of small files. Where the loop is
    the process's own (``read_cached_files_on_loop``, or ``cached_read_max_bytes`` above 0; a library caller's
    loop gets no file reads), a small file whose bytes are all in the page cache (just written, or read before:
    the common case) is read right here, with ``RWF_NOWAIT`` so that the loop never waits for the disk; on a
    file system that cannot read that way, or where opening files turns out slow, this stops for the run. Every
    other small read asked for during one turn of the loop (or while all ``threads`` are busy) goes to a thread
    as one batch, and its results come back in one callback. Each read is the same as ``read_chunk``'s (open,
    pread, checksum, fstat; a torn read refused).

    A caller cancelled while its read is in a thread returns at once and the read's result is dropped: unlike
    ``read_chunk``, the wait is not shielded, which for at most ``SMALL_FILE_MAX_BYTES`` costs nothing worth a
    cancel scope per file. Larger files go through ``read_chunk``. Owned by one run on one loop; ``close`` it.
    """

    def __init__(
        self,
        *,
        threads: int = READ_THREADS,
        small_file_max_bytes: int = SMALL_FILE_MAX_BYTES,
        cached_read_max_bytes: int | None = None,
    ) -> None:
        """``cached_read_max_bytes``: files up to this size in the page cache are read on the loop's thread
        (``None``: as ``read_cached_files_on_loop`` set for the process, by default none)."""
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="async-uploader-read")
        self._threads = threads
        self._small_file_max_bytes = small_file_max_bytes
        self._cached_read_max_bytes = _loop_read_max_bytes if cached_read_max_bytes is None else cached_read_max_bytes
        self._cached_attempts = 0
        self._slow_cached_reads = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[_Read] = []
        self._busy = 0
        self._flush_due = False

    async def read(self, path: str, *, size: int, mtime_ns: int, algorithm: Algorithm | None) -> Chunk:
        """The whole file whose walked stat was ``size`` and ``mtime_ns``, with its checksum."""
        if size <= self._cached_read_max_bytes:
            chunk = self._read_cached(path, size, mtime_ns, algorithm)
            if chunk is not None:
                return chunk
        if size > self._small_file_max_bytes:
            return await read_chunk(path, 0, size, size=size, mtime_ns=mtime_ns, algorithm=algorithm)
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()  # once: each call costs a getpid() system call
        future: asyncio.Future[Chunk] = loop.create_future()
        self._pending.append(_Read(path, size, mtime_ns, algorithm, future))
        if not self._flush_due and self._busy < self._threads:
            self._flush_due = True
            loop.call_soon(self._flush, loop)
        return await future

    def _read_cached(self, path: str, size: int, mtime_ns: int, algorithm: Algorithm | None) -> Chunk | None:
        started = time.perf_counter()
        try:
            chunk = _read_cached(path, size, mtime_ns, algorithm)
        except OSError as exc:
            if exc.errno not in _NOWAIT_UNSUPPORTED:
                raise  # the file's own error (vanished, unreadable)
            self._cached_read_max_bytes = 0
            return None
        self._cached_attempts += 1
        if time.perf_counter() - started > SLOW_CACHED_READ_S:
            self._slow_cached_reads += 1
            if (
                self._slow_cached_reads >= SLOW_CACHED_READS_MIN
                and 4 * self._slow_cached_reads >= self._cached_attempts
            ):
                self._cached_read_max_bytes = 0
        return chunk

    def close(self) -> None:
        """Let the threads end once their batches are done (a result with no loop left to take it is dropped)."""
        self._executor.shutdown(wait=False)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._flush_due = False
        reads = [read for read in self._pending if not read.future.done()]  # cancelled already: not read
        self._pending = []
        if reads:
            self._busy += 1
            self._executor.submit(self._read_batch, loop, reads)

    def _read_batch(self, loop: asyncio.AbstractEventLoop, reads: list[_Read]) -> None:
        results: list[Chunk | Exception] = []
        for read in reads:
            try:
                results.append(_read_range(read.path, 0, read.size, read.size, read.mtime_ns, read.algorithm))
            except Exception as exc:  # the file's own outcome (vanished, changed, unreadable), raised in its task
                results.append(exc)
        # A closed loop: the run ended (cancelled) while this batch was read, and nobody waits for it.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._deliver, loop, reads, results)

    def _deliver(self, loop: asyncio.AbstractEventLoop, reads: list[_Read], results: list[Chunk | Exception]) -> None:
        self._busy -= 1
        for read, result in zip(reads, results, strict=True):
            if read.future.done():
                continue  # its caller was cancelled
            if isinstance(result, Exception):
                read.future.set_exception(result)
            else:
                read.future.set_result(result)
        if self._pending and not self._flush_due:
            self._flush(loop)


def _check_unchanged(path: str, size: int, mtime_ns: int) -> None:
    st = os.stat(path)
    if st.st_size != size or st.st_mtime_ns != mtime_ns:
        raise FileChangedError("file changed while it was being uploaded (size or mtime differ from the walk)")


async def check_unchanged(path: str, *, size: int, mtime_ns: int) -> None:
    """Stat once more before committing a multipart upload, whose parts were read at different times."""
    await anyio.to_thread.run_sync(_check_unchanged, path, size, mtime_ns)


VERIFY_BLOCK_BYTES: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RangeDigest:
    md5: str
    """Hex: what a part's ETag is on S3 (without SSE-KMS) and its compatibles."""
    checksum: Checksum | None
    crc: int


def _digest_range(
    path: str, offset: int, length: int, size: int, mtime_ns: int, algorithm: Algorithm | None
) -> RangeDigest:
    block = bytearray(VERIFY_BLOCK_BYTES)
    md5 = hashlib.md5(usedforsecurity=False)
    digest = Digest(algorithm) if algorithm is not None else None
    fd = os.open(path, _OPEN_FLAGS)
    try:
        done = 0
        with memoryview(block) as view:
            while done < length:
                want = min(len(block), length - done)
                got = _read_into(fd, view[:want], offset + done)
                if got == 0:
                    break
                md5.update(view[:got])
                if digest is not None:
                    digest.update(view[:got])
                done += got
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if st.st_size != size or st.st_mtime_ns != mtime_ns or done != length:
        raise FileChangedError("file changed while its uploaded parts were being checked")
    if digest is None:
        return RangeDigest(md5.hexdigest(), None, 0)
    return RangeDigest(md5.hexdigest(), digest.checksum(), digest.crc)


async def digest_range(
    path: str, offset: int, length: int, *, size: int, mtime_ns: int, algorithm: Algorithm | None
) -> RangeDigest:
    """MD5 and checksum of a byte range, read in 1 MiB blocks: checking an uploaded part against the file
    costs no memory budget."""
    return await anyio.to_thread.run_sync(_digest_range, path, offset, length, size, mtime_ns, algorithm)
