"""Tests for ``async_uploader.engine.plan``: keys, metadata and the shape of every upload, up to S3's 5 TiB limit."""

from __future__ import annotations

import os
import unicodedata
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from async_uploader.config import MAX_PART_SIZE_BYTES, MIB, MIN_PART_SIZE_BYTES, TIB, Compare, Overwrite
from async_uploader.engine.plan import (
    MAX_KEY_BYTES,
    MAX_OBJECT_SIZE_BYTES,
    MAX_PARTS,
    Listed,
    Remembered,
    UploadPlan,
    Verdict,
    choose_part_size,
    compare_with_destination,
    etag_part_sizes,
    format_mtime,
    is_md5_etag,
    multipart_etag_parts,
    object_key,
    object_metadata,
    parse_mtime,
    plan_upload,
    unchanged_by_metadata,
)
from async_uploader.errors import FileTooLargeError, InvalidKeyError

PART = 8 * MIB
THRESHOLD = 8 * MIB


def assert_parts_cover_file(plan: UploadPlan) -> None:
    """The parts are numbered 1..N, contiguous from 0, and cover ``[0, size)`` exactly once within S3's limits."""
    assert MIN_PART_SIZE_BYTES <= plan.part_size <= MAX_PART_SIZE_BYTES
    assert 1 <= plan.part_count <= MAX_PARTS
    expected_offset = 0
    count = 0
    for count, part in enumerate(plan.parts(), start=1):
        assert part.number == count
        assert part.offset == expected_offset
        assert 0 < part.size <= plan.part_size
        if count < plan.part_count:
            assert part.size == plan.part_size, f"part {count} of {plan.part_count} is short"
        expected_offset += part.size
    assert count == plan.part_count
    assert expected_offset == plan.size


@st.composite
def upload_cases(draw: st.DrawFn) -> tuple[int, int, int]:
    """(size, part_size, threshold), with sizes spread over 0 to 20,000 parts so the 10,000-part cap is hit."""
    part_size = draw(
        st.one_of(st.integers(MIN_PART_SIZE_BYTES, 64 * MIB), st.integers(MIN_PART_SIZE_BYTES, MAX_PART_SIZE_BYTES))
    )
    size = draw(
        st.one_of(
            st.integers(0, MAX_OBJECT_SIZE_BYTES),
            st.builds(
                lambda parts, remainder: min(parts * part_size + remainder, MAX_OBJECT_SIZE_BYTES),
                st.integers(0, 2 * MAX_PARTS),
                st.integers(0, part_size - 1),
            ),
        )
    )
    threshold = draw(st.one_of(st.integers(0, 64 * MIB), st.integers(0, size + 1)))
    return size, part_size, threshold


# object_key


def test_object_key_without_prefix_is_the_relative_path() -> None:
    assert object_key("", "photos/2024/a.jpg") == "photos/2024/a.jpg"


def test_object_key_puts_prefix_in_front() -> None:
    assert object_key("backups/host/", "photos/2024/a.jpg") == "backups/host/photos/2024/a.jpg"


def test_object_key_keeps_spaces_and_punctuation() -> None:
    assert object_key("p/", "my docs/report (final) #2 & more.txt") == "p/my docs/report (final) #2 & more.txt"


def test_object_key_keeps_nfc_and_nfd_names_distinct_and_byte_exact() -> None:
    nfc = unicodedata.normalize("NFC", "caf\u00e9.txt")
    nfd = unicodedata.normalize("NFD", "caf\u00e9.txt")
    assert nfc != nfd
    nfc_key = object_key("p/", nfc)
    nfd_key = object_key("p/", nfd)
    assert nfc_key != nfd_key
    assert nfc_key.encode("utf-8") == b"p/caf\xc3\xa9.txt"
    assert nfd_key.encode("utf-8") == b"p/cafe\xcc\x81.txt"


def test_object_key_keeps_non_latin_names() -> None:
    name = "\u65e5\u672c\u8a9e/\U0001f600 \u0436.txt"
    assert object_key("", name).encode("utf-8") == name.encode("utf-8")


