"""Turn run records into markdown tables (for the terminal and the docs) and the raw JSON file.

Tables show medians with min-max, computed only over runs that passed the bucket check: a fast run that
lost files is not a result. The ok column says how many runs that was.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

from tools.bench.records import BenchInfo, RunRecord
from tools.bench.uploaders import OUR_TOOL

KIB_PER_MIB = 1024
Metric = Callable[[RunRecord], float]


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(values: Sequence[float]) -> str:
    if not values:
        return "-"
    middle = _number(statistics.median(values))
    if len(values) == 1:
        return middle
    return f"{middle} ({_number(min(values))}-{_number(max(values))})"


def _median(records: Sequence[RunRecord], metric: Metric) -> float | None:
    return statistics.median(metric(r) for r in records) if records else None


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or reference is None or reference == 0:
        return "-"
    return f"{value / reference:.2f}x"


def _paired_ratios(runs: Sequence[RunRecord], ours: Sequence[RunRecord]) -> list[float]:
    """Each run's wall time over ours in the same round: the machine's drift from round to round (the same tool's
    wall time moves by 25% between consecutive rounds here) hits both sides of a ratio alike and cancels."""
    our_wall = {r.rep: r.usage.wall_s for r in ours}
    return [r.usage.wall_s / our_wall[r.rep] for r in runs if our_wall.get(r.rep)]


def _by_tool(records: Iterable[RunRecord], dataset: str, tools: Sequence[str]) -> dict[str, list[RunRecord]]:
    grouped: dict[str, list[RunRecord]] = {tool: [] for tool in tools}
    for record in records:
        if record.dataset == dataset and record.tool in grouped:
            grouped[record.tool].append(record)
    return grouped


def _rss_mib(record: RunRecord) -> float:
    return record.usage.max_rss_kib / KIB_PER_MIB


def throughput_table(records: Sequence[RunRecord], dataset: str, tools: Sequence[str], labels: dict[str, str]) -> str:
    """One dataset: a row per tool, medians (min-max) of what a user and an operator pay, ratios to ours: of the
    medians, and the median (min-max) of the ratios within each round."""
    lines = [
        "| tool | ok | wall s | CPU s | peak RSS MiB | files/s | MB/s | server CPU s | wall vs ours "
        "| same-round wall vs ours | CPU vs ours |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    grouped = _by_tool(records, dataset, tools)
    passed = {tool: [r for r in runs if r.ok] for tool, runs in grouped.items()}
    our_wall = _median(passed.get(OUR_TOOL, []), lambda r: r.usage.wall_s)
    our_cpu = _median(passed.get(OUR_TOOL, []), lambda r: r.usage.cpu_s)
    for tool, runs in grouped.items():
        if not runs:
            continue
        good = passed[tool]
        cells = [
            _cell([metric(r) for r in good])
            for metric in (
                lambda r: r.usage.wall_s,
                lambda r: r.usage.cpu_s,
                _rss_mib,
                lambda r: r.files_per_s,
                lambda r: r.mb_per_s,
                lambda r: r.usage.server_cpu_s,
            )
        ]
        wall_ratio = _ratio(_median(good, lambda r: r.usage.wall_s), our_wall)
        paired = _cell(_paired_ratios(good, passed.get(OUR_TOOL, [])))
        cpu_ratio = _ratio(_median(good, lambda r: r.usage.cpu_s), our_cpu)
        lines.append(
            f"| {labels.get(tool, tool)} | {len(good)}/{len(runs)} | {' | '.join(cells)} | {wall_ratio} | {paired} "
            f"| {cpu_ratio} |"
        )
    return "\n".join(lines)


def memory_table(
    records: Sequence[RunRecord], datasets: Sequence[str], tools: Sequence[str], labels: dict[str, str]
) -> str:
    """Peak RSS per dataset, so growth with file count, folder count or file size shows at a glance."""
    lines = [
        "| tool | dataset | files | GiB | ok | peak RSS MiB | wall s | CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset in datasets:
        for tool, runs in _by_tool(records, dataset, tools).items():
            if not runs:
                continue
            good = [r for r in runs if r.ok]
            size_gib = runs[0].total_bytes / 2**30
            cells = [
                _cell([metric(r) for r in good])
                for metric in (_rss_mib, lambda r: r.usage.wall_s, lambda r: r.usage.cpu_s)
            ]
            row = [labels.get(tool, tool), dataset, f"{runs[0].files:,}", f"{size_gib:.2f}", f"{len(good)}/{len(runs)}"]
            lines.append(f"| {' | '.join([*row, *cells])} |")
    return "\n".join(lines)


def rss_ratio(records: Sequence[RunRecord], tool: str, numerator: str, denominator: str) -> float | None:
    """Median peak RSS of one dataset over another's: near 1.0 means memory does not grow with the workload."""
    top = _median([r for r in records if r.ok and r.tool == tool and r.dataset == numerator], _rss_mib)
    bottom = _median([r for r in records if r.ok and r.tool == tool and r.dataset == denominator], _rss_mib)
    return None if top is None or not bottom else top / bottom


def run_notes(records: Sequence[RunRecord]) -> list[str]:
    """One line per run that failed or carries a caveat, so no number is read without its cause."""
    lines = []
    for r in records:
        if r.ok and r.note:
            lines.append(f"- {r.tool} on {r.dataset} (rep {r.rep + 1}): passed; {r.note}")
        elif not r.ok:
            why = "timed out" if r.usage.timed_out else f"exit {r.usage.exit_code}"
            found = f"{r.objects_found}/{r.files} objects, {r.bytes_found}/{r.total_bytes} bytes"
            lines.append(f"- {r.tool} on {r.dataset} (rep {r.rep + 1}): FAILED, {why}, {found}. {r.note}".rstrip())
    return lines


def write_json(path: Path, info: BenchInfo, records: Sequence[RunRecord]) -> None:
    """Raw numbers for later analysis; derived values are included so readers need not recompute them."""
    runs = [
        {**asdict(r), "ok": r.ok, "cpu_s": r.usage.cpu_s, "files_per_s": r.files_per_s, "mb_per_s": r.mb_per_s}
        for r in records
    ]
    path.write_text(json.dumps({"info": asdict(info), "runs": runs}, indent=2) + "\n")
