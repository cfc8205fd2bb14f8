"""Tests for ``async_uploader.report``: the ``--report`` JSON Lines file, and reading it back for
``--retry-failed``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from async_uploader.errors import ConfigError
from async_uploader.events import (
    FileDone,
    FileFailed,
    FileSkipped,
    FileStarted,
    PartDone,
    RunFinished,
    TotalsKnown,
    UploadResult,
)
from async_uploader.report import ReportWriter, failed_paths, merge_reports

RECORD_KEYS = {"path", "key", "size", "status", "error", "etag", "checksum", "parts", "seconds"}

DONE = FileDone("photos/a.jpg", "pfx/photos/a.jpg", 20_000_000, '"9b2cf5-3"', "AAAAAA==", 3, 1.2345678)
FAILED = FileFailed("locked/b.bin", "pfx/locked/b.bin", "cannot read file: Permission denied", 7)
SKIPPED = FileSkipped("pipe", None, "a FIFO, not a regular file")
RESULT = UploadResult(uploaded=1, skipped=1, failed=1, bytes_uploaded=20_000_000, elapsed_s=2.34567)


def read_lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")  # strict: a report is UTF-8 JSON for any reader
    assert text == "" or text.endswith("\n"), "every record is a whole line"
    return [json.loads(line) for line in text.splitlines()]


def file_records(path: Path) -> list[dict[str, Any]]:
    return [record for record in read_lines(path) if "summary" not in record]


def summaries(path: Path) -> list[dict[str, Any]]:
    return [record["summary"] for record in read_lines(path) if "summary" in record]


@pytest.fixture
def report(tmp_path: Path) -> Path:
    return tmp_path / "report.jsonl"


@pytest.fixture
def writer(report: Path) -> Iterator[ReportWriter]:
    writer = ReportWriter(report)
    yield writer
    writer.close()  # closing twice is harmless


def test_each_finished_file_gets_one_record_then_a_summary(report: Path, writer: ReportWriter) -> None:
    for event in (
        TotalsKnown(3, 20_000_007),
        FileStarted(DONE.path, DONE.key, DONE.size, 3),
        PartDone(DONE.path, 1, 8_000_000),
        DONE,
        FAILED,
        SKIPPED,
        RunFinished(RESULT),
    ):
        writer.handle(event)
    writer.close()
    lines = read_lines(report)
    assert len(lines) == 4  # progress events leave no record
    for record in lines[:3]:
        assert record.keys() >= RECORD_KEYS
    uploaded, failed, skipped, summary = lines
    assert {key: uploaded[key] for key in RECORD_KEYS} == {
        "path": "photos/a.jpg",
        "key": "pfx/photos/a.jpg",
        "size": 20_000_000,
        "status": "uploaded",
        "error": None,
        "etag": '"9b2cf5-3"',
        "checksum": "AAAAAA==",
        "parts": 3,
        "seconds": pytest.approx(1.2345678, abs=1e-6),
    }
    assert {key: failed[key] for key in RECORD_KEYS} == {
        "path": "locked/b.bin",
        "key": "pfx/locked/b.bin",
        "size": 7,
        "status": "failed",
        "error": "cannot read file: Permission denied",
        "etag": None,
        "checksum": None,
        "parts": None,
        "seconds": None,
    }
    assert {key: skipped[key] for key in RECORD_KEYS} == {
        "path": "pipe",
        "key": None,
        "size": None,
        "status": "skipped",
        "error": None,
        "etag": None,
        "checksum": None,
        "parts": None,
        "seconds": None,
    }
    assert skipped["reason"] == "a FIFO, not a regular file"
    assert (uploaded["verified"], failed["verified"], skipped["verified"]) == ("checksum", None, None)
    assert summary == {
        "summary": {
            "uploaded": 1,
            "skipped": 1,
            "failed": 1,
            "not_started": 0,
            "bytes_uploaded": 20_000_000,
            "bytes_resumed": 0,
            "elapsed_s": 2.346,
            "checked_by_size": 0,
            "deleted": 0,
            "delete_failed": 0,
            "would_delete": 0,
            "interrupted": False,
        }
    }


def test_a_file_uploaded_without_a_checksum_has_null_not_an_empty_string(report: Path, writer: ReportWriter) -> None:
    writer.handle(FileDone("a", "a", 1, '"e"', "", 1, 0.1))
    [record] = file_records(report)
    assert record["checksum"] is None


def test_each_record_says_how_its_file_was_compared_and_merged_reports_count_them(
    report: Path, writer: ReportWriter, tmp_path: Path
) -> None:
    writer.handle(FileDone("a", "a", 1, '"e"', "", 1, 0.1, compared="md5"))
    writer.handle(FileSkipped("b", "b", "unchanged", 2, compared="multipart-md5"))
    writer.handle(FileSkipped("c", "c", "unchanged", 2, compared="md5"))
    writer.handle(FileDone("d", "d", 1, '"e"', "", 1, 0.1))
    writer.close()
    assert [record["compared"] for record in file_records(report)] == ["md5", "multipart-md5", "md5", None]
    merged = merge_reports([report], tmp_path / "all.jsonl")
    assert merged.result.compared == {"md5": 2, "multipart-md5": 1}
    summary = json.loads((tmp_path / "all.jsonl").read_text().splitlines()[-1])["summary"]
    assert summary["compared"] == {"md5": 2, "multipart-md5": 1}


def test_every_record_is_on_disk_as_soon_as_it_is_written(report: Path, writer: ReportWriter) -> None:
    writer.handle(DONE)
    assert [record["path"] for record in file_records(report)] == [DONE.path]
    writer.handle(FAILED)
    assert [record["path"] for record in file_records(report)] == [DONE.path, FAILED.path]
    # A run killed here never closes the writer, yet --retry-failed can already use what is on disk.
    assert list(failed_paths(report)) == [FAILED.path]


def test_a_cut_short_run_ends_its_report_with_an_interrupted_summary(report: Path) -> None:
    writer = ReportWriter(report)
    writer.handle(DONE)
    writer.handle(RunFinished(UploadResult(uploaded=1, bytes_uploaded=DONE.size, elapsed_s=0.5), interrupted=True))
    writer.close()
    assert summaries(report) == [
        {
            "uploaded": 1,
            "skipped": 0,
            "failed": 0,
            "not_started": 0,
            "bytes_uploaded": DONE.size,
            "bytes_resumed": 0,
            "elapsed_s": 0.5,
            "checked_by_size": 0,
            "deleted": 0,
            "delete_failed": 0,
            "would_delete": 0,
            "interrupted": True,
        }
    ]
    assert "summary" in read_lines(report)[-1]


def test_a_finished_run_has_one_summary_and_a_run_that_never_ended_none(report: Path) -> None:
    writer = ReportWriter(report)
    writer.handle(DONE)
    writer.handle(RunFinished(RESULT))
    writer.close()
    [summary] = summaries(report)
    assert summary["interrupted"] is False
    assert summary["uploaded"] == 1
    killed = ReportWriter(report)
    killed.handle(DONE)
    killed.close()
    assert summaries(report) == []


UNUSUAL_NAMES = [
    "日本語/naïve café.txt",
    "emoji 🎉/ok.bin",
    os.fsdecode(b"bad\xff"),
    os.fsdecode(b"dir\xfe/inner \x80.txt"),
    'quote " back\\slash\ttab',
]


def test_unusual_names_survive_the_report_byte_for_byte(report: Path) -> None:
    writer = ReportWriter(report)
    writer.handle(FileDone("plain.txt", "plain.txt", 1, '"e"', "c", 1, 0.1))
    for name in UNUSUAL_NAMES:
        writer.handle(FileFailed(name, None, "cannot read file: Input/output error"))
    writer.handle(RunFinished(RESULT))
    writer.close()
    found = list(failed_paths(report))
    assert found == UNUSUAL_NAMES
    # Retrying opens the very bytes that failed, not a replacement-character look-alike.
    assert os.fsencode(found[2]) == b"bad\xff"
    assert os.fsencode(found[3]) == b"dir\xfe/inner \x80.txt"


def test_a_report_with_a_non_utf8_name_is_still_valid_utf8_json(report: Path) -> None:
    """The README: a name that is not UTF-8 keeps its bytes as ``\\udcXX`` escapes, so jq or pandas can read it."""
    writer = ReportWriter(report)
    writer.handle(FileFailed(os.fsdecode(b"bad-\xff"), None, "file name is not valid UTF-8"))
    writer.handle(RunFinished(RESULT))
    writer.close()
    text = report.read_bytes().decode("utf-8")  # strict, as any JSON reader decodes it
    assert "bad-\\udcff" in text
    assert json.loads(text.splitlines()[0])["path"] == os.fsdecode(b"bad-\xff")
    assert list(failed_paths(report)) == [os.fsdecode(b"bad-\xff")]


def test_failed_paths_lists_only_the_failed_files_in_order(report: Path) -> None:
    writer = ReportWriter(report)
    for event in (
        DONE,
        FileFailed("one.txt", "one.txt", "boom"),
        SKIPPED,
        FileFailed("sub", None, "cannot list directory: Permission denied"),
        RunFinished(RESULT),
    ):
        writer.handle(event)
    writer.close()
    assert list(failed_paths(report)) == ["one.txt", "sub"]


def test_failed_paths_ignores_a_torn_last_line(report: Path) -> None:
    writer = ReportWriter(report)
    writer.handle(FileFailed("first.txt", None, "boom"))
    writer.handle(DONE)
    writer.close()
    with report.open("a", encoding="utf-8") as handle:
        handle.write('{"path": "torn.txt", "key": null, "status": "fai')  # the writer died mid-line
    assert list(failed_paths(report)) == ["first.txt"]


def test_an_empty_report_has_nothing_to_retry(report: Path) -> None:
    report.write_text("")
    assert list(failed_paths(report)) == []


@pytest.mark.parametrize(
    "content",
    [
        "hello world\nnot json either\n",
        '{"status": "failed", "path": "a"}\nthis line is broken\n{"status": "failed", "path": "b"}\n',
        '{"name": "package.json", "version": "1.0"}\n',
        "[1, 2, 3]\n",
    ],
    ids=["text", "broken-line-in-the-middle", "other-json", "json-array"],
)
def test_a_file_that_is_not_a_report_is_refused(report: Path, content: str) -> None:
    report.write_text(content)
    with pytest.raises(ConfigError, match="not a JSON Lines report"):
        list(failed_paths(report))


def test_a_missing_report_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(ConfigError, match="cannot read report"):
        list(failed_paths(missing))


@pytest.mark.parametrize("where", ["a-directory", "missing-dir/report.jsonl"])
def test_an_unwritable_report_path_is_refused_before_the_run(tmp_path: Path, where: str) -> None:
    (tmp_path / "a-directory").mkdir()
    with pytest.raises(ConfigError, match="cannot write report"):
        ReportWriter(tmp_path / where)


def write_report(path: Path, records: list[dict[str, object]], summary: dict[str, object] | None) -> Path:
    lines = [json.dumps(r) for r in records] + ([json.dumps({"summary": summary})] if summary is not None else [])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def record(path: str, status: str, size: int = 1, verified: str | None = None) -> dict[str, object]:
    error = "boom" if status == "failed" else None
    return {"path": path, "key": path, "size": size, "status": status, "error": error, "verified": verified}


def test_merged_reports_count_every_shard_and_copy_every_record(tmp_path: Path) -> None:
    done = {"uploaded": 2, "skipped": 0, "failed": 0, "bytes_uploaded": 5, "elapsed_s": 3.0, "interrupted": False}
    one = write_report(tmp_path / "0.jsonl", [record("a", "uploaded", 2), record("b", "uploaded", 3, "size")], done)
    two = write_report(
        tmp_path / "1.jsonl", [record("c", "skipped"), record("d", "failed")], {**done, "elapsed_s": 4.5}
    )
    output = tmp_path / "all.jsonl"

    merged = merge_reports([one, two], output)

    assert (merged.result.uploaded, merged.result.skipped, merged.result.failed) == (2, 1, 1)
    assert merged.result.bytes_uploaded == 5
    assert merged.result.elapsed_s == 4.5
    assert merged.result.failures == (("d", "boom"),)
    assert merged.result.checked_by_size == 1
    assert merged.incomplete == ()
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [line.get("path") for line in lines[:-1]] == ["a", "b", "c", "d"]
    assert (lines[-1]["summary"]["failed"], lines[-1]["summary"]["checked_by_size"]) == (1, 1)


def test_a_shard_that_did_not_finish_is_named(tmp_path: Path) -> None:
    cut = write_report(tmp_path / "cut.jsonl", [record("a", "uploaded")], None)
    (tmp_path / "cut.jsonl").write_text((tmp_path / "cut.jsonl").read_text() + '{"path": "b", "sta', encoding="utf-8")
    merged = merge_reports([cut])
    assert merged.incomplete == (str(cut),)
    assert merged.records == 1


def test_a_retried_shards_attempts_keep_each_path_once_at_its_best(tmp_path: Path) -> None:
    # The first attempt died after two files (no summary); the retry found them uploaded and finished.
    killed = write_report(tmp_path / "0-a.jsonl", [record("a", "uploaded", 2), record("b", "failed")], None)
    retry = write_report(
        tmp_path / "0-b.jsonl",
        [record("b", "uploaded", 3), record("a", "skipped", 2), record("\udcff-odd", "failed"), record("c", "skipped")],
        {"uploaded": 1, "skipped": 2, "failed": 1, "bytes_uploaded": 3, "elapsed_s": 2.0, "interrupted": False},
    )
    other = write_report(tmp_path / "1.jsonl", [record("d", "uploaded", 4)], None)
    output = tmp_path / "all.jsonl"

    merged = merge_reports([[killed, retry], other], output)

    lines = read_lines(output)
    assert [(line["path"], line["status"]) for line in lines[:-1]] == [
        ("a", "uploaded"),
        ("b", "uploaded"),
        ("\udcff-odd", "failed"),
        ("c", "skipped"),
        ("d", "uploaded"),
    ]
    assert (merged.result.uploaded, merged.result.skipped, merged.result.failed) == (3, 1, 1)
    assert merged.result.bytes_uploaded == 2 + 3 + 4
    assert merged.records == 5
    # Shard 0 finished on its retry; shard 1 never did.
    assert merged.incomplete == (str(other),)
    assert lines[-1]["summary"]["interrupted"] is True
