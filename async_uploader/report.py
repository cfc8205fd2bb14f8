"""``--report FILE``: one JSON Lines record per file as it finishes, then a summary record.

A subscriber to the engine's events. Each record is written and flushed as the file finishes, so a crash or a
kill leaves a valid prefix that ``--retry-failed`` can still read. Schema (documented in the README):
``{"path", "key", "size", "status": "uploaded"|"skipped"|"failed"|"not_started", "error", "etag", "checksum",
"parts", "seconds", "verified": "checksum"|"size", "compared"}`` per file, ``{"path": null, "key", "status":
"deleted"|"would_delete"|"delete_failed", "error"}`` per key of ``--delete``, then ``{"summary": {...}}`` (with
the run's ``source``). A run cut short lists every file it did not upload as ``not_started``, so ``--retry-failed`` can
take them again.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from .errors import ConfigError
from .events import (
    MAX_FAILURES_KEPT,
    DeleteFailed,
    DeletePlanned,
    Event,
    FileDone,
    FileFailed,
    FileNotStarted,
    FileSkipped,
    ObjectDeleted,
    RunFinished,
    UploadResult,
)

RETRIED_STATUSES: Final = frozenset({"failed", "not_started"})
"""What ``--retry-failed`` takes again from a report."""


def summary_record(result: UploadResult, *, interrupted: bool = False, source: Path | None = None) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "uploaded": result.uploaded,
        "skipped": result.skipped,
        "failed": result.failed,
        "not_started": result.not_started,
        "bytes_uploaded": result.bytes_uploaded,
        "bytes_resumed": result.bytes_resumed,
        "elapsed_s": round(result.elapsed_s, 3),
        "checked_by_size": result.checked_by_size,
        "deleted": result.deleted,
        "delete_failed": result.delete_failed,
        "would_delete": result.would_delete,
        "interrupted": interrupted,
    }
    if result.compared:
        summary["compared"] = dict(sorted(result.compared.items()))
    if source is not None:
        summary["source"] = str(source)
    return {"summary": summary}


def report_source(source: Path) -> Path:
    """How a report names its run's SOURCE: absolute, links resolved, so two spellings of one folder agree."""
    return source.resolve()


class ReportWriter:
    """Appends one line per finished file to an open report, then the summary that ``RunFinished`` carries (marked
    ``interrupted`` for a run cut short). A report whose run never got that far has no summary."""

    def __init__(self, path: Path, *, append: bool = False, source: Path | None = None) -> None:
        """``append``: go on with a report written so far (a Dask client spools a shard's batches this way).
        ``source``: the run's SOURCE, recorded in the summary so ``--retry-failed`` can refuse another's."""
        self._source = report_source(source) if source is not None else None
        try:
            # A name that is not UTF-8 (surrogate escapes) is written as a JSON \udcXX escape: valid UTF-8 out.
            self._file: IO[str] = path.open("a" if append else "w", encoding="utf-8", errors="backslashreplace")
        except OSError as exc:
            raise ConfigError(f"cannot write report {str(path)!r}: {exc.strerror or exc}") from exc

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
                    "verified": event.verified,
                    "compared": event.compared,
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
                    "verified": None,
                    "compared": event.compared if isinstance(event, FileSkipped) else None,
                }
            )
        elif isinstance(event, FileNotStarted):
            reason = "interrupted mid-upload" if event.in_flight else "interrupted before it started"
            self._write(
                {
                    "path": event.path,
                    "key": None,
                    "size": event.size,
                    "status": "not_started",
                    "error": None,
                    "reason": reason,
                    "etag": None,
                    "checksum": None,
                    "parts": None,
                    "seconds": None,
                }
            )
        elif isinstance(event, ObjectDeleted | DeletePlanned | DeleteFailed):
            # --delete: a record per key, with no path (no file maps to it); --retry-failed takes none of them.
            status = "deleted" if isinstance(event, ObjectDeleted) else "would_delete"
            if isinstance(event, DeleteFailed):
                status = "delete_failed"
            error = event.reason if isinstance(event, DeleteFailed) else None
            self._write({"path": None, "key": event.key, "status": status, "error": error})
        elif isinstance(event, RunFinished):
            self._write(summary_record(event.result, interrupted=event.interrupted, source=self._source))

    def close(self) -> None:
        self._file.close()


def failed_paths(report: Path, source: Path | None = None) -> Iterator[str]:
    """Relative paths that an earlier report lists as failed or not started; a torn last line (a crash) is
    ignored. With ``source``, a report whose summary names another SOURCE is refused (``ConfigError``) before
    any path is yielded: its paths would name other files."""
    if source is not None:
        recorded = _recorded_source(report)
        if recorded is not None and recorded != str(report_source(source)):
            raise ConfigError(f"--retry-failed: {report} is the report of {recorded}, not of {source}")
    for record in _records(report):
        if record.get("status") in RETRIED_STATUSES and isinstance(record.get("path"), str):
            yield record["path"]


def _recorded_source(report: Path) -> str | None:
    """The SOURCE a report's summary names; ``None`` for a report without one (a crash, an older version)."""
    recorded = None
    for record in _records(report):
        if "summary" in record and isinstance(record["summary"].get("source"), str):
            recorded = record["summary"]["source"]
    return recorded


