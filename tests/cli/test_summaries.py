"""A run's result in words: the closing lines people read, the JSON and markdown machines read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from async_uploader.cli.summaries import summary_json, summary_lines, summary_markdown, write_github_files
from async_uploader.events import UploadResult


def test_summary_lists_twenty_failures_then_a_count() -> None:
    failures = tuple((f"f{i}", "reason") for i in range(25))
    result = UploadResult(uploaded=3, failed=25, bytes_uploaded=3 * 1024 * 1024, elapsed_s=2.0, failures=failures)
    lines = summary_lines(result)
    assert lines[0].startswith("Uploaded 3 files (3.0 MiB) in 2.0 s, 1.5 MiB/s; 0 skipped, 25 failed")
    assert lines[1:21] == [f"  failed: f{i}: reason" for i in range(20)]
    assert lines[21] == "  ... and 5 more failed files"


def test_files_checked_by_size_only_are_a_warning_unless_no_checksum_was_asked_for() -> None:
    result = UploadResult(uploaded=3, checked_by_size=2, failed=1, failures=(("f", "reason"),))
    assert summary_lines(result)[1:] == [
        "  warning: the store returned no checksum: 2 files were checked by size only",
        "  failed: f: reason",
    ]
    assert summary_lines(result, checksums_asked=False)[1] == "  2 files were checked by size only (--checksum none)"
    assert len(summary_lines(UploadResult(uploaded=3))) == 1
    markdown = summary_markdown(result, destination="s3://b/").splitlines()
    assert "**Warning**: the store returned no checksum: 2 files were checked by size only." in markdown
    assert json.loads(summary_json(result, destination="s3://b/", report=None))["checked_by_size"] == 2


def test_json_summary_is_one_line_of_ascii_json() -> None:
    name = "caf\u00e9-\udcff"  # a name that is not UTF-8 keeps its escape
    result = UploadResult(uploaded=2, failed=1, bytes_uploaded=10, elapsed_s=1.23456, failures=((name, "boom"),))
    text = summary_json(result, destination="s3://b/p/", report=Path("r.jsonl"))
    assert "\n" not in text
    assert text.isascii()
    assert json.loads(text) == {
        "destination": "s3://b/p/",
        "interrupted": False,
        "uploaded": 2,
        "skipped": 0,
        "failed": 1,
        "not_started": 0,
        "bytes": 10,
        "bytes_resumed": 0,
        "elapsed_s": 1.235,
        "checked_by_size": 0,
        "compared": {},
        "deleted": 0,
        "delete_failed": 0,
        "would_delete": 0,
        "report": "r.jsonl",
        "failures": [{"path": name, "error": "boom"}],
    }


def test_markdown_summary_escapes_what_would_break_the_table() -> None:
    failures = (("a|b\nc", "bad | worse"),)
    result = UploadResult(uploaded=1, failed=1, bytes_uploaded=2048, elapsed_s=2.0, failures=failures)
    text = summary_markdown(result, destination="s3://b|x/")
    lines = text.splitlines()
    assert lines[0] == "### async-uploader: s3://b\\|x/"
    assert lines[4] == "| 1 | 0 | 1 | 2.0 KiB | 2.0 s | 1.0 KiB/s |"
    assert lines[-1] == "| `a\\|b c` | bad \\| worse |"


def test_github_files_get_the_table_and_the_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    result = UploadResult(uploaded=4, skipped=1, bytes_uploaded=40, elapsed_s=1.0)
    write_github_files(result, destination="s3://b/", report=None)
    assert summary.read_text(encoding="utf-8") == summary_markdown(result, destination="s3://b/")
    assert outputs.read_text(encoding="utf-8").splitlines() == [
        "uploaded=4",
        "skipped=1",
        "failed=0",
        "bytes=40",
        "checked_by_size=0",
        "report=",
        "not_started=0",
        "interrupted=false",
        "deleted=0",
        "would_delete=0",
    ]


def test_deletions_are_in_every_summary() -> None:
    result = UploadResult(uploaded=1, deleted=3, delete_failed=1, failures=(("p/k", "not deleted: AccessDenied"),))
    assert summary_lines(result)[0].endswith("0 skipped, 0 failed; deleted 3, 1 not deleted")
    assert "  failed: p/k: not deleted: AccessDenied" in summary_lines(result)
    assert json.loads(summary_json(result, destination="s3://b/", report=None))["deleted"] == 3
    table = summary_markdown(result, destination="s3://b/").splitlines()
    assert table[2].startswith("| uploaded | skipped | failed | deleted | bytes |")
    assert table[4].startswith("| 1 | 0 | 1 | 3 | ")
    assert "deleted" not in summary_markdown(UploadResult(uploaded=1), destination="s3://b/")
    dry = summary_lines(UploadResult(planned=2, bytes_planned=10, would_delete=4))
    assert dry == ["Dry run: would upload 2 files (10 B); would delete 4 keys; nothing sent"]


def test_an_interrupted_run_says_how_far_it_got_of_what_there_was() -> None:
    result = UploadResult(uploaded=167, not_started=3808, bytes_uploaded=196 * 1024 * 1024, elapsed_s=4.0)
    assert summary_lines(result, interrupted=True) == [
        "Interrupted: 167 of 3,975 uploaded (196.0 MiB) in 4.0 s, 49.0 MiB/s; 3,808 not started, 0 skipped, 0 failed"
    ]
    assert json.loads(summary_json(result, destination="s3://b/", report=None, interrupted=True))["interrupted"]
    markdown = summary_markdown(result, destination="s3://b/", interrupted=True)
    assert "**Interrupted**: 3,808 files not started." in markdown


def test_resumed_bytes_are_shown_apart_and_left_out_of_the_rate() -> None:
    mib = 1024 * 1024
    result = UploadResult(uploaded=1, bytes_uploaded=437 * mib, bytes_resumed=312 * mib, elapsed_s=5.0)
    assert summary_lines(result) == [
        "Uploaded 1 files (437.0 MiB, 312.0 MiB of it resumed) in 5.0 s, 25.0 MiB/s; 0 skipped, 0 failed"
    ]
