"""What a value means: sizes, destinations and durations (``make_config`` is tested with the option table)."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import platformdirs.macos
import platformdirs.unix
import platformdirs.windows
import pytest

from async_uploader.config import (
    GIB,
    KIB,
    MIB,
    TIB,
    Destination,
    default_state_path,
    one_object_destination,
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


@pytest.mark.parametrize(
    ("url", "key", "prefix"),
    [
        ("s3://bucket", "app.tgz", ""),
        ("s3://bucket/", "app.tgz", ""),
        ("s3://bucket/dir/", "dir/app.tgz", "dir/"),
        ("s3://bucket/a/b/", "a/b/app.tgz", "a/b/"),
        ("s3://bucket/exact", "exact", ""),
        ("s3://bucket/exact/key", "exact/key", "exact/"),
        ("az://container/releases/latest.tgz", "releases/latest.tgz", "releases/"),
    ],
)
def test_one_object_goes_into_the_folder_a_slash_names_else_to_the_exact_key(url: str, key: str, prefix: str) -> None:
    destination = one_object_destination(url, "app.tgz")
    assert (destination.key, destination.prefix) == (key, prefix)
    assert str(destination) == f"{destination.scheme}://{destination.bucket}/{key}"


@pytest.mark.parametrize("url", ["s3://bucket", "s3://bucket/", "s3://bucket/dir/"])
def test_a_stream_needs_an_exact_key(url: str) -> None:
    with pytest.raises(ConfigError, match="needs an exact key"):
        one_object_destination(url, None)


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


# parse_duration


@pytest.mark.parametrize(("text", "seconds"), [("0", 0), ("90s", 90), ("30m", 1800), ("1.5h", 5400), ("7d", 604800)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1y", "-1d", "soon"])
def test_parse_duration_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid duration"):
        parse_duration(text)


# default_state_path


@pytest.mark.parametrize(
    ("dirs", "expected"),
    [
        (platformdirs.unix.Unix, "{home}/.cache/async-uploader/state.sqlite3"),  # as before platformdirs
        (platformdirs.macos.MacOS, "{home}/Library/Caches/async-uploader/state.sqlite3"),
        (platformdirs.windows.Windows, "{local}/async-uploader/Cache/state.sqlite3"),
    ],
    ids=["linux", "macos", "windows"],
)
def test_the_state_file_lives_in_each_oss_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dirs: type[platformdirs.PlatformDirs], expected: str
) -> None:
    home, local = tmp_path / "home", "C:\\Users\\me\\AppData\\Local"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("WIN_PD_OVERRIDE_LOCAL_APPDATA", str(local))  # what the Windows shell would answer
    monkeypatch.setattr(platformdirs, "PlatformDirs", dirs)
    assert default_state_path() == Path(expected.format(home=home, local=local))


def test_xdg_cache_home_is_honoured_on_every_os(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(platformdirs, "PlatformDirs", platformdirs.macos.MacOS)
    assert default_state_path() == tmp_path / "cache" / "async-uploader" / "state.sqlite3"
