"""Read a byte range of a file, with its checksum, in one worker-thread hop.

Open, ``pread``, CRC32 and ``fstat`` happen in one thread call rather than one hop each (as an async file
wrapper would do), which keeps the event loop free and the per-file overhead low. The ``fstat`` after reading
is what detects a file that changed since it was walked: a torn read is refused, never uploaded.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Final

import anyio.to_thread

from .checksum import Algorithm, Checksum, Digest
from .errors import FileChangedError
from .providers.base import Body


@dataclass(frozen=True, slots=True)
class Chunk:
    body: Body
    """The bytes, positioned at 0, in a buffer the BytesIO owns: the HTTP layer sends it without a copy."""
    checksum: Checksum | None
    crc: int
    """The raw CRC (CRC algorithms only), to combine into the whole file's."""


def _read_into(fd: int, view: memoryview, offset: int) -> int:
    got = 0
    while got < len(view):
        with view[got:] as rest:
            n = os.preadv(fd, [rest], offset + got)
        if n == 0:
            break
        got += n
    return got


def _read_range(path: str, offset: int, length: int, size: int, mtime_ns: int, algorithm: Algorithm | None) -> Chunk:
    # Read straight into the BytesIO's own buffer. botocore would wrap a bytes body in BytesIO(bytes), which
    # shares the bytes until aiohttp asks for getbuffer() and so copies every body once: twice the memory.
    # BytesIO(bytes(n)) shares the zeroed bytes (untouched calloc pages, no memory yet); the first getbuffer()
    # gives the BytesIO its own buffer of exactly n bytes, where growing it by writing would over-allocate 1/8.
    body = Body(bytes(length))
    digest = Digest(algorithm) if algorithm is not None else None
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
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


async def read_chunk(
    path: str, offset: int, length: int, *, size: int, mtime_ns: int, algorithm: Algorithm | None = Algorithm.CRC32
) -> Chunk:
    """Bytes ``[offset, offset + length)`` of the file whose walked stat was ``size`` and ``mtime_ns``, with
    their checksum computed as they are read."""
    return await anyio.to_thread.run_sync(_read_range, path, offset, length, size, mtime_ns, algorithm)


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
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
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
