"""``whole_checksum``: the whole-object checksum of a HEAD in checksum mode, never a composite one."""

from __future__ import annotations

from async_uploader.providers.s3.wire import CHECKSUM_FIELDS, CHECKSUM_HEADERS, whole_checksum
from async_uploader.source.checksum import Algorithm, Checksum


def test_a_full_object_checksum_is_read_from_headers_and_from_botocore_fields() -> None:
    headers = {"x-amz-checksum-crc32": "hfHrsA==", "x-amz-checksum-type": "FULL_OBJECT"}
    fields = {"ChecksumCRC32C": "AAAAAA=="}  # a single put's: no type
    assert whole_checksum(headers, names=CHECKSUM_HEADERS, type_name="x-amz-checksum-type") == Checksum(
        Algorithm.CRC32, "hfHrsA=="
    )
    assert whole_checksum(fields, names=CHECKSUM_FIELDS, type_name="ChecksumType") == Checksum(
        Algorithm.CRC32C, "AAAAAA=="
    )


def test_a_composite_checksum_or_none_gives_nothing_to_compare() -> None:
    composite = {"ChecksumCRC32": "hfHrsA==-3", "ChecksumType": "COMPOSITE"}
    assert whole_checksum(composite, names=CHECKSUM_FIELDS, type_name="ChecksumType") is None
    assert whole_checksum({"ChecksumCRC32": "hfHrsA==-3"}, names=CHECKSUM_FIELDS, type_name="ChecksumType") is None
    assert whole_checksum({"ETag": '"e"'}, names=CHECKSUM_FIELDS, type_name="ChecksumType") is None
