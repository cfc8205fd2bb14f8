"""Tests for ``async_uploader.source.checksum``: checksums in S3's form, the multipart composites S3 reports, and the
CRC combination that gives a whole file's CRC from its parts'."""

from __future__ import annotations

import base64
import hashlib
import sys
import zlib
from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from async_uploader.errors import ConfigError, VerificationError
from async_uploader.source import checksum as checksum_module
from async_uploader.source.checksum import (
    Algorithm,
    Checksum,
    Digest,
    checksum_of,
    composite,
    crc32c,
    crc_combine,
    full_object_crc,
    parse_algorithm,
    verify_stored_checksum,
)

FIVE_MIB_OF_X = b"x" * (5 * 1024 * 1024)


def crc32_of(data: bytes | memoryview) -> str:
    return checksum_of(Algorithm.CRC32, data).value


def composite_crc32(part_checksums: Iterable[str]) -> str:
    return composite(Checksum(Algorithm.CRC32, value) for value in part_checksums).value


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


def crc32c_reference(data: bytes) -> int:
    """Bitwise CRC32C, independent of google-crc32c and of our combining."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def test_crc32c_known_vector() -> None:
    assert checksum_of(Algorithm.CRC32C, b"hello").value == "mnG7TA=="
    assert crc32c(b"123456789") == crc32c_reference(b"123456789") == 0xE3069283


@given(st.binary(max_size=300), st.binary(max_size=300))
def test_crc_combine_equals_the_crc_of_the_concatenation(a: bytes, b: bytes) -> None:
    assert crc_combine(Algorithm.CRC32, zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    assert crc_combine(Algorithm.CRC32C, crc32c_reference(a), crc32c_reference(b), len(b)) == crc32c_reference(a + b)


@given(st.lists(st.binary(max_size=200), min_size=1, max_size=6), st.sampled_from([Algorithm.CRC32, Algorithm.CRC32C]))
def test_full_object_crc_from_parts_is_the_crc_of_the_whole(parts: list[bytes], algorithm: Algorithm) -> None:
    crcs = [(checksum_of_crc(algorithm, part), len(part)) for part in parts]
    assert full_object_crc(algorithm, crcs) == checksum_of(algorithm, b"".join(parts))


def checksum_of_crc(algorithm: Algorithm, data: bytes) -> int:
    digest = Digest(algorithm)
    digest.update(data)
    return digest.crc


@given(st.binary(max_size=5000), st.integers(min_value=0, max_value=5000), st.sampled_from(list(Algorithm)))
def test_a_digest_fed_in_pieces_equals_one_of_the_whole(data: bytes, cut: int, algorithm: Algorithm) -> None:
    digest = Digest(algorithm)
    digest.update(data[:cut])
    digest.update(memoryview(data)[cut:])
    assert digest.checksum() == checksum_of(algorithm, data)


def test_composite_sha256_hashes_the_raw_part_digests() -> None:
    parts = [checksum_of(Algorithm.SHA256, b"a"), checksum_of(Algorithm.SHA256, b"b")]
    raw = hashlib.sha256(hashlib.sha256(b"a").digest() + hashlib.sha256(b"b").digest()).digest()
    assert composite(parts) == Checksum(Algorithm.SHA256, base64.b64encode(raw).decode() + "-2")


@pytest.mark.parametrize(
    ("text", "algorithm"),
    [("crc32", Algorithm.CRC32), ("CRC32C", Algorithm.CRC32C), ("sha256", Algorithm.SHA256), ("none", None)],
)
def test_parse_algorithm(text: str, algorithm: Algorithm | None) -> None:
    assert parse_algorithm(text) is algorithm


def test_parse_algorithm_refuses_others() -> None:
    with pytest.raises(ConfigError, match="--checksum must be one of crc32, crc32c, sha256, none"):
        parse_algorithm("md5")


def test_crc32_runs_on_zlib_ng_where_the_fast_extra_installed_it() -> None:
    zlib_ng = pytest.importorskip("zlib_ng.zlib_ng")
    assert checksum_module._crc32 is zlib_ng.crc32
    data = bytes(range(256)) * 4099  # over 1 MiB: zlib-ng's folding path, not its byte loop
    digest = Digest(Algorithm.CRC32)
    digest.update(memoryview(data)[:12345])
    digest.update(memoryview(data)[12345:])
    assert digest.crc == zlib.crc32(data)


def test_crc32_falls_back_to_the_stdlib_without_zlib_ng(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zlib_ng", None)  # an import of it now raises ImportError
    assert checksum_module._crc32_function() is zlib.crc32


def test_a_stored_checksum_other_than_the_one_sent_is_refused() -> None:
    sent = checksum_of(Algorithm.CRC32, b"abc")
    verify_stored_checksum(sent.value, sent)
    verify_stored_checksum(None, sent)  # a store that reports none (moto) checked the header or ignored it
    verify_stored_checksum("anything", None)  # nothing was sent to compare with
    with pytest.raises(VerificationError, match=f"part 2: store computed CRC32 AAAAAA==, expected {sent.value}"):
        verify_stored_checksum("AAAAAA==", sent, what="part 2: ")
