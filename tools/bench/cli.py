"""``python -m tools.bench``: parse options, prepare datasets and peers, run, print markdown, save JSON.

The printed report starts with the exact command line, the machine and every version, so a table pasted
into the docs carries what is needed to reproduce it.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.metadata
import importlib.util
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from async_uploader import config
from async_uploader.errors import ConfigError
from tools.bench.datasets import DEFAULT_SPARSE_SIZE_BYTES, MIB, Dataset, dataset_specs, ensure_dataset
from tools.bench.measure import rss_floor_kib
from tools.bench.peers import DEFAULT_PEERS_VENV, locate_peers, setup_peers
from tools.bench.records import BenchInfo, RunRecord
from tools.bench.report import memory_table, rss_ratio, run_notes, throughput_table, write_json
from tools.bench.runner import BenchPlan, run_plan
from tools.bench.uploaders import LABELS, OPT_IN_TOOLS, OUR_TOOL, OUR_TOOLS, UPLOADERS
from tools.seaweedfs import find_weed

DEFAULT_DATASETS = ("small", "many", "large", "mixed")
DEFAULT_REPEAT = 3
DEFAULT_TIMEOUT_S = 3600.0
DEFAULT_SEED = 20240601
BENCH_DIR = Path(".bench")
# Which memory ratios to print, numerator over denominator: near 1.0 means flat memory.
RSS_RATIOS = (("mem-100k", "mem-10k"), ("dirs-10k", "mem-10k"), ("sparse-20g", "mem-10k"), ("mem-mix", "mem-100k"))


def parse_size(text: str) -> int:
    """``20GiB``, ``512MiB``, ``1.5GB`` or plain bytes: the tool's own parser, as an argparse type."""
    try:
        return config.parse_size(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description="Benchmark async-uploader against peer tools on a local SeaweedFS server. "
        "Run `python -m tools.bench setup-peers` once first to install the peers into their own venv.",
    )
    parser.add_argument("--tools", type=_names, help=f"comma-separated, from {','.join(UPLOADERS)} (default: all)")
    parser.add_argument(
        "--datasets",
        type=_names,
        help=f"comma-separated, from {','.join(dataset_specs())} (default: {','.join(DEFAULT_DATASETS)})",
    )
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="runs of each tool on each dataset")
    parser.add_argument(
        "--memory",
        action="store_true",
        help="peak-RSS mode: our tool only (unless --tools) on the memory datasets (unless --datasets)",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply file counts and large-file sizes, e.g. 0.01 for a smoke test"
    )
    parser.add_argument(
        "--sparse-size",
        type=parse_size,
        default=DEFAULT_SPARSE_SIZE_BYTES,
        help="size of the sparse file in sparse-20g and mem-mix, not scaled (default 20GiB; the server stores it all)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed for dataset contents")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds before a run is killed")
    parser.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data", help="dataset cache")
    parser.add_argument("--peers-venv", type=Path, default=DEFAULT_PEERS_VENV, help="venv holding the peer tools")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR, help="where results-<timestamp>.json goes")
    return parser


def _setup_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench setup-peers",
        description="Create the peers venv and install s5cmd, rclone, the AWS CLI, obstore and boto3 into it.",
    )
    parser.add_argument("--peers-venv", type=Path, default=DEFAULT_PEERS_VENV)
    return setup_peers(parser.parse_args(argv).peers_venv)


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return "unknown"
    return (done.stdout.strip().splitlines() or ["unknown"])[0]


def _machine() -> dict[str, str]:
    cpu = "unknown"
    memory = "unknown"
    for path, key in ((Path("/proc/cpuinfo"), "model name"), (Path("/proc/meminfo"), "MemTotal")):
        for line in path.read_text().splitlines():
            if line.startswith(key):
                value = line.split(":", 1)[1].strip()
                if key == "MemTotal":
                    memory = f"{int(value.split()[0]) / 2**20:.1f} GiB"
                else:
                    cpu = value
                break
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _header(info: BenchInfo, labels: dict[str, str]) -> list[str]:
    m = info.machine
    lines = [
        f"Command: `{info.command}`",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['memory']} RAM, Linux {m['kernel']}, Python {m['python']}; "
        f"server: SeaweedFS ({info.versions.get('seaweedfs', '?')}) on loopback, on the same machine.",
        "",
        "Versions: " + "; ".join(f"{labels.get(k, k)}: {v}" for k, v in info.versions.items() if k != "seaweedfs"),
        "",
        f"{info.repeat} run(s) per tool and dataset, interleaved, each round starting one tool later; cells are "
        "medians (min-max) over runs that passed the bucket check; CPU is user+system of the client process tree "
        "(wait4); peak RSS is its largest "
        f"process's (an empty program measures {m['rss_floor']}); MB is 10^6 bytes; server CPU is SeaweedFS's "
        "over the same window" + (f"; datasets at scale {info.scale:g}." if info.scale != 1 else "."),
    ]
    if info.notes:
        lines += ["", "Notes:", *(f"- {note}" for note in info.notes)]
    return lines