def test_object_key_refuses_name_that_is_not_utf8() -> None:
    name = os.fsdecode(b"dir/bad\xff.txt")
    with pytest.raises(InvalidKeyError, match="not valid UTF-8"):
        object_key("p/", name)


def test_object_key_accepts_exactly_1024_bytes() -> None:
    prefix = "p/"
    rel = "a" * (MAX_KEY_BYTES - len(prefix))
    assert len(object_key(prefix, rel).encode("utf-8")) == MAX_KEY_BYTES


@pytest.mark.parametrize(
    ("prefix", "rel"),
    [
        ("", "a" * 1025),
        ("p/", "a" * 1023),  # the prefix counts towards the limit
        ("", "\u00e9" * 513),  # 513 characters, but 1026 bytes in UTF-8
    ],
)
def test_object_key_refuses_keys_over_1024_bytes(prefix: str, rel: str) -> None:
    with pytest.raises(InvalidKeyError, match="1024"):
        object_key(prefix, rel)


# format_mtime / parse_mtime


@pytest.mark.parametrize(
    ("mtime_ns", "text"),
    [
        (1_700_000_000_123_456_789, "1700000000.123456789"),
        (1_700_000_000_000_000_000, "1700000000.000000000"),
        (5, "0.000000005"),
        (0, "0.000000000"),
        (1_000_000_000, "1.000000000"),
        (999_999_999, "0.999999999"),
    ],
)
def test_format_mtime_writes_seconds_with_nine_decimals(mtime_ns: int, text: str) -> None:
    assert format_mtime(mtime_ns) == text


@pytest.mark.parametrize(
    ("text", "mtime_ns"),
    [
        ("1700000000.123456789", 1_700_000_000_123_456_789),
        ("1700000000.5", 1_700_000_000_500_000_000),
        ("1700000000", 1_700_000_000_000_000_000),
        ("0.000000005", 5),
    ],
)
def test_parse_mtime_reads_exact_nanoseconds(text: str, mtime_ns: int) -> None:
    assert parse_mtime(text) == mtime_ns


@given(st.integers(min_value=0, max_value=2**63))
def test_mtime_round_trips_exactly(mtime_ns: int) -> None:
    assert parse_mtime(format_mtime(mtime_ns)) == mtime_ns


@given(st.integers(min_value=0, max_value=2**63))
def test_formatted_mtime_reads_as_the_right_decimal_seconds(mtime_ns: int) -> None:
    assert Decimal(format_mtime(mtime_ns)) == Decimal(mtime_ns) / 1_000_000_000


@pytest.mark.parametrize("mtime_ns", [-1, -1_500_000_000])
def test_formatted_mtime_before_1970_reads_as_the_right_decimal_seconds(mtime_ns: int) -> None:
    assert Decimal(format_mtime(mtime_ns)) == Decimal(mtime_ns) / 1_000_000_000


# object_metadata


def test_object_metadata_has_size_mtime_and_octal_mode() -> None:
    assert object_metadata(1234, 1_700_000_000_123_456_789, 0o100644) == {
        "size": "1234",
        "mtime": "1700000000.123456789",
        "mode": "100644",
    }


@pytest.mark.parametrize(("mode", "text"), [(0o100755, "100755"), (0o100600, "100600"), (0o104755, "104755")])
def test_object_metadata_mode_is_octal(mode: int, text: str) -> None:
    assert object_metadata(0, 0, mode)["mode"] == text


# plan_upload


def test_empty_file_is_a_single_put_even_with_threshold_zero() -> None:
    plan = plan_upload(0, part_size=PART, multipart_threshold=0)
    assert not plan.multipart
    assert (plan.size, plan.part_count) == (0, 1)


def test_file_one_byte_under_threshold_is_a_single_put() -> None:
    plan = plan_upload(THRESHOLD - 1, part_size=PART, multipart_threshold=THRESHOLD)
    assert not plan.multipart
    assert plan.size == THRESHOLD - 1


