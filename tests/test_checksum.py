"""Tests for ``async_uploader.checksum``: CRC32 in S3's form and the multipart composite S3 reports."""

from __future__ import annotations

import base64
import zlib

from hypothesis import given
from hypothesis import strategies as st

from async_uploader.checksum import composite_crc32, crc32_of

FIVE_MIB_OF_X = b"x" * (5 * 1024 * 1024)


def test_crc32_of_known_vector() -> None:
    assert crc32_of(b"hello") == "NhCmhg=="


def test_crc32_of_empty_body() -> None:
    assert crc32_of(b"") == "AAAAAA=="


@given(st.binary(max_size=4096))
def test_crc32_of_is_base64_of_big_endian_zlib_crc32(data: bytes) -> None:
    checksum = crc32_of(data)
    raw = base64.b64decode(checksum, validate=True)
    assert len(raw) == 4
    assert int.from_bytes(raw, "big") == zlib.crc32(data)


@given(st.binary(max_size=4096), st.integers(min_value=0, max_value=64))
def test_crc32_of_memoryview_slice_matches_bytes(data: bytes, start: int) -> None:
    assert crc32_of(memoryview(data)[start:]) == crc32_of(data[start:])


def test_composite_crc32_matches_a_real_server() -> None:
    # What a real S3 server reported for a two-part upload of these bodies.
    parts = [crc32_of(FIVE_MIB_OF_X), crc32_of(b"y" * 10)]
    assert composite_crc32(parts) == "1Vdryw==-2"


def test_composite_crc32_accepts_any_iterable() -> None:
    bodies = [FIVE_MIB_OF_X, b"y" * 10]
    assert composite_crc32(crc32_of(body) for body in bodies) == "1Vdryw==-2"


def test_composite_crc32_depends_on_part_order() -> None:
    a, b = crc32_of(b"first part"), crc32_of(b"second part")
    assert composite_crc32([a, b]) != composite_crc32([b, a])


def test_composite_crc32_of_one_part_is_not_the_part_checksum() -> None:
    # S3 hashes the parts' checksums even for a single part, so the object's checksum differs from its body's.
    part = crc32_of(b"only part")
    composite = composite_crc32([part])
    assert composite.endswith("-1")
    assert composite.removesuffix("-1") != part
    assert composite == f"{crc32_of(base64.b64decode(part))}-1"
