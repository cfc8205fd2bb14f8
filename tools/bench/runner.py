"""The benchmark loop: one server, then every (repetition, dataset, tool) in interleaved order.

Interleaving (A B C B C A C A B, not A A B B C C) spreads slow drifts of a shared machine (page cache, the
server's growing metadata, a neighbour's load) over all tools instead of charging them to whichever ran
last, and rotating each round's order spreads what the first run of a round meets. Each run gets a fresh
bucket, which is checked and then dropped outside the measured window.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from tools.bench.buckets import BucketKeeper
from tools.bench.datasets import GIB, Dataset
from tools.bench.measure import ServerCpu, run_measured
from tools.bench.peers import PeerInstall
from tools.bench.records import RunRecord
from tools.bench.uploaders import UPLOADERS, Invocation, UploadJob, write_aws_config
from tools.seaweedfs import S3Server, running_seaweedfs

PREFIX = "bench"
_WARM_KEY = "warm-up"  # outside PREFIX/, so the object count check does not see it
_SERVER_DISK_MARGIN_BYTES = 2 * GIB
_LOG_TAIL_CHARS = 600


@dataclass(frozen=True, slots=True)
class BenchPlan:
    """What to run; ``scratch_dir`` holds per-run logs (kept only for failed runs) and tool config files."""

    tools: tuple[str, ...]
    datasets: tuple[Dataset, ...]
    repeat: int
    timeout_s: float
    scratch_dir: Path


def _bucket_name(tool: str, dataset: str, rep: int) -> str:
    return f"{tool}-{dataset}-r{rep + 1}".lower()  # the warm-up (rep -1) is r0


def _log_tail(path: Path) -> str:
    text = " ".join(path.read_text(errors="replace").split())
    return text if len(text) <= _LOG_TAIL_CHARS else "..." + text[-_LOG_TAIL_CHARS:]


def _run_one(
    plan: BenchPlan,
    tool: str,
    dataset: Dataset,
    rep: int,
    *,
    server: S3Server,
    keeper: BucketKeeper,
    server_cpu: ServerCpu,
    peers: PeerInstall,
) -> RunRecord:
    bucket = _bucket_name(tool, dataset.name, rep)
    keeper.create(bucket, warm_key=_WARM_KEY)
    job = UploadJob(dataset.root, bucket, PREFIX, server, plan.scratch_dir, plan.scratch_dir / f"cache-{bucket}")
    invocation = UPLOADERS[tool](job, peers)
    log_path = plan.scratch_dir / f"{bucket}.log"
    notes = [_set_up(step, log_path, plan.timeout_s) for step in invocation.setup]
    if not server_cpu.wait_until_quiet():
        notes.append("server still busy from the previous run when this one started")
    usage = run_measured(invocation, cwd=Path.cwd(), log_path=log_path, timeout_s=plan.timeout_s, server=server_cpu)
    listing = keeper.list_prefix(bucket, PREFIX)
    notes += [note for note in (keeper.delete(bucket),) if note]
    shutil.rmtree(job.cache_dir, ignore_errors=True)
    record = RunRecord(
        tool=tool,
        dataset=dataset.name,
        rep=rep,
        bucket=bucket,
        files=dataset.files,
        total_bytes=dataset.total_bytes,
        usage=usage,
        objects_found=listing.objects,
        bytes_found=listing.total_bytes,
    )
    if record.ok:
        log_path.unlink()
    else:
        notes.append(f"log {log_path}: {_log_tail(log_path) or '(empty)'}")
    return replace(record, note="; ".join(note for note in notes if note))


def _warm_up(
    plan: BenchPlan,
    dataset: Dataset,
    *,
    server: S3Server,
    keeper: BucketKeeper,
    server_cpu: ServerCpu,
    peers: PeerInstall,
) -> str:
    """One unmeasured upload of ``dataset`` by the first tool, so that no measured run pays for a cold start.

    The first upload to a fresh server was always the slowest of a benchmark (2x the wall time of the same tool's
    later runs): the dataset's pages not yet in the cache, the server's volumes not yet grown. Whichever tool came
    first paid for it. The warm-up's figures are dropped.
    """
    tool = plan.tools[0]
    record = _run_one(plan, tool, dataset, -1, server=server, keeper=keeper, server_cpu=server_cpu, peers=peers)
    outcome = "ok" if record.ok else f"FAILED ({record.note})"
    return f"warm-up on {dataset.name}: one unmeasured run of {tool}, {record.usage.wall_s:.1f} s wall, {outcome}"


def _set_up(step: Invocation, log_path: Path, timeout_s: float) -> str:
    """Run an unmeasured first step (the first upload of a re-run); a note if it did not succeed."""
    with log_path.with_suffix(".setup.log").open("wb") as log:
        done = subprocess.run(
            step.argv, env=step.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            timeout=timeout_s, check=False,
        )  # fmt: skip
    if done.returncode == 0:
        log_path.with_suffix(".setup.log").unlink()
        return ""
    return f"set-up step exited {done.returncode}: see {log_path.with_suffix('.setup.log')}"


def _progress(record: RunRecord, repeat: int) -> None:
    status = "ok" if record.ok else "FAILED"
    print(
        f"[{record.rep + 1}/{repeat}] {record.dataset:<10} {record.tool:<8} {record.usage.wall_s:8.2f} s wall "
        f"{record.usage.cpu_s:8.2f} s CPU {record.usage.max_rss_kib / 1024:7.1f} MiB RSS "
        f"{record.usage.server_cpu_s:8.2f} s server  {status}",
        file=sys.stderr,
        flush=True,
    )


def rotated(tools: Sequence[str], rep: int) -> list[str]:
    """The round's order: each round starts one tool later (A B C, B C A, C A B), so no tool always runs first,
    right after the previous round's bucket was dropped, or last."""
    shift = rep % len(tools) if tools else 0
    return [*tools[shift:], *tools[:shift]]


def run_plan(plan: BenchPlan, peers: PeerInstall) -> tuple[list[RunRecord], list[str]]:
    """Run the plan against one fresh server; return the records and a note for every run skipped.

    The scratch folder is removed at the end unless it holds the logs of failed runs.
    """
    records: list[RunRecord] = []
    notes: list[str] = []
    plan.scratch_dir.mkdir(parents=True, exist_ok=True)
    aws_config = write_aws_config(plan.scratch_dir)
    with running_seaweedfs() as server:
        keeper = BucketKeeper(server)
        server_cpu = ServerCpu(server.data_dir)
        for dataset in plan.datasets:
            notes.append(_warm_up(plan, dataset, server=server, keeper=keeper, server_cpu=server_cpu, peers=peers))
        for rep in range(plan.repeat):
            for dataset in plan.datasets:
                for tool in rotated(plan.tools, rep):
                    free = shutil.disk_usage(server.data_dir).free
                    if dataset.total_bytes + _SERVER_DISK_MARGIN_BYTES > free:
                        notes.append(
                            f"skipped {tool} on {dataset.name} (rep {rep + 1}): the server would store "
                            f"{dataset.total_bytes / GIB:.1f} GiB, only {free / GIB:.1f} GiB free"
                        )
                        continue
                    record = _run_one(
                        plan, tool, dataset, rep, server=server, keeper=keeper, server_cpu=server_cpu, peers=peers
                    )
                    _progress(record, plan.repeat)
                    records.append(record)
    aws_config.unlink()
    with contextlib.suppress(OSError):  # not empty: failed runs left their logs
        plan.scratch_dir.rmdir()
    return records, notes