def test_file_exactly_at_threshold_is_multipart() -> None:
    plan = plan_upload(THRESHOLD, part_size=PART, multipart_threshold=THRESHOLD)
    assert plan.multipart
    assert [(p.number, p.offset, p.size) for p in plan.parts()] == [(1, 0, PART)]


def test_file_one_byte_over_threshold_is_multipart_with_a_one_byte_last_part() -> None:
    plan = plan_upload(THRESHOLD + 1, part_size=PART, multipart_threshold=THRESHOLD)
    assert plan.multipart
    assert [(p.number, p.offset, p.size) for p in plan.parts()] == [(1, 0, PART), (2, PART, 1)]


def test_last_part_is_short() -> None:
    plan = plan_upload(2 * PART + 123, part_size=PART, multipart_threshold=THRESHOLD)
    assert [(p.number, p.offset, p.size) for p in plan.parts()] == [(1, 0, PART), (2, PART, PART), (3, 2 * PART, 123)]


def test_file_of_whole_parts_has_no_empty_trailing_part() -> None:
    plan = plan_upload(3 * PART, part_size=PART, multipart_threshold=THRESHOLD)
    assert plan.part_count == 3
    assert [p.size for p in plan.parts()] == [PART, PART, PART]


def test_file_under_one_part_but_over_threshold_is_one_part() -> None:
    plan = plan_upload(6 * MIB, part_size=64 * MIB, multipart_threshold=5 * MIB)
    assert plan.multipart
    assert [(p.number, p.offset, p.size) for p in plan.parts()] == [(1, 0, 6 * MIB)]


def test_five_tib_file_fits_in_10000_parts_of_whole_mib() -> None:
    plan = plan_upload(MAX_OBJECT_SIZE_BYTES, part_size=PART, multipart_threshold=THRESHOLD)
    assert plan.multipart
    assert plan.part_count <= MAX_PARTS
    assert plan.part_size % MIB == 0
    assert plan.part_size <= MAX_PART_SIZE_BYTES
    assert_parts_cover_file(plan)


def test_file_over_five_tib_is_refused() -> None:
    with pytest.raises(FileTooLargeError, match="5 TiB"):
        plan_upload(5 * TIB + 1, part_size=PART, multipart_threshold=THRESHOLD)


# choose_part_size


@pytest.mark.parametrize("size", [0, 1, PART, 100 * PART, MAX_PARTS * PART])
def test_choose_part_size_keeps_part_size_when_10000_parts_suffice(size: int) -> None:
    assert choose_part_size(size, PART) == PART


def test_choose_part_size_grows_by_whole_mib_just_past_10000_parts() -> None:
    assert choose_part_size(MAX_PARTS * PART + 1, PART) == PART + MIB


def test_choose_part_size_keeps_a_part_size_that_is_not_whole_mib_when_it_suffices() -> None:
    odd = 5 * MIB + 12345
    assert choose_part_size(1000 * odd, odd) == odd


@settings(max_examples=200, deadline=None)
@given(upload_cases())
def test_choose_part_size_grows_only_when_needed_and_only_as_much_as_needed(case: tuple[int, int, int]) -> None:
    size, part_size, _ = case
    chosen = choose_part_size(size, part_size)
    assert chosen * MAX_PARTS >= size
    if chosen != part_size:
        assert chosen > part_size
        assert part_size * MAX_PARTS < size
        assert chosen % MIB == 0
        assert (chosen - MIB) * MAX_PARTS < size  # one MiB less would not do


# Properties of every plan


@settings(max_examples=200, deadline=None)
@given(upload_cases())
@example((0, MIN_PART_SIZE_BYTES, 0))
@example((MAX_OBJECT_SIZE_BYTES, MIN_PART_SIZE_BYTES, 0))
@example((MAX_OBJECT_SIZE_BYTES, MAX_PART_SIZE_BYTES, 0))
@example((MAX_PARTS * MIN_PART_SIZE_BYTES + 1, MIN_PART_SIZE_BYTES, 0))
def test_every_plan_covers_the_file_exactly_once(case: tuple[int, int, int]) -> None:
    size, part_size, threshold = case
    plan = plan_upload(size, part_size=part_size, multipart_threshold=threshold)
    assert plan.size == size
    if size == 0 or size < threshold:
        assert not plan.multipart
        assert plan.part_count == 1
    else:
        assert plan.multipart
        assert plan.part_size >= part_size
        assert_parts_cover_file(plan)


