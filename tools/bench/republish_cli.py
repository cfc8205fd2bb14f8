"""``python -m tools.bench republish``: the re-publish benchmark of issue 22, printed as markdown, saved as JSON.

The job: a tree published once is published again from a "fresh CI checkout" (every mtime new, 1% of the
content changed; ``mutation.py``). Rows: ours with ``--compare checksum`` and no state file, ours' full upload and
no-op re-run as references, and the peers' ``sync``. See ``republish.py`` for what is measured and checked.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from tools.bench.cli import BENCH_DIR, DEFAULT_SEED, DEFAULT_TIMEOUT_S, _compile_our_package, _first_line, _machine
from tools.bench.datasets import MIB, dataset_specs, ensure_dataset
from tools.bench.mutation import CHANGED_FRACTION, ensure_mutated
from tools.bench.peers import DEFAULT_PEERS_VENV, locate_peers
from tools.bench.report import _cell
from tools.bench.republish import RepublishPlan, RepublishRecord, run_republish
from tools.bench.republishers import COMPARE_MODE, OUR_REPUBLISH, OUR_REPUBLISHERS, REPUBLISHERS, labels
from tools.bench.server_metrics import REQUEST_CLASSES
from tools.seaweedfs import find_weed

DEFAULT_DATASETS = ("small", "mixed")
DEFAULT_REPEAT = 3
_HELP_TIMEOUT_S = 60


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench republish",
        description="Re-publish benchmark (issue 22): publish each dataset, make a fresh checkout of it (every "
        f"mtime new, {CHANGED_FRACTION:.0%} of the content changed), re-publish, count time, CPU, memory, "
        "requests and bytes.",
    )
    parser.add_argument("--tools", type=_names, help=f"comma-separated, from {','.join(REPUBLISHERS)} (default: all)")
    parser.add_argument(
        "--datasets", type=_names, default=DEFAULT_DATASETS, help=f"default: {','.join(DEFAULT_DATASETS)}"
    )
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="runs of each tool on each dataset")
    parser.add_argument(
        "--compare",
        default=COMPARE_MODE,
        help=f"what our re-publish passes to --compare (default: {COMPARE_MODE}; `size` tests the harness on a "
        "branch without checksum, and then leaves same-size changes stale)",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiply file counts and large-file sizes")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed for contents and for the mutation")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds before a run is killed")
    parser.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data", help="dataset cache")
    parser.add_argument("--peers-venv", type=Path, default=DEFAULT_PEERS_VENV, help="venv holding the peer tools")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR, help="where republish-<timestamp>.json goes")
    return parser


def our_compare_modes() -> tuple[str, ...]:
    """The ``--compare`` choices the installed async-uploader offers, from its own help."""
    done = subprocess.run(
        [sys.executable, "-m", "async_uploader", "upload", "--help"],
        capture_output=True, text=True, timeout=_HELP_TIMEOUT_S, check=False,
    )  # fmt: skip
    found = re.search(r"--compare \{([^}]*)\}", done.stdout)
    return tuple(found.group(1).split(",")) if found else ()


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _shown(runs: Sequence[RepublishRecord]) -> list[RepublishRecord]:
    """The runs a row summarises: those that passed, or all of them when none did (a run that left stale objects
    did not do the job, but what it cost is still worth seeing)."""
    return [r for r in runs if r.ok] or list(runs)


def _count_cell(values: Sequence[float]) -> str:
    """Counts as integers: a median (min-max) when the runs differ, the number alone when they agree."""
    if not values:
        return "-"
    middle = statistics.median(values)
    text = f"{middle:,.0f}" if middle == int(middle) else f"{middle:,.1f}"
    low, high = min(values), max(values)
    return text if low == high else f"{text} ({low:,.0f}-{high:,.0f})"


def republish_table(
    records: Sequence[RepublishRecord], dataset: str, tools: Sequence[str], names: dict[str, str]
) -> str:
    """One dataset: a row per tool, medians (min-max) over the runs that passed; request counts by class as the
    server counted them, bytes and objects the server received, and the stale objects a run left behind."""
    timings: list[tuple[str, Callable[[RepublishRecord], float]]] = [
        ("wall s", lambda r: r.usage.wall_s),
        ("CPU s", lambda r: r.usage.cpu_s),
        ("peak RSS MiB", lambda r: r.usage.max_rss_kib / 1024),
    ]
    counts: list[tuple[str, Callable[[RepublishRecord], float]]] = [
        ("requests", lambda r: r.counters.total_requests),
        *((kind, lambda r, kind=kind: r.counters.requests.get(kind, 0)) for kind in REQUEST_CLASSES),
        ("4xx/5xx", lambda r: r.counters.errors),
    ]
    header = ["tool", "ok", *(name for name, _ in timings + counts), "MiB uploaded", "objects written", "stale"]
    lines = ["| " + " | ".join([*header, "wall vs ours"]) + " |", "|" + "---|" * (len(header) + 1)]
    runs = [r for r in records if r.dataset == dataset]
    ours_wall = _median([r.usage.wall_s for r in _shown([r for r in runs if r.tool == OUR_REPUBLISH])])
    for tool in tools:
        mine = [r for r in runs if r.tool == tool]
        if not mine:
            continue
        shown = _shown(mine)
        cells = [_cell([metric(r) for r in shown]) for _, metric in timings]
        cells += [_count_cell([metric(r) for r in shown]) for _, metric in counts]
        cells += [_cell([r.counters.bytes_received / MIB for r in shown])]
        cells += [
            _count_cell([r.counters.objects_written for r in shown]),
            _count_cell([r.stale_objects for r in mine]),
        ]
        wall = _median([r.usage.wall_s for r in shown])
        ratio = f"{wall / ours_wall:.2f}x" if wall is not None and ours_wall else "-"
        ok = f"{sum(r.ok for r in mine)}/{len(mine)}"
        lines.append(f"| {names.get(tool, tool)} | {ok} | {' | '.join(cells)} | {ratio} |")
    return "\n".join(lines)


def _notes(records: Sequence[RepublishRecord]) -> list[str]:
    lines = []
    for r in records:
        if not r.ok:
            why = "timed out" if r.usage.timed_out else f"exit {r.usage.exit_code}"
            lines.append(
                f"- {r.tool} on {r.dataset} (rep {r.rep + 1}): FAILED, {why}, {r.objects_found}/{r.files} objects, "
                f"{r.bytes_found}/{r.total_bytes} bytes, {r.stale_objects}/{r.changed_files} changed files stale. "
                f"{r.note}".rstrip()
            )
        elif r.note:
            lines.append(f"- {r.tool} on {r.dataset} (rep {r.rep + 1}): passed; {r.note}")
    return lines


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    specs = dataset_specs()
    tools = args.tools or tuple(REPUBLISHERS)
    unknown = [n for n in tools if n not in REPUBLISHERS] + [n for n in args.datasets if n not in specs]
    if unknown:
        parser.error(f"unknown tool or dataset: {', '.join(unknown)}")
    if args.repeat < 1 or args.scale <= 0:
        parser.error("--repeat must be at least 1 and --scale above 0")
    if any(tool in OUR_REPUBLISHERS for tool in tools) and args.compare not in our_compare_modes():
        parser.error(
            f"this async-uploader has no --compare {args.compare} (it offers: {','.join(our_compare_modes())})"
        )

    notes: list[str] = []
    peers = locate_peers(args.peers_venv)
    versions = {"ours": importlib.metadata.version("async-uploader")}
    for tool in tools:
        if tool in peers.missing:
            notes.append(f"{tool} skipped: {peers.missing[tool]}")
        elif tool not in OUR_REPUBLISHERS:
            versions[tool] = peers.versions[tool]
    tools = tuple(tool for tool in tools if tool in OUR_REPUBLISHERS or tool not in peers.missing)
    seaweedfs = _first_line([find_weed(), "version"]).removeprefix("version ").strip()
    machine = _machine()
    trees = []
    for name in args.datasets:
        original = ensure_dataset(specs[name].scaled(args.scale), args.data_dir, args.seed)
        trees.append((original, ensure_mutated(original, args.seed)))
    if any(tool in OUR_REPUBLISHERS for tool in tools):
        notes.append(_compile_our_package())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    plan = RepublishPlan(
        tools, tuple(trees), args.repeat, args.timeout, args.results_dir / f"logs-{stamp}", args.compare
    )
    records, skipped = run_republish(plan, peers)
    command = shlex.join(["python", "-m", "tools.bench", "republish", *argv])
    names = labels(args.compare)
    lines = [
        "# async-uploader re-publish benchmark (issue 22)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine['cpus']} CPUs ({machine['cpu']}), {machine['memory']} RAM, Linux {machine['kernel']}, "
        f"Python {machine['python']}; server: SeaweedFS ({seaweedfs}) on loopback, on the same machine.",
        "",
        "Versions: " + "; ".join(f"{k}: {v}" for k, v in versions.items()),
        "",
        f"{args.repeat} run(s) per tool and dataset, rotated rounds; cells are medians (min-max) over the runs that "
        "passed (all runs when none did). Each tool first publishes the tree with its own command (unmeasured), "
        f"then every file's mtime is set to now and the measured run re-publishes the tree with {CHANGED_FRACTION:.0%} "
        "of its files changed (half in place, half grown; one multipart-sized). Requests are the server's "
        "counts for the bucket over the measured run: PUT = PutObject + UploadPart, POST = Create/Complete "
        "multipart, GET = GetObject, HEAD+ = HeadObject, HeadBucket and ListMultipartUploads, LIST = listings; "
        "stale = changed files whose object still held the old content afterwards."
        + (f" Datasets at scale {args.scale:g}." if args.scale != 1 else ""),
    ]
    if notes + skipped:
        lines += ["", "Notes:", *(f"- {note}" for note in notes + skipped)]
    for original, tree in trees:
        changed = len(tree.changes)
        same = sum(change.same_size for change in tree.changes)
        lines += [
            "",
            f"## {original.name}: {original.files:,} files, {original.total_bytes / MIB:,.1f} MiB; {changed} changed "
            f"({same} same size)",
            "",
            republish_table(records, original.name, tools, names),
        ]
    noted = _notes(records)
    if noted:
        lines += ["", "Runs to read with care:", *noted]
    report = "\n".join(lines) + "\n"
    print(report)
    json_path = args.results_dir / f"republish-{stamp}.json"
    datasets = {
        original.name: {
            "files": original.files,
            "total_bytes": original.total_bytes,
            "mutated_total_bytes": tree.dataset.total_bytes,
            "changes": [asdict(change) for change in tree.changes],
        }
        for original, tree in trees
    }
    info = {
        "command": command, "compare": args.compare, "versions": versions | {"seaweedfs": seaweedfs},
        "machine": machine, "datasets": datasets, "notes": notes + skipped,
    }  # fmt: skip
    runs = [{**asdict(r), "ok": r.ok} for r in records]
    json_path.write_text(json.dumps({"info": info, "runs": runs}, indent=2) + "\n")
    (args.results_dir / f"republish-{stamp}.md").write_text(report)
    print(f"raw results: {json_path}", file=sys.stderr)
    return 0 if records and all(r.ok for r in records) else 1
