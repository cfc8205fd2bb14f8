"""Tests for ``async_uploader.config``: sizes, destinations and the validated ``UploadConfig``."""

from __future__ import annotations

from pathlib import Path

import pytest

from async_uploader.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_MEMORY_BYTES,
    DEFAULT_MULTIPART_THRESHOLD_BYTES,
    DEFAULT_PART_SIZE_BYTES,
    GIB,
    KIB,
    MAX_CONCURRENCY,
    MIB,
    TIB,
    Destination,
    Overwrite,
    UploadConfig,
    make_config,
    parse_destination,
    parse_duration,
    parse_size,
)
from async_uploader.errors import ConfigError

# parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8MiB", 8 * MIB),
        ("8MB", 8_000_000),
        ("8388608", 8_388_608),
        ("1.5KiB", 1536),
        ("0", 0),
        ("17b", 17),
        ("64KiB", 64 * KIB),
        ("64KB", 64_000),
        ("8M", 8 * MIB),
        ("2GiB", 2 * GIB),
        ("2GB", 2_000_000_000),
        ("1T", TIB),
        ("1TB", 10**12),
        ("1.25MB", 1_250_000),
        ("0.5GiB", 512 * MIB),
    ],
)
def test_parse_size_reads_binary_and_decimal_units(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8mib", 8 * MIB),
        ("8mb", 8_000_000),
        ("8m", 8 * MIB),
        ("8MIB", 8 * MIB),
        ("1gib", GIB),
        ("3kb", 3000),
    ],
)
def test_parse_size_units_are_case_insensitive(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["8 MiB", "  8MiB", "8MiB  ", " 8 MiB ", "\t8\tMiB\n"])
def test_parse_size_ignores_spaces_around_number_and_unit(text: str) -> None:
    assert parse_size(text) == 8 * MIB


def test_parse_size_passes_integers_through() -> None:
    assert parse_size(8_388_608) == 8_388_608
    assert parse_size(0) == 0


def test_parse_size_refuses_negative_integer() -> None:
    with pytest.raises(ConfigError, match="negative"):
        parse_size(-1)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "abc", "-1", "-8MiB", "8 XB", "8MiBs", "MiB", "8 Mi B", "1e6", "0x10", "8,5MiB", "8.MiB", ".5MiB"],
)
def test_parse_size_refuses_what_is_not_a_size(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid size"):
        parse_size(text)


@pytest.mark.parametrize("text", ["1.5", "0.5b", "1.0001KiB"])
def test_parse_size_refuses_fractional_bytes(text: str) -> None:
    with pytest.raises(ConfigError, match="whole number of bytes"):
        parse_size(text)


def test_parse_size_reads_a_decimal_fraction_that_is_whole_in_bytes() -> None:
    assert parse_size("4.1GB") == 4_100_000_000


def test_parse_size_keeps_every_byte_of_a_large_count() -> None:
    assert parse_size("9007199254740993") == 2**53 + 1


# parse_destination


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://bucket", "bucket", ""),
        ("s3://bucket/", "bucket", ""),
        ("s3://bucket/p", "bucket", "p/"),
        ("s3://bucket/p/", "bucket", "p/"),
        ("s3://bucket/p/q", "bucket", "p/q/"),
        ("s3://bucket/p/q/", "bucket", "p/q/"),
        ("s3://my-bucket.v2/backups/2024", "my-bucket.v2", "backups/2024/"),
    ],
)
def test_parse_destination_splits_bucket_and_normalises_prefix(url: str, bucket: str, prefix: str) -> None:
    assert parse_destination(url) == Destination(bucket=bucket, prefix=prefix)


@pytest.mark.parametrize("url", ["s3://bucket//p", "s3://bucket///p/", "s3://bucket/a//b"])
def test_parse_destination_refuses_empty_path_segments(url: str) -> None:
    """An empty segment would make a key with ``//`` or a leading ``/``: refused rather than silently changed."""
    with pytest.raises(ConfigError, match="empty path segment"):
        parse_destination(url)


@pytest.mark.parametrize("scheme", ["s3", "az"])
def test_destination_prints_as_the_url_it_came_from(scheme: str) -> None:
    destination = parse_destination(f"{scheme}://bucket/p/q")
    assert destination.scheme == scheme
    assert str(destination) == f"{scheme}://bucket/p/q/"
    assert parse_destination(str(destination)) == destination


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://bucket/p", "no provider for http://"),
        ("gs://bucket/p", "no provider for gs://"),
        ("s 3://bucket/p", "must look like s3://"),
        ("bucket/p", "must look like s3://"),
        ("s3:/bucket/p", "must look like s3://"),
        ("", "must look like s3://"),
        ("s3://", "invalid bucket name"),
        ("s3:///p", "invalid bucket name"),
        ("s3://bu cket/p", "invalid bucket name"),
        ("s3://-bucket/p", "invalid bucket name"),
        ("s3://bucket/p//q", "empty path segment"),
        ("s3://bucket/p/q//r/", "empty path segment"),
    ],
)
def test_parse_destination_refuses_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_destination(url)


# make_config


def test_make_config_refuses_missing_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        make_config(tmp_path / "missing", "s3://bucket")


def test_make_config_refuses_source_that_is_a_file(tmp_path: Path) -> None:
    source = tmp_path / "file.txt"
    source.write_bytes(b"data")
    with pytest.raises(ConfigError, match="not a directory"):
        make_config(source, "s3://bucket")