NOW_NS = 1_700_000_000_123_456_789


@pytest.mark.parametrize(
    ("overwrite", "listed", "remembered", "verdict"),
    [
        (Overwrite.CHANGED, None, None, Verdict.UPLOAD),
        (Overwrite.CHANGED, Listed(10, "e"), Remembered(10, NOW_NS, "e"), Verdict.SKIP),
        (Overwrite.CHANGED, Listed(10, "e"), Remembered(10, NOW_NS + 1, "e"), Verdict.UPLOAD),
        (Overwrite.CHANGED, Listed(11, "e"), Remembered(10, NOW_NS, "e"), Verdict.UPLOAD),
        (Overwrite.CHANGED, Listed(10, "other"), Remembered(10, NOW_NS, "e"), Verdict.ASK),
        (Overwrite.CHANGED, Listed(10, "e"), None, Verdict.ASK),
        (Overwrite.NEVER, Listed(99, "x"), None, Verdict.SKIP),
        (Overwrite.NEVER, None, None, Verdict.UPLOAD),
        (Overwrite.ALWAYS, Listed(10, "e"), Remembered(10, NOW_NS, "e"), Verdict.UPLOAD),
    ],
)
def test_compare_with_destination(
    overwrite: Overwrite, listed: Listed | None, remembered: Remembered | None, verdict: Verdict
) -> None:
    assert compare_with_destination(10, NOW_NS, overwrite, listed, remembered) is verdict


@pytest.mark.parametrize(
    ("stored_size", "metadata", "unchanged"),
    [
        (10, {"mtime": format_mtime(NOW_NS)}, True),
        (10, {"mtime": format_mtime(NOW_NS - 1)}, False),
        (9, {"mtime": format_mtime(NOW_NS)}, False),
        (10, {}, False),
        (10, {"mtime": "yesterday"}, False),
    ],
)
def test_unchanged_by_metadata(stored_size: int, metadata: dict[str, str], unchanged: bool) -> None:
    assert unchanged_by_metadata(10, NOW_NS, stored_size, metadata) is unchanged


@pytest.mark.parametrize(
    ("listed", "remembered", "verdict"),
    [
        (Listed(10, "e"), None, Verdict.SKIP),  # no state, no metadata of ours: the listed size settles it
        (Listed(10, "other"), Remembered(10, NOW_NS - 1, "e"), Verdict.SKIP),  # whatever the mtime or the state
        (Listed(11, "e"), Remembered(10, NOW_NS, "e"), Verdict.UPLOAD),
        (None, None, Verdict.UPLOAD),
    ],
)
def test_compare_size_decides_by_the_listed_size_alone_never_asking(
    listed: Listed | None, remembered: Remembered | None, verdict: Verdict
) -> None:
    assert compare_with_destination(10, NOW_NS, Overwrite.CHANGED, listed, remembered, Compare.SIZE) is verdict


def test_compare_size_leaves_overwrite_always_and_never_as_they_are() -> None:
    listed = Listed(11, "e")
    assert compare_with_destination(10, NOW_NS, Overwrite.ALWAYS, listed, None, Compare.SIZE) is Verdict.UPLOAD
    assert compare_with_destination(10, NOW_NS, Overwrite.NEVER, listed, None, Compare.SIZE) is Verdict.SKIP


@pytest.mark.parametrize(
    ("stored_size", "metadata", "unchanged"),
    [(10, {}, True), (10, {"mtime": format_mtime(NOW_NS - 1)}, True), (9, {"mtime": format_mtime(NOW_NS)}, False)],
)
def test_a_head_under_compare_size_reads_only_the_size(
    stored_size: int, metadata: dict[str, str], unchanged: bool
) -> None:
    assert unchanged_by_metadata(10, NOW_NS, stored_size, metadata, Compare.SIZE) is unchanged


