"""``hash_file``: one read gives the MD5, the multipart ETag of every candidate part size, and a checksum."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from async_uploader.errors import FileChangedError
from async_uploader.source.checksum import Algorithm, checksum_of
from async_uploader.source.content_hash import hash_file
from tests.trees import random_bytes

KIB = 1024


def multipart_etag(data: bytes, part_size: int) -> str:
    """S3's multipart ETag, the plain way: the MD5 of the parts' binary MD5s, then ``-N``."""
    digests = [hashlib.md5(data[i : i + part_size]).digest() for i in range(0, len(data), part_size)]
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


@pytest.mark.parametrize("block_size", [4 * KIB, 7 * KIB, 64 * KIB])
@pytest.mark.parametrize("size", [0, 1, 5 * KIB, 20 * KIB, 20 * KIB + 3])
def test_one_read_gives_the_md5_every_multipart_etag_and_the_checksum(
    tmp_path: Path, size: int, block_size: int
) -> None:
    """Part sizes that do and do not divide the block, several giving the same part count, a last part short."""
    data = random_bytes(size, seed=size)
    path = tmp_path / "f"
    path.write_bytes(data)
    st = path.stat()
    part_sizes = [5 * KIB, 6 * KIB, 8 * KIB, 8 * KIB]

    found = hash_file(
        str(path),
        size=size,
        mtime_ns=st.st_mtime_ns,
        part_sizes=part_sizes,
        algorithm=Algorithm.CRC32,
        block=bytearray(block_size),
    )

    assert found.md5 == hashlib.md5(data).hexdigest()
    if size:
        assert found.multipart_etags == {p: multipart_etag(data, p) for p in part_sizes}
    assert found.checksum == checksum_of(Algorithm.CRC32, data)


def test_a_file_that_changed_since_the_walk_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    with pytest.raises(FileChangedError):
        hash_file(str(path), size=3, mtime_ns=st.st_mtime_ns, part_sizes=[], algorithm=None, block=bytearray(8))


def test_the_whole_md5_can_be_left_out_when_only_parts_are_compared(tmp_path: Path) -> None:
    path = tmp_path / "f"
    data = bytes(range(256)) * 40
    path.write_bytes(data)
    st = path.stat()
    hashes = hash_file(
        str(path), size=len(data), mtime_ns=st.st_mtime_ns, part_sizes=[4096], algorithm=None,
        block=bytearray(1000), md5=False,
    )  # fmt: skip
    assert hashes.md5 == ""
    parts = [hashlib.md5(data[i : i + 4096]).digest() for i in range(0, len(data), 4096)]
    assert hashes.multipart_etags == {4096: f"{hashlib.md5(b''.join(parts)).hexdigest()}-3"}
