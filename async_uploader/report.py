"""``--report FILE``: one JSON Lines record per file as it finishes, then a summary record.

A subscriber to the engine's events. Each record is written and flushed as the file finishes, so a crash or a
kill leaves a valid prefix that ``--retry-failed`` can still read. Schema (documented in the README):
``{"path", "key", "size", "status": "uploaded"|"skipped"|"failed", "error", "etag", "checksum", "parts",
"seconds"}`` per file, then ``{"summary": {...}}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import ConfigError
from .events import MAX_FAILURES_KEPT, Event, FileDone, FileFailed, FileSkipped, RunFinished, UploadResult


def summary_record(result: UploadResult, *, interrupted: bool = False) -> dict[str, Any]:
    return {
        "summary": {
            "uploaded": result.uploaded,
            "skipped": result.skipped,
            "failed": result.failed,
            "bytes_uploaded": result.bytes_uploaded,
            "elapsed_s": round(result.elapsed_s, 3),
            "interrupted": interrupted,
        }
    }


class ReportWriter:
    """Appends one line per finished file to an open report; ``close`` writes the summary if not yet written."""

    def __init__(self, path: Path) -> None:
        try:
            # A name that is not UTF-8 (surrogate escapes) is written as a JSON \udcXX escape: valid UTF-8 out.
            self._file: IO[str] = path.open("w", encoding="utf-8", errors="backslashreplace")
        except OSError as exc:
            raise ConfigError(f"cannot write report {str(path)!r}: {exc.strerror or exc}") from exc
        self._summary_written = False

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def handle(self, event: Event) -> None:
        if isinstance(event, FileDone):
            self._write(
                {
                    "path": event.path,
                    "key": event.key,
                    "size": event.size,
                    "status": "uploaded",
                    "error": None,
                    "etag": event.etag,
                    "checksum": event.checksum or None,
                    "parts": event.parts,
                    "seconds": round(event.seconds, 6),
                    "resumed_parts": event.resumed_parts,
                }
            )
        elif isinstance(event, FileFailed | FileSkipped):
            self._write(
                {
                    "path": event.path,
                    "key": event.key,
                    "size": event.size,
                    "status": "failed" if isinstance(event, FileFailed) else "skipped",
                    "error": event.reason if isinstance(event, FileFailed) else None,
                    "reason": event.reason if isinstance(event, FileSkipped) else None,
                    "etag": None,
                    "checksum": None,
                    "parts": None,
                    "seconds": None,
                }
            )
        elif isinstance(event, RunFinished):
            self._write(summary_record(event.result))
            self._summary_written = True

    def close(self, result_if_cut_short: UploadResult | None = None) -> None:
        """Close the report; a run that was cut short gets its summary here, marked ``interrupted``."""
        if not self._summary_written and result_if_cut_short is not None:
            self._write(summary_record(result_if_cut_short, interrupted=True))
            self._summary_written = True
        self._file.close()


def failed_paths(report: Path) -> Iterator[str]:
    """Relative paths that an earlier report lists as failed; a torn last line (a crash) is ignored."""
    for record in _records(report):
        if record.get("status") == "failed" and isinstance(record.get("path"), str):
            yield record["path"]


@dataclass(frozen=True, slots=True)
class MergedReports:
    """Several shards' reports as one: totals counted from their file records, and what to read with care."""

    result: UploadResult
    records: int
    incomplete: tuple[str, ...]
    """Reports without a summary, or whose run was interrupted: their shard did not finish."""


def merge_reports(reports: Sequence[Path], output: Path | None = None) -> MergedReports:
    """Combine shard reports: every file record is copied to ``output`` (if given) as it is read, and counted;
    then one summary. Nothing is held per file."""
    uploaded = skipped = failed = bytes_uploaded = records = 0
    elapsed = 0.0
    failures: list[tuple[str, str]] = []
    incomplete: list[str] = []
    writer = output.open("w", encoding="utf-8", errors="backslashreplace") if output is not None else None
    try:
        for report in reports:
            summary: dict[str, Any] | None = None
            for record in _records(report):
                if "summary" in record:
                    summary = record["summary"]
                    continue
                records += 1
                status = record.get("status")
                if status == "uploaded":
                    uploaded += 1
                    bytes_uploaded += int(record.get("size") or 0)
                elif status == "skipped":
                    skipped += 1
                elif status == "failed":
                    failed += 1
                    if len(failures) < MAX_FAILURES_KEPT:
                        failures.append((str(record.get("path")), str(record.get("error"))))
                if writer is not None:
                    writer.write(json.dumps(record, ensure_ascii=False) + "\n")
            if summary is None or summary.get("interrupted"):
                incomplete.append(str(report))
            if summary is not None:
                elapsed = max(elapsed, float(summary.get("elapsed_s") or 0.0))
        result = UploadResult(
            uploaded=uploaded,
            skipped=skipped,
            failed=failed,
            bytes_uploaded=bytes_uploaded,
            elapsed_s=elapsed,
            failures=tuple(failures),
        )
        if writer is not None:
            writer.write(json.dumps(summary_record(result, interrupted=bool(incomplete))) + "\n")
    finally:
        if writer is not None:
            writer.close()
    return MergedReports(result, records, tuple(incomplete))


def _records(report: Path) -> Iterator[dict[str, Any]]:
    """The records of a report; a torn last line (a crash) is ignored, anything else unreadable is refused."""
    try:
        handle = report.open(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read report {str(report)!r}: {exc.strerror or exc}") from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if line.endswith("\n"):
                    raise ConfigError(f"{report}:{number}: not a JSON Lines report of async-uploader") from None
                return  # the torn tail of a report whose writer died mid-line
            if not isinstance(record, dict) or ("summary" not in record and "status" not in record):
                raise ConfigError(f"{report}:{number}: not a JSON Lines report of async-uploader")
            yield record