@pytest.mark.parametrize("concurrency", [0, -1, MAX_CONCURRENCY + 1, 2000])
def test_make_config_refuses_concurrency_out_of_range(tmp_path: Path, concurrency: int) -> None:
    with pytest.raises(ConfigError, match="--concurrency"):
        make_config(tmp_path, "s3://bucket", concurrency=concurrency)


@pytest.mark.parametrize("concurrency", [1, MAX_CONCURRENCY])
def test_make_config_accepts_concurrency_at_its_limits(tmp_path: Path, concurrency: int) -> None:
    assert make_config(tmp_path, "s3://bucket", concurrency=concurrency).concurrency == concurrency


@pytest.mark.parametrize("part_size", ["4MiB", 5 * MIB - 1, "5MB", 5 * GIB + 1, "6GiB"])
def test_make_config_refuses_part_size_outside_s3_limits(tmp_path: Path, part_size: str | int) -> None:
    with pytest.raises(ConfigError, match="--part-size"):
        make_config(tmp_path, "s3://bucket", part_size=part_size)


@pytest.mark.parametrize(("part_size", "expected"), [("5MiB", 5 * MIB), ("5GiB", 5 * GIB)])
def test_make_config_accepts_part_size_at_s3_limits(tmp_path: Path, part_size: str, expected: int) -> None:
    assert make_config(tmp_path, "s3://bucket", part_size=part_size).part_size == expected


@pytest.mark.parametrize("max_memory", ["4MiB", 5 * MIB - 1, "5MB", 0])
def test_make_config_refuses_max_memory_below_one_part(tmp_path: Path, max_memory: str | int) -> None:
    with pytest.raises(ConfigError, match="--max-memory"):
        make_config(tmp_path, "s3://bucket", max_memory=max_memory)


def test_make_config_accepts_max_memory_of_one_minimal_part(tmp_path: Path) -> None:
    assert make_config(tmp_path, "s3://bucket", max_memory="5MiB").max_memory == 5 * MIB


@pytest.mark.parametrize("endpoint_url", ["localhost:8333", "ftp://s3.example.com", "http://", "https:///x", ""])
def test_make_config_refuses_endpoint_that_is_not_http_url(tmp_path: Path, endpoint_url: str) -> None:
    with pytest.raises(ConfigError, match="--endpoint-url"):
        make_config(tmp_path, "s3://bucket", endpoint_url=endpoint_url)


@pytest.mark.parametrize("endpoint_url", ["http://127.0.0.1:8333", "https://s3.eu-west-1.amazonaws.com"])
def test_make_config_accepts_http_and_https_endpoints(tmp_path: Path, endpoint_url: str) -> None:
    assert make_config(tmp_path, "s3://bucket", endpoint_url=endpoint_url).endpoint_url == endpoint_url


def test_make_config_refuses_unparseable_size(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid size"):
        make_config(tmp_path, "s3://bucket", multipart_threshold="lots")


def test_make_config_refuses_bad_destination(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="s3://"):
        make_config(tmp_path, "bucket/prefix")


def test_make_config_keeps_every_value_it_was_given(tmp_path: Path) -> None:
    config = make_config(
        str(tmp_path),
        "s3://bucket/backups/2024",
        endpoint_url="http://127.0.0.1:8333",
        region="eu-west-1",
        profile="dev",
        concurrency=8,
        part_size="16MiB",
        multipart_threshold="32MB",
        max_memory="1GiB",
        overwrite="never",
        state_file=tmp_path / "state.db",
        keep_partial=True,
    )
    assert config == UploadConfig(
        source=tmp_path,
        destination=Destination(bucket="bucket", prefix="backups/2024/"),
        endpoint_url="http://127.0.0.1:8333",
        region="eu-west-1",
        profile="dev",
        concurrency=8,
        part_size=16 * MIB,
        multipart_threshold=32_000_000,
        max_memory=GIB,
        overwrite=Overwrite.NEVER,
        state_file=tmp_path / "state.db",
        keep_partial=True,
    )


def test_make_config_fills_in_defaults(tmp_path: Path) -> None:
    config = make_config(tmp_path, "s3://bucket")
    assert config.source == tmp_path
    assert config.destination == Destination(bucket="bucket", prefix="")
    assert (config.endpoint_url, config.region, config.profile) == (None, None, None)
    assert config.concurrency == DEFAULT_CONCURRENCY
    assert config.part_size == DEFAULT_PART_SIZE_BYTES
    assert config.multipart_threshold == DEFAULT_MULTIPART_THRESHOLD_BYTES
    assert config.max_memory == DEFAULT_MAX_MEMORY_BYTES


def test_unreadable_source_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("async_uploader.config.os.access", lambda *_args: False)  # root reads anything
    with pytest.raises(ConfigError, match="cannot be read"):
        make_config(tmp_path, "s3://bucket")


def test_state_file_defaults_to_the_user_cache_and_can_be_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert make_config(tmp_path, "s3://bucket").state_file == tmp_path / "cache" / "async-uploader" / "state.sqlite3"
    assert make_config(tmp_path, "s3://bucket", use_state=False).state_file is None
    assert make_config(tmp_path, "s3://bucket").overwrite is Overwrite.CHANGED


def test_make_config_refuses_unknown_overwrite_mode(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--overwrite must be one of always, changed, never"):
        make_config(tmp_path, "s3://bucket", overwrite="sometimes")


@pytest.mark.parametrize(("text", "seconds"), [("0", 0), ("90s", 90), ("30m", 1800), ("1.5h", 5400), ("7d", 604800)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1y", "-1d", "soon"])
def test_parse_duration_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid duration"):
        parse_duration(text)
