"""A file's content hashes for ``--compare checksum``, all from one read: its MD5, the multipart ETags it would have
under several part sizes, and its checksum in one of the upload's algorithms.

A listing gives each object's ETag; on S3 and its compatibles (without SSE-KMS or SSE-C) a single put's ETag is the
MD5 of its bytes, and a multipart upload's is the MD5 of its parts' binary MD5s followed by ``-N``. Which part size
wrote an object is not listed, so each candidate (``plan.etag_part_sizes``) is hashed beside the others: the file is
read once, in blocks of ``HASH_BLOCK_BYTES`` whatever the number of candidates.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..errors import FileChangedError
from .checksum import Algorithm, Checksum, Digest
from .reader import _read_into

HASH_BLOCK_BYTES: Final = 1024 * 1024
"""What one file's hashing holds in memory (drawn from the run's byte budget by the caller)."""

_OPEN_FLAGS: Final = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True, slots=True)
class ContentHashes:
    """What ``hash_file`` found: ETags as S3 writes them, bare (no quotes), lowercase hex."""

    md5: str
    multipart_etags: dict[int, str]
    """Part size -> the multipart ETag (``hex-N``) the file would have if uploaded in parts of that size."""
    checksum: Checksum | None
    """The whole file's checksum in the algorithm asked for, if one was."""


class _PartHasher:
    """The multipart ETag of one candidate part size, fed the file's blocks in order."""

    __slots__ = ("digests", "filled", "part", "part_size")

    def __init__(self, part_size: int) -> None:
        self.part_size = part_size
        self.part: Any = hashlib.md5(usedforsecurity=False)
        self.filled = 0
        self.digests: list[bytes] = []

    def update(self, view: memoryview) -> None:
        start = 0
        while start < len(view):
            take = min(self.part_size - self.filled, len(view) - start)
            self.part.update(view[start : start + take])
            self.filled += take
            start += take
            if self.filled == self.part_size:
                self.digests.append(self.part.digest())
                self.part = hashlib.md5(usedforsecurity=False)
                self.filled = 0

    def etag(self) -> str:
        digests = [*self.digests, self.part.digest()] if self.filled else self.digests
        return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"


def hash_file(
    path: str,
    *,
    size: int,
    mtime_ns: int,
    part_sizes: Sequence[int],
    algorithm: Algorithm | None,
    block: bytearray,
    md5: bool = True,
) -> ContentHashes:
    """Read ``path`` once through ``block`` (blocking: run it in a worker thread) and hash it every way asked.

    ``md5=False`` leaves the whole file's MD5 out (``""``): a multipart ETag is compared with the parts' MD5s only,
    and a second MD5 over every byte would double the work. Refuses (``FileChangedError``) a file whose size or
    mtime is no longer the walk's: its hashes would describe neither version.
    """
    whole = hashlib.md5(usedforsecurity=False) if md5 else None
    parts = [_PartHasher(part_size) for part_size in dict.fromkeys(part_sizes)]
    digest = Digest(algorithm) if algorithm is not None else None
    fd = os.open(path, _OPEN_FLAGS)
    try:
        done = 0
        with memoryview(block) as view:
            while done < size:
                got = _read_into(fd, view[: min(len(view), size - done)], done)
                if got == 0:
                    break
                with view[:got] as data:
                    if whole is not None:
                        whole.update(data)
                    for hasher in parts:
                        hasher.update(data)
                    if digest is not None:
                        digest.update(data)
                done += got
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if done != size or st.st_size != size or st.st_mtime_ns != mtime_ns:
        raise FileChangedError("file changed while it was being hashed (size or mtime differ from the walk)")
    etags = {hasher.part_size: hasher.etag() for hasher in parts}
    return ContentHashes(
        whole.hexdigest() if whole is not None else "", etags, digest.checksum() if digest is not None else None
    )