@pytest.mark.parametrize(
    ("listed", "remembered", "verdict"),
    [
        (Listed(10, "e"), Remembered(10, NOW_NS, "e"), Verdict.SKIP),  # the stat cache: not read
        (Listed(10, "e"), Remembered(10, NOW_NS + 1, "e"), Verdict.HASH),  # a new mtime: the content decides
        (Listed(10, "other"), Remembered(10, NOW_NS, "e"), Verdict.HASH),  # written since: whatever the stat
        (Listed(10, "e"), None, Verdict.HASH),
        (Listed(11, "e"), Remembered(10, NOW_NS, "e"), Verdict.UPLOAD),  # another size: no need to read
        (None, None, Verdict.UPLOAD),
    ],
)
def test_compare_checksum_reads_the_file_unless_its_size_or_its_remembered_stat_settles_it(
    listed: Listed | None, remembered: Remembered | None, verdict: Verdict
) -> None:
    assert compare_with_destination(10, NOW_NS, Overwrite.CHANGED, listed, remembered, Compare.CHECKSUM) is verdict


@pytest.mark.parametrize(
    ("etag", "parts", "md5"),
    [
        ("d41d8cd98f00b204e9800998ecf8427e", None, True),
        ("cf7fb98c6f89b9687b1f902cf013c47b-2", 2, False),
        ("CF7FB98C6F89B9687B1F902CF013C47B-10000", 10000, False),
        ("cf7fb98c6f89b9687b1f902cf013c47b-", None, False),
        ("cf7fb98c6f89b9687b1f902cf013c47-2", None, False),  # 31 digits
        ("zf7fb98c6f89b9687b1f902cf013c47b", None, False),
        ("", None, False),
    ],
)
def test_etag_forms(etag: str, parts: int | None, md5: bool) -> None:
    assert multipart_etag_parts(etag) == parts
    assert is_md5_etag(etag) is md5


@pytest.mark.parametrize(
    ("size", "parts", "expected"),
    [
        (13 * MIB, 2, [8 * MIB]),  # ours (8 MiB) first
        (13 * MIB, 3, [5 * MIB]),  # boto3 at 5 MiB
        (17 * MIB, 2, [16 * MIB]),
        # Several candidates give the same N: all are kept, ours first, so one read tries them all.
        (40 * MIB, 1, [50 * MIB, 64 * MIB]),
        (100 * MIB, 2, [50 * MIB, 64 * MIB]),
        (10 * MIB, 2, [8 * MIB, 5 * MIB]),
        (13 * MIB, 7, []),  # no candidate: the state file or the store's CRC decide
    ],
)
def test_etag_part_sizes_are_those_giving_the_listed_part_count(size: int, parts: int, expected: list[int]) -> None:
    assert etag_part_sizes(size, parts, part_size=8 * MIB, multipart_threshold=8 * MIB) == expected


def test_etag_part_sizes_start_with_the_part_size_ours_grows_to_for_a_huge_file() -> None:
    size = 200 * 1024 * MIB  # 200 GiB in 8 MiB parts would be 25,600 parts: ours grows to 21 MiB
    ours = choose_part_size(size, 8 * MIB)
    parts = plan_upload(size, part_size=8 * MIB, multipart_threshold=8 * MIB).part_count
    assert etag_part_sizes(size, parts, part_size=8 * MIB, multipart_threshold=8 * MIB)[0] == ours


@given(size=st.integers(min_value=1, max_value=6 * TIB // 1000), parts=st.integers(min_value=1, max_value=MAX_PARTS))
def test_every_etag_part_size_splits_the_file_into_exactly_the_listed_parts(size: int, parts: int) -> None:
    for part_size in etag_part_sizes(size, parts, part_size=8 * MIB, multipart_threshold=8 * MIB):
        assert -(-size // part_size) == parts
