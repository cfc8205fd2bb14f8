"""The option table and what is made from it: ``make_config``, the library's keywords, docs/cli.md."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import async_uploader
from async_uploader.api import Uploader, cleanup, upload, upload_distributed
from async_uploader.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_MEMORY_BYTES,
    DEFAULT_MULTIPART_THRESHOLD_BYTES,
    DEFAULT_PART_SIZE_BYTES,
    GIB,
    MAX_CONCURRENCY,
    MIB,
    Compare,
    Destination,
    Overwrite,
    UploadConfig,
)
from async_uploader.errors import ConfigError
from async_uploader.options import (
    CLEANUP,
    COMMANDS,
    UPLOAD,
    ConfigOptions,
    Kind,
    Option,
    RunOptions,
    Scope,
    make_config,
    reference_markdown,
)

DOCS = Path(__file__).parent.parent / "docs" / "cli.md"
CONFIG_EXTRAS = {"source", "destination", "filters", "state_file"}
"""``UploadConfig`` fields ``make_config`` fills itself rather than from one option's field."""


def keyword_options(scope: Scope) -> list[Option]:
    return [option for option in UPLOAD.options if option.flags and option.scope is scope]


def keyword_defaults(function: Callable[..., Any]) -> dict[str, Any]:
    parameters = inspect.signature(function).parameters.values()
    return {p.name: p.default for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


# The table against the library's typed faces


def test_run_options_are_the_tables_run_options() -> None:
    typing.get_type_hints(RunOptions)  # every annotation resolves
    expected = {option.name for option in keyword_options(Scope.RUN)}
    assert set(RunOptions.__optional_keys__) == expected


def test_make_config_takes_every_option_that_fills_the_config() -> None:
    typing.get_type_hints(ConfigOptions)
    expected = {o.name for o in UPLOAD.options if o.field is not None} | {"include", "exclude", "use_state"}
    assert set(ConfigOptions.__optional_keys__) == expected | {"state_file"}
    assert set(keyword_defaults(make_config)) == {"filters"}


def test_every_config_field_comes_from_the_table() -> None:
    filled = {o.field for o in UPLOAD.options if o.field is not None}
    assert filled <= {f.name for f in dataclasses.fields(UploadConfig)}
    assert {f.name for f in dataclasses.fields(UploadConfig)} - filled == CONFIG_EXTRAS


def test_the_configs_defaults_are_the_tables(tmp_path: Path) -> None:
    config = UploadConfig(source=tmp_path, destination=Destination(bucket="bucket", prefix=""))
    assert make_config(tmp_path, "s3://bucket", use_state=False) == config


@pytest.mark.parametrize("function", [Uploader, upload, upload_distributed], ids=lambda f: f.__name__)
def test_connection_options_are_keywords_of_the_uploader(function: Callable[..., Any]) -> None:
    defaults = keyword_defaults(function)
    for option in keyword_options(Scope.CONNECTION):
        assert defaults[option.name] == option.default, option.name
    if function is Uploader:  # the pool is as large as the run's concurrency
        assert defaults["concurrency"] == DEFAULT_CONCURRENCY


def test_cleanup_options_are_keywords_of_cleanup() -> None:
    defaults = keyword_defaults(cleanup)
    options = [option for option in CLEANUP.options if option.flags and option.scope is not Scope.CLI]
    assert {option.name: option.default for option in options} == defaults


# The table itself


@pytest.mark.parametrize("option", [o for command in COMMANDS for o in command.options], ids=lambda option: option.name)
def test_each_entry_is_consistent(option: Option) -> None:
    if option.kind in (Kind.FLAG, Kind.SWITCH):
        assert isinstance(option.default, bool)
    if option.choices:
        assert option.default in option.choices
    if option.field is not None:
        assert option.scope is not Scope.CLI
    if option.validate is not None and option.default is not None:
        option.validate(option.default)  # a default is a valid value
    assert option.help == option.help.strip().rstrip(".")
    assert "default" not in option.help or option.name == "endpoint_url"  # the default is shown from the table


def test_every_flag_is_spelled_once_per_command() -> None:
    for command in COMMANDS:
        flags = [flag for option in command.options for flag in option.flags]
        assert len(flags) == len(set(flags)), command.name
        names = [option.name for option in command.options]
        assert len(names) == len(set(names)), command.name


def test_docs_cli_md_is_made_from_the_table() -> None:
    assert DOCS.read_text(encoding="utf-8") == reference_markdown(), (
        "docs/cli.md is stale: python -m async_uploader.options > docs/cli.md"
    )


def test_the_reference_lists_every_option() -> None:
    text = reference_markdown()
    for command in COMMANDS:
        assert f"## `async-uploader {command.name} " in text
        for option in command.options:
            for flag in option.flags:
                assert f"`{flag}" in text or f", {flag}" in text


def test_the_package_exports_make_config() -> None:
    assert async_uploader.make_config is make_config


def test_make_config_refuses_an_unknown_keyword(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'part_sise'"):
        make_config(tmp_path, "s3://bucket", **{"part_sise": "8MiB"})  # type: ignore[call-arg]


# make_config


def test_make_config_refuses_missing_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        make_config(tmp_path / "missing", "s3://bucket")


def test_make_config_takes_a_file_to_the_folder_or_the_exact_key_the_url_names(tmp_path: Path) -> None:
    source = tmp_path / "file.txt"
    source.write_bytes(b"data")
    assert make_config(source, "s3://bucket/dir/").destination.key == "dir/file.txt"
    assert make_config(source, "s3://bucket/exact").destination.key == "exact"
    assert make_config(tmp_path, "s3://bucket/exact").destination.key is None  # a tree: a prefix, as ever


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


def test_compare_is_mtime_unless_size_or_checksum_is_asked_for_and_nothing_else_is_accepted(tmp_path: Path) -> None:
    assert make_config(tmp_path, "s3://bucket").compare is Compare.MTIME
    assert make_config(tmp_path, "s3://bucket", compare="size").compare is Compare.SIZE
    assert make_config(tmp_path, "s3://bucket", compare="checksum").compare is Compare.CHECKSUM
    with pytest.raises(ConfigError, match="--compare must be one of mtime, size, checksum, got 'md5'"):
        make_config(tmp_path, "s3://bucket", compare="md5")
