"""A run's result in words: the closing lines for people, and for machines (``--summary-format``).

``json`` suits any CI system; ``github`` prints a markdown table and, when the runner's ``GITHUB_STEP_SUMMARY``
and ``GITHUB_OUTPUT`` files are set, appends the table to the job summary and the totals to the step's outputs.
Nothing here prints credentials: the result holds none.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Final

from ..events import UploadResult
from .units import format_bytes

MAX_FAILURES_LISTED: Final = 20


def size_only(result: UploadResult) -> str:
    """What the files whose checksum the store did not confirm are: never passed off as verified."""
    return f"the store returned no checksum: {result.checked_by_size} files were checked by size only"


def _bytes_and_rate(result: UploadResult) -> str:
    """``(1.5 GiB) in 12.0 s, 128.0 MiB/s``; resumed bytes apart: they were sent by an earlier run, not at this
    rate."""
    resumed = f", {format_bytes(result.bytes_resumed)} of it resumed" if result.bytes_resumed else ""
    return (
        f"({format_bytes(result.bytes_uploaded)}{resumed}) in {result.elapsed_s:.1f} s, "
        f"{format_bytes(result.throughput_bps)}/s"
    )


def summary_lines(result: UploadResult, *, interrupted: bool = False, checksums_asked: bool = True) -> list[str]:
    """The closing summary: one line of totals, a line if files were checked by size only (a warning unless
    ``--checksum none`` asked for no checksum), then the failed files (up to ``MAX_FAILURES_LISTED``, then a count).

    An interrupted run says how far it got against what there was: "167 of 3,975 uploaded, 3,808 not started".
    """
    if result.planned or result.would_delete:
        deletes = f"; would delete {result.would_delete:,} keys" if result.would_delete else ""
        return [
            f"Dry run: would upload {result.planned:,} files ({format_bytes(result.bytes_planned)}){deletes}; "
            "nothing sent"
        ]
    retries = f"; {result.retries:,} retries" if result.retries else ""
    if interrupted:
        total = result.uploaded + result.skipped + result.failed + result.not_started
        head = (
            f"Interrupted: {result.uploaded:,} of {total:,} uploaded {_bytes_and_rate(result)}; "
            f"{result.not_started:,} not started, {result.skipped:,} skipped, {result.failed:,} failed{retries}"
        )
    else:
        head = (
            f"Uploaded {result.uploaded:,} files {_bytes_and_rate(result)}; "
            f"{result.skipped:,} skipped, {result.failed:,} failed{retries}"
        )
    if result.deleted or result.delete_failed:
        head += f"; deleted {result.deleted:,}"
        if result.delete_failed:
            head += f", {result.delete_failed:,} not deleted"
    lines = [head]
    if result.checked_by_size and checksums_asked:
        lines.append(f"  warning: {size_only(result)}")
    elif result.checked_by_size:
        lines.append(f"  {result.checked_by_size:,} files were checked by size only (--checksum none)")
    for path, reason in result.failures[:MAX_FAILURES_LISTED]:
        lines.append(f"  failed: {path}: {reason}")
    failed = result.failed + result.delete_failed
    if failed > MAX_FAILURES_LISTED:
        lines.append(f"  ... and {failed - MAX_FAILURES_LISTED} more failed files")
    return lines


def summary_json(result: UploadResult, *, destination: str, report: Path | None, interrupted: bool = False) -> str:
    """One line of JSON: the totals, where they went, whether the run was cut short, and every failed file with
    its reason."""
    return json.dumps(
        {
            "destination": destination,
            "interrupted": interrupted,
            "uploaded": result.uploaded,
            "skipped": result.skipped,
            "failed": result.failed,
            "not_started": result.not_started,
            "bytes": result.bytes_uploaded,
            "bytes_resumed": result.bytes_resumed,
            "elapsed_s": round(result.elapsed_s, 3),
            "checked_by_size": result.checked_by_size,
            "compared": dict(sorted(result.compared.items())),
            "deleted": result.deleted,
            "delete_failed": result.delete_failed,
            "would_delete": result.would_delete,
            "report": str(report) if report is not None else None,
            "failures": [{"path": path, "error": reason} for path, reason in result.failures],
        },
        ensure_ascii=True,  # a name that is not UTF-8 stays a \udcXX escape; the output is valid anywhere
    )


def _cell(text: str) -> str:
    printable = text.encode("utf-8", "backslashreplace").decode("utf-8")  # names that are not UTF-8
    return printable.replace("|", "\\|").replace("\n", " ")


def summary_markdown(result: UploadResult, *, destination: str, interrupted: bool = False) -> str:
    """A markdown table of the totals, then one of the failed files (up to ``MAX_FAILURES_LISTED``)."""
    lines = [f"### async-uploader: {_cell(destination)}", ""]
    if interrupted:
        lines += [f"**Interrupted**: {result.not_started:,} files not started.", ""]
    columns = {
        "uploaded": str(result.uploaded),
        "skipped": str(result.skipped),
        "failed": str(result.failed + result.delete_failed),
    }
    if result.deleted or result.delete_failed:  # --delete: a column of its own where it did something
        columns["deleted"] = str(result.deleted)
    columns.update(
        {
            "bytes": format_bytes(result.bytes_uploaded),
            "time": f"{result.elapsed_s:.1f} s",
            "throughput": f"{format_bytes(result.throughput_bps)}/s",
        }
    )
    lines += [
        f"| {' | '.join(columns)} |",
        f"|{' ---: |' * len(columns)}",
        f"| {' | '.join(columns.values())} |",
    ]
    if result.checked_by_size:
        lines += ["", f"**Warning**: {size_only(result)}."]
    if result.failures:
        lines += ["", "| failed file | reason |", "| --- | --- |"]
        lines += [f"| `{_cell(path)}` | {_cell(reason)} |" for path, reason in result.failures[:MAX_FAILURES_LISTED]]
        if result.failed + result.delete_failed > MAX_FAILURES_LISTED:
            lines.append(f"| ... | and {result.failed + result.delete_failed - MAX_FAILURES_LISTED} more |")
    return "\n".join(lines) + "\n"


def write_github_files(
    result: UploadResult, *, destination: str, report: Path | None, interrupted: bool = False
) -> None:
    """Append to the runner's job summary and step outputs, where the runner provides them."""
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        with open(summary_path, "a", encoding="utf-8") as f:
            f.write(summary_markdown(result, destination=destination, interrupted=interrupted))
    output_path = os.environ.get("GITHUB_OUTPUT")
    if output_path:
        with open(output_path, "a", encoding="utf-8") as f:
            f.write(f"uploaded={result.uploaded}\n")
            f.write(f"skipped={result.skipped}\n")
            f.write(f"failed={result.failed}\n")
            f.write(f"bytes={result.bytes_uploaded}\n")
            f.write(f"checked_by_size={result.checked_by_size}\n")
            f.write(f"report={report or ''}\n")
            f.write(f"not_started={result.not_started}\n")
            f.write(f"interrupted={'true' if interrupted else 'false'}\n")
            f.write(f"deleted={result.deleted}\n")
            f.write(f"would_delete={result.would_delete}\n")
