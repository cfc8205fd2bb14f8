"""A stream of unknown length (stdin, a pipe, a socket, an async generator) read a part at a time.

A stream cannot be read twice: each part's bytes are read once into a ``Body`` the engine holds in its memory
budget until the part has landed (a retry sends the same bytes again), and the checksum is computed as they
are read. A blocking file object is read in a worker thread, so the event loop never waits on a pipe.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

import anyio.to_thread

from ..providers.base import Body
from .checksum import Algorithm, Checksum, Digest


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """The next bytes of a stream: at most the size asked for, fewer only at its end (none: it has ended)."""

    body: Body
    size: int
    checksum: Checksum | None
    crc: int
    """The raw CRC of the bytes (CRC algorithms), to combine into the whole object's."""


class ByteStream(Protocol):
    """What the engine reads a stream through: the next ``size`` bytes, with their checksum."""

    async def read_chunk(self, size: int, algorithm: Algorithm | None) -> StreamChunk: ...


def _chunk(body: Body, got: int, digest: Digest | None) -> StreamChunk:
    body.truncate(got)
    body.seek(0)
    return StreamChunk(body, got, digest.checksum() if digest else None, digest.crc if digest else 0)


class FileObjectStream:
    """A binary file object (``sys.stdin.buffer``, an open pipe or file), read in a worker thread.

    A read is abandoned, not waited for, when the run is cancelled: a pipe whose writer never writes again must
    not hold Ctrl-C up."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    def _read(self, size: int, algorithm: Algorithm | None) -> StreamChunk:
        # The Body owns a buffer of exactly ``size`` bytes, read into in place (a short last part is truncated).
        body = Body(bytes(size))
        digest = Digest(algorithm) if algorithm is not None else None
        got = 0
        readinto = getattr(self._file, "readinto", None)
        with body.getbuffer() as view:
            while got < size:
                if readinto is not None:
                    n = readinto(view[got:])
                else:
                    data = self._file.read(size - got)
                    n = len(data)
                    view[got : got + n] = data
                if not n:
                    break
                got += n
            if digest is not None:
                digest.update(view[:got])
        return _chunk(body, got, digest)

    async def read_chunk(self, size: int, algorithm: Algorithm | None) -> StreamChunk:
        return await anyio.to_thread.run_sync(self._read, size, algorithm, abandon_on_cancel=True)


class AsyncIterableStream:
    """An async iterable of ``bytes`` (chunks of any size), cut into parts of the size asked for."""

    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self._chunks: AsyncIterator[bytes] = aiter(chunks)
        self._left = memoryview(b"")
        self._ended = False

    async def read_chunk(self, size: int, algorithm: Algorithm | None) -> StreamChunk:
        body = Body(bytes(size))
        digest = Digest(algorithm) if algorithm is not None else None
        got = 0
        with body.getbuffer() as view:
            while got < size:
                if not self._left:
                    if self._ended:
                        break
                    try:
                        self._left = memoryview(bytes(await anext(self._chunks)))
                    except StopAsyncIteration:
                        self._ended = True
                        break
                    continue
                n = min(size - got, len(self._left))
                view[got : got + n] = self._left[:n]
                self._left = self._left[n:]
                got += n
            if digest is not None:
                digest.update(view[:got])
        return _chunk(body, got, digest)


def byte_stream(source: BinaryIO | AsyncIterable[bytes]) -> ByteStream:
    """The stream to read ``source`` through: an async iterable of bytes, or a binary file object."""
    if isinstance(source, AsyncIterable):
        return AsyncIterableStream(source)
    return FileObjectStream(source)
