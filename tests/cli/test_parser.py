"""The command line's grammar, made from the option table: every flag reaches the config as its keyword would."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from async_uploader.cli import runner_from_args
from async_uploader.cli.parser import build_parser, config_from_args
from async_uploader.errors import ConfigError
from async_uploader.options import COMMANDS, Command, make_config
from async_uploader.source.shards import Shard


def test_flags_reach_the_config(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        [
            "upload", str(tmp_path), "s3://bucket/a/b/", "--endpoint-url", "http://127.0.0.1:9000",
            "--region", "eu-west-1", "--profile", "ci", "--concurrency", "7", "--part-size", "16MiB",
            "--multipart-threshold", "100MB", "--max-memory", "1GiB",
        ]
    )  # fmt: skip
    config = config_from_args(args)
    assert (config.destination.bucket, config.destination.prefix) == ("bucket", "a/b/")
    assert (config.endpoint_url, config.region, config.profile) == ("http://127.0.0.1:9000", "eu-west-1", "ci")
    assert (config.concurrency, config.part_size) == (7, 16 * 1024 * 1024)
    assert (config.multipart_threshold, config.max_memory) == (100_000_000, 1024**3)


def test_every_flag_means_what_its_keyword_means(tmp_path: Path) -> None:
    """The command line and ``make_config`` build the same config, option for option, defaults included."""
    flags = [
        "--follow-symlinks", "--max-bandwidth", "1MB/s", "--report", str(tmp_path / "r.jsonl"),
        "--retry-failed", str(tmp_path / "old.jsonl"), "--dry-run", "--retries", "3", "--retry-deadline", "5",
        "--max-cpu", "50", "--overwrite", "never", "--state-file", str(tmp_path / "s.db"), "--shard", "1/3",
        "--checksum", "sha256", "--keep-partial", "--connect-timeout", "2", "--read-timeout", "3", "--lean", "off",
    ]  # fmt: skip
    args = build_parser().parse_args(["upload", str(tmp_path), "s3://bucket", *flags])
    config = config_from_args(args)
    assert config == make_config(
        tmp_path,
        "s3://bucket",
        follow_symlinks=True,
        max_bandwidth="1MB/s",
        report=tmp_path / "r.jsonl",
        retry_failed=tmp_path / "old.jsonl",
        dry_run=True,
        retries=3,
        retry_deadline=5,
        max_cpu=50,
        overwrite="never",
        state_file=tmp_path / "s.db",
        shard="1/3",
        checksum="sha256",
        keep_partial=True,
        connect_timeout=2,
        read_timeout=3,
    )
    assert config.shard == Shard(1, 3)
    runner = runner_from_args(args, config)  # lean is the connection's: it goes to run_config, not the config
    assert isinstance(runner, functools.partial)
    assert runner.keywords["lean"] is False
    plain = config_from_args(build_parser().parse_args(["upload", str(tmp_path), "s3://bucket"]))
    assert plain == make_config(tmp_path, "s3://bucket")


def test_include_and_exclude_keep_their_command_line_order(tmp_path: Path) -> None:
    flags = ["--exclude", "*.log", "--include", "keep.log", "--exclude", "tmp/", "--include", "tmp/x"]
    config = config_from_args(build_parser().parse_args(["upload", str(tmp_path), "s3://bucket", *flags]))
    assert config.filters == (("exclude", "*.log"), ("include", "keep.log"), ("exclude", "tmp/"), ("include", "tmp/x"))


def test_no_state_keeps_no_state(tmp_path: Path) -> None:
    config = config_from_args(build_parser().parse_args(["upload", str(tmp_path), "s3://bucket", "--no-state"]))
    assert config.state_file is None


@pytest.mark.parametrize(
    "flags",
    [
        ["--state-file", "x.db", "--no-state"],
        ["--no-progress", "-q"],
        ["-q", "-v"],
        ["--no-progress", "--verbose"],
    ],
)
def test_options_of_one_group_exclude_each_other(tmp_path: Path, flags: list[str]) -> None:
    with pytest.raises(ConfigError, match="not allowed with"):
        build_parser().parse_args(["upload", str(tmp_path), "s3://bucket", *flags])


def test_cleanup_and_merge_reports_take_their_options() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["cleanup", "s3://bucket/p", "--older-than", "2h", "--dry-run", "--account-url", "https://a.example"]
    )
    assert (args.destination, args.older_than, args.dry_run, args.endpoint_url) == (
        "s3://bucket/p",
        "2h",
        True,
        "https://a.example",
    )
    assert parser.parse_args(["cleanup", "s3://bucket"]).older_than == "1d"
    merged = parser.parse_args(["merge-reports", "a.jsonl", "b.jsonl", "-o", "all.jsonl", "--summary-format", "json"])
    assert (merged.reports, merged.output, merged.summary_format) == (["a.jsonl", "b.jsonl"], "all.jsonl", "json")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command.name)
def test_help_lists_every_option_with_its_default(command: Command, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([command.name, "--help"])
    assert exited.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps lines: compare words
    for option in command.options:
        for flag in option.flags:
            assert flag in shown
        if option.default_text:
            assert f"(default: {option.default_text})" in shown


def test_help_groups_an_uploads_options_by_scope(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["upload", "--help"])
    out = capsys.readouterr().out
    sections = out[out.index("how to reach the store:") :]
    connection, run, own = (
        sections.index(title) for title in ("how to reach the store:", "the run:", "the command line's own:")
    )
    assert connection < sections.index("--endpoint-url") < run
    assert run < sections.index("--part-size") < own < sections.index("--quiet")
    assert "--lean {on,off}" in sections