def _report(info: BenchInfo, records: Sequence[RunRecord], datasets: Sequence[Dataset]) -> str:
    tools = info.tools
    title = "async-uploader memory benchmark" if info.mode == "memory" else "async-uploader benchmark"
    lines = [f"# {title}", "", *_header(info, LABELS)]
    if info.mode == "memory":
        lines += ["", memory_table(records, [d.name for d in datasets], tools, LABELS)]
        for tool in tools:
            for top, bottom in RSS_RATIOS:
                ratio = rss_ratio(records, tool, top, bottom)
                if ratio is not None:
                    lines.append(f"\n{LABELS[tool]}: peak RSS {top} / {bottom} = {ratio:.2f}")
    else:
        for dataset in datasets:
            spec = dataset_specs()[dataset.name]
            lines += [
                "",
                f"## {dataset.name}: {dataset.files:,} files, {dataset.total_bytes / MIB:,.1f} MiB ({spec.purpose})",
                "",
                throughput_table(records, dataset.name, tools, LABELS),
            ]
    noted = run_notes(records)
    if noted:
        lines += ["", "Runs to read with care:", *noted]
    return "\n".join(lines) + "\n"


def _compile_our_package() -> str:
    """Byte-compile async-uploader as ``pip install`` does, so that it starts as an installed tool does.

    An editable install has no ``.pyc`` files until Python writes them, which it never does under
    ``PYTHONDONTWRITEBYTECODE`` (set on some machines, this one included): every run would compile ~7,000
    lines again, ~0.1 s that no installed peer pays (pip compiled theirs). Python still checks each file's
    source against its ``.pyc``, so an edit after this is never run stale.
    """
    spec = importlib.util.find_spec("async_uploader")
    assert spec is not None
    assert spec.submodule_search_locations
    package = spec.submodule_search_locations[0]
    compileall.compile_dir(package, quiet=1)
    return f"async-uploader byte-compiled first, as pip does on install ({package})"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["setup-peers"]:
        return _setup_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    specs = dataset_specs(args.sparse_size)
    memory_names = tuple(name for name, spec in specs.items() if spec.memory)
    tools = args.tools or ((OUR_TOOL,) if args.memory else tuple(t for t in UPLOADERS if t not in OPT_IN_TOOLS))
    dataset_names = args.datasets or (memory_names if args.memory else DEFAULT_DATASETS)
    unknown = [n for n in tools if n not in UPLOADERS] + [n for n in dataset_names if n not in specs]
    if unknown:
        parser.error(f"unknown tool or dataset: {', '.join(unknown)}")
    if args.repeat < 1 or args.scale <= 0:
        parser.error("--repeat must be at least 1 and --scale above 0")

    notes: list[str] = []
    peers = locate_peers(args.peers_venv)
    versions = {OUR_TOOL: importlib.metadata.version("async-uploader")}
    for tool in tools:
        if tool in peers.missing:
            notes.append(f"{tool} skipped: {peers.missing[tool]}")
        elif tool not in OUR_TOOLS:
            versions[tool] = peers.versions[tool]
    tools = tuple(tool for tool in tools if tool in OUR_TOOLS or tool not in peers.missing)
    versions["seaweedfs"] = _first_line([find_weed(), "version"]).removeprefix("version ").strip()
    machine = _machine()
    args.results_dir.mkdir(parents=True, exist_ok=True)
    machine["rss_floor"] = f"{rss_floor_kib(args.results_dir) / 1024:.1f} MiB"

    datasets = tuple(ensure_dataset(specs[name].scaled(args.scale), args.data_dir, args.seed) for name in dataset_names)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if any(tool in OUR_TOOLS for tool in tools):
        notes.append(_compile_our_package())
    plan = BenchPlan(tools, datasets, args.repeat, args.timeout, args.results_dir / f"logs-{stamp}")
    records, skipped = run_plan(plan, peers)
    info = BenchInfo(
        command=shlex.join(["python", "-m", "tools.bench", *argv]),
        started=started,
        mode="memory" if args.memory else "throughput",
        scale=args.scale,
        seed=args.seed,
        repeat=args.repeat,
        tools=tools,
        datasets={d.name: {"files": d.files, "total_bytes": d.total_bytes, "root": str(d.root)} for d in datasets},
        versions=versions,
        machine=machine,
        notes=notes + skipped,
    )
    report = _report(info, records, datasets)
    print(report)
    json_path = args.results_dir / f"results-{stamp}.json"
    write_json(json_path, info, records)
    (args.results_dir / f"results-{stamp}.md").write_text(report)
    print(f"raw results: {json_path}", file=sys.stderr)
    return 0 if records and all(r.ok for r in records) else 1
