"""The re-publish loop (issue 22): publish, make a "fresh checkout" of the tree, re-publish, count what it cost.

One server, started with its Prometheus metrics on; every (repetition, dataset, tool) in rotated rounds as in
``runner.py``, each in a fresh bucket. Around the measured run only: the bucket's request counters are read
before and after (``server_metrics.py``), and afterwards the listing must show one object per file with every
byte, and each changed file's object must hold the new content (downloaded and hashed, after the counters were
read): a tool that kept a stale object has not re-published, however fast it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from tools.bench.buckets import BucketKeeper
from tools.bench.datasets import Dataset
from tools.bench.measure import ServerCpu, run_measured
from tools.bench.mutation import MutatedTree, touch_tree
from tools.bench.peers import PeerInstall
from tools.bench.records import ProcessUsage
from tools.bench.republishers import COMPARE_MODE, OUR_FULL, REPUBLISHERS, RepublishJob
from tools.bench.runner import PREFIX, rotated
from tools.bench.server_metrics import BucketCounters, read_bucket
from tools.bench.uploaders import Invocation, write_aws_config
from tools.seaweedfs import S3Server, running_seaweedfs

_WARM_KEY = "warm-up"  # outside PREFIX/, so neither the listing check nor a sync sees it
_HASH_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RepublishPlan:
    """What to run: each dataset with its mutated copy; logs of failed runs stay in ``scratch_dir``."""

    tools: tuple[str, ...]
    trees: tuple[tuple[Dataset, MutatedTree], ...]
    repeat: int
    timeout_s: float
    scratch_dir: Path
    compare: str = COMPARE_MODE


@dataclass(frozen=True, slots=True)
class RepublishRecord:
    """One measured re-publish: its cost, its requests, and whether the bucket then held the tree it read."""

    tool: str
    dataset: str
    rep: int
    bucket: str
    files: int
    total_bytes: int
    usage: ProcessUsage
    counters: BucketCounters
    objects_found: int
    bytes_found: int
    changed_files: int
    stale_objects: int
    """Changed files whose object does not hold the new content after the run."""
    note: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.usage.exit_code == 0
            and not self.usage.timed_out
            and self.objects_found == self.files
            and self.bytes_found == self.total_bytes
            and self.stale_objects == 0
        )


@dataclass(frozen=True, slots=True)
class _Bench:
    """What every run of one benchmark shares: the server and the things watching it."""

    server: S3Server
    metrics_url: str
    keeper: BucketKeeper
    server_cpu: ServerCpu
    peers: PeerInstall


def _md5_of_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def count_stale(keeper: BucketKeeper, bucket: str, tree: MutatedTree) -> int:
    """How many changed files' objects do not hold the file's current bytes."""
    stale = 0
    for change in tree.changes:
        expected = _md5_of_file(tree.dataset.root / change.path)
        if keeper.object_md5(bucket, f"{PREFIX}/{change.path}") != expected:
            stale += 1
    return stale


def _set_up(step: Invocation, log_path: Path, timeout_s: float) -> str:
    """Run the unmeasured first publish; a note if it did not succeed."""
    setup_log = log_path.with_suffix(".setup.log")
    with setup_log.open("wb") as log:
        try:
            done = subprocess.run(
                step.argv, env=step.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                timeout=timeout_s, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return f"first publish timed out after {timeout_s:g} s: see {setup_log}"
    if done.returncode == 0:
        setup_log.unlink()
        return ""
    return f"first publish exited {done.returncode}: see {setup_log}"


def _run_one(
    plan: RepublishPlan, tool: str, original: Dataset, tree: MutatedTree, rep: int, bench: _Bench
) -> RepublishRecord:
    bucket = f"re-{tool}-{original.name}-r{rep + 1}".lower()
    keeper = bench.keeper
    keeper.create(bucket, warm_key=_WARM_KEY)
    cache_dir = plan.scratch_dir / f"cache-{bucket}"
    job = RepublishJob(
        original.root, tree.dataset.root, bucket, PREFIX, bench.server, plan.scratch_dir, cache_dir,
        fresh_cache_dir=cache_dir.with_name(cache_dir.name + "-fresh"), compare=plan.compare,
    )  # fmt: skip
    steps = REPUBLISHERS[tool](job, bench.peers)
    log_path = plan.scratch_dir / f"{bucket}.log"
    notes = [_set_up(steps.first, log_path, plan.timeout_s)] if steps.first is not None else []
    if steps.mutated:
        touch_tree(tree.dataset.root)  # newer than every object the first publish wrote
    if not bench.server_cpu.wait_until_quiet():
        notes.append("server still busy from the previous run when this one started")
    before = read_bucket(bench.metrics_url, bucket)
    usage = run_measured(
        steps.measured, cwd=Path.cwd(), log_path=log_path, timeout_s=plan.timeout_s, server=bench.server_cpu
    )
    counters = read_bucket(bench.metrics_url, bucket).minus(before)
    listing = keeper.list_prefix(bucket, PREFIX)
    expected = tree.dataset if steps.mutated else original
    stale = count_stale(keeper, bucket, tree) if steps.mutated else 0
    notes += [note for note in (keeper.delete(bucket),) if note]
    shutil.rmtree(job.cache_dir, ignore_errors=True)
    shutil.rmtree(job.fresh_cache_dir, ignore_errors=True)
    record = RepublishRecord(
        tool=tool, dataset=original.name, rep=rep, bucket=bucket, files=expected.files,
        total_bytes=expected.total_bytes, usage=usage, counters=counters, objects_found=listing.objects,
        bytes_found=listing.total_bytes, changed_files=len(tree.changes) if steps.mutated else 0,
        stale_objects=stale,
    )  # fmt: skip
    if record.ok:
        log_path.unlink(missing_ok=True)
    else:
        tail = " ".join(log_path.read_text(errors="replace").split())[-600:] if log_path.is_file() else ""
        notes.append(f"log {log_path}: {tail or '(empty)'}")
    return replace(record, note="; ".join(note for note in notes if note))


def _progress(record: RepublishRecord, repeat: int) -> None:
    status = "ok" if record.ok else f"FAILED ({record.stale_objects} stale)"
    print(
        f"[{record.rep + 1}/{repeat}] {record.dataset:<10} {record.tool:<15} {record.usage.wall_s:8.2f} s wall "
        f"{record.usage.cpu_s:7.2f} s CPU {record.counters.total_requests:7d} requests "
        f"{record.counters.bytes_received / 2**20:9.1f} MiB up  {status}",
        file=sys.stderr,
        flush=True,
    )


def run_republish(plan: RepublishPlan, peers: PeerInstall) -> tuple[list[RepublishRecord], list[str]]:
    """Run the plan against one fresh server; one unmeasured warm-up run per dataset first, so no measured run
    pays for a cold page cache or the server's first volumes."""
    records: list[RepublishRecord] = []
    notes: list[str] = []
    plan.scratch_dir.mkdir(parents=True, exist_ok=True)
    aws_config = write_aws_config(plan.scratch_dir)
    with running_seaweedfs(metrics=True) as server:
        assert server.metrics_url is not None
        keeper = BucketKeeper(server)
        server_cpu = ServerCpu(server.data_dir)
        bench = _Bench(server, server.metrics_url, keeper, server_cpu, peers)
        # A full upload warms what a re-publish reads (the mutated tree); its first publishes read the original.
        warm_tool = OUR_FULL if OUR_FULL in plan.tools else plan.tools[0]
        for original, tree in plan.trees:
            warm = _run_one(plan, warm_tool, original, tree, -1, bench)
            outcome = "ok" if warm.ok else f"FAILED ({warm.note})"
            notes.append(f"warm-up on {original.name}: one unmeasured run of {warm.tool}, {outcome}")
        for rep in range(plan.repeat):
            for original, tree in plan.trees:
                for tool in rotated(plan.tools, rep):
                    record = _run_one(plan, tool, original, tree, rep, bench)
                    _progress(record, plan.repeat)
                    records.append(record)
    aws_config.unlink()
    with contextlib.suppress(OSError):  # not empty: failed runs left their logs
        plan.scratch_dir.rmdir()
    return records, notes
