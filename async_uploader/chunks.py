"""Read a byte range of a file, with its checksum, in one worker-thread hop.

Open, ``pread``, CRC32 and ``fstat`` happen in one thread call rather than one hop each (as an async file
wrapper would do), which keeps the event loop free and the per-file overhead low. The ``fstat`` after reading
is what detects a file that changed since it was walked: a torn read is refused, never uploaded.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass

import anyio.to_thread

from .checksum import crc32_digest
from .errors import FileChangedError


@dataclass(frozen=True, slots=True)
class Chunk:
    data: bytes
    checksum: str


def _read_range(path: str, offset: int, length: int, size: int, mtime_ns: int) -> Chunk:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        data = os.pread(fd, length, offset) if length else b""
        if len(data) < length:  # pread may return short only at end of file, or on odd file systems
            pieces = [data]
            got = len(data)
            while got < length:
                piece = os.pread(fd, length - got, offset + got)
                if not piece:
                    break
                pieces.append(piece)
                got += len(piece)
            data = b"".join(pieces)
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if st.st_size != size or st.st_mtime_ns != mtime_ns or len(data) != length:
        raise FileChangedError("file changed while it was being uploaded (size or mtime differ from the walk)")
    return Chunk(data, crc32_digest(zlib.crc32(data)))


async def read_chunk(path: str, offset: int, length: int, *, size: int, mtime_ns: int) -> Chunk:
    """Bytes ``[offset, offset + length)`` of the file whose walked stat was ``size`` and ``mtime_ns``."""
    return await anyio.to_thread.run_sync(_read_range, path, offset, length, size, mtime_ns)


def _check_unchanged(path: str, size: int, mtime_ns: int) -> None:
    st = os.stat(path)
    if st.st_size != size or st.st_mtime_ns != mtime_ns:
        raise FileChangedError("file changed while it was being uploaded (size or mtime differ from the walk)")


async def check_unchanged(path: str, *, size: int, mtime_ns: int) -> None:
    """Stat once more before committing a multipart upload, whose parts were read at different times."""
    await anyio.to_thread.run_sync(_check_unchanged, path, size, mtime_ns)