@dataclass(frozen=True, slots=True)
class MergedReports:
    """Several shards' reports as one: totals counted from their file records, and what to read with care."""

    result: UploadResult
    records: int
    incomplete: tuple[str, ...]
    """Shards none of whose reports has a summary of a run that was not interrupted: they did not finish."""


# When a retried shard's attempts list a path more than once, the best outcome is the one that happened.
_STATUS_RANK: Final = {"uploaded": 3, "skipped": 2, "failed": 1}


class _Tally:
    """Counts file records into an ``UploadResult``, copying each to the merged report if there is one."""

    def __init__(self, writer: IO[str] | None) -> None:
        self.uploaded = self.skipped = self.failed = self.bytes_uploaded = self.records = self.not_started = 0
        self.checked_by_size = 0
        self.compared: Counter[str] = Counter()
        self.failures: list[tuple[str, str]] = []
        self._writer = writer

    def add(self, record: dict[str, Any]) -> None:
        self.records += 1
        status = record.get("status")
        if isinstance(compared := record.get("compared"), str):
            self.compared[compared] += 1
        if status == "uploaded":
            self.uploaded += 1
            self.bytes_uploaded += int(record.get("size") or 0)
            self.checked_by_size += record.get("verified") == "size"
        elif status == "skipped":
            self.skipped += 1
        elif status == "not_started":
            self.not_started += 1
        elif status == "failed":
            self.failed += 1
            if len(self.failures) < MAX_FAILURES_KEPT:
                self.failures.append((str(record.get("path")), str(record.get("error"))))
        if self._writer is not None:
            self._writer.write(json.dumps(record, ensure_ascii=False) + "\n")


def merge_reports(reports: Sequence[Path | Sequence[Path]], output: Path | None = None) -> MergedReports:
    """Combine shard reports: every file record is copied to ``output`` (if given) and counted; then one summary.

    An item of ``reports`` is one shard's report, or the reports of a shard's attempts (a shard that was retried,
    as Dask retries the shard of a worker that died): those may list a path twice, and only its best record is
    kept (uploaded, else skipped, else failed; the later attempt's on a tie), in a temporary SQLite table rather
    than in memory. Nothing else is held per file. A shard is complete when one of its attempts finished.
    """
    elapsed = 0.0
    incomplete: list[str] = []
    writer = output.open("w", encoding="utf-8", errors="backslashreplace") if output is not None else None
    try:
        tally = _Tally(writer)
        for shard in reports:
            attempts = [shard] if isinstance(shard, Path) else list(shard)
            summaries = _merge_attempts(attempts, tally) if len(attempts) > 1 else [_copy_records(attempts[0], tally)]
            if not any(summary is not None and not summary.get("interrupted") for summary in summaries):
                incomplete.append(", ".join(map(str, attempts)))
            for summary in summaries:
                if summary is not None:
                    elapsed = max(elapsed, float(summary.get("elapsed_s") or 0.0))
        result = UploadResult(
            uploaded=tally.uploaded,
            skipped=tally.skipped,
            failed=tally.failed,
            bytes_uploaded=tally.bytes_uploaded,
            elapsed_s=elapsed,
            checked_by_size=tally.checked_by_size,
            failures=tuple(tally.failures),
            not_started=tally.not_started,
            compared=dict(tally.compared),
        )
        if writer is not None:
            writer.write(json.dumps(summary_record(result, interrupted=bool(incomplete))) + "\n")
    finally:
        if writer is not None:
            writer.close()
    return MergedReports(result, tally.records, tuple(incomplete))


def _copy_records(report: Path, tally: _Tally) -> dict[str, Any] | None:
    """Count (and copy) every file record of one report; its summary, if it has one."""
    summary: dict[str, Any] | None = None
    for record in _records(report):
        if "summary" in record:
            summary = record["summary"]
        else:
            tally.add(record)
    return summary


def _merge_attempts(attempts: Sequence[Path], tally: _Tally) -> list[dict[str, Any] | None]:
    """Count (and copy) the best record of each path of one shard's attempts; their summaries."""
    summaries: list[dict[str, Any] | None] = []
    with contextlib.closing(sqlite3.connect("")) as db:  # "": a private temporary database, on disk past its cache
        db.execute("CREATE TABLE best (path TEXT PRIMARY KEY, rank INTEGER, record TEXT)")
        for report in attempts:
            summary: dict[str, Any] | None = None
            for record in _records(report):
                if "summary" in record:
                    summary = record["summary"]
                    continue
                # JSON text with ASCII escapes: a name that is not UTF-8 (surrogate escapes) is stored as it came.
                rank = _STATUS_RANK.get(str(record.get("status")), 0)
                db.execute(
                    "INSERT INTO best VALUES (?, ?, ?) ON CONFLICT (path) DO UPDATE"
                    " SET rank = excluded.rank, record = excluded.record WHERE excluded.rank >= best.rank",
                    (json.dumps(record.get("path")), rank, json.dumps(record)),
                )
            summaries.append(summary)
        for (text,) in db.execute("SELECT record FROM best ORDER BY rowid"):
            tally.add(json.loads(text))
    return summaries


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
