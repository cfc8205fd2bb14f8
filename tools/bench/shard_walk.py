"""``python -m tools.bench.shard_walk TREE [--shards 4]``: what planning one shard costs against walking all.

A shard lists every directory but stats only its own files; this times, in a fresh process each (so the page
cache is the only thing shared, warmed by a first untimed walk), the walk of the whole tree and of each shard,
and prints a markdown table of wall and CPU seconds and files found.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

_MEASURE = """
import json, resource, sys, time, anyio
from pathlib import Path
from async_uploader.source.scan import FileEntry, ScanOptions, walk_tree_batches
from async_uploader.source.shards import Shard

async def main() -> None:
    shard = Shard(int(sys.argv[2]), int(sys.argv[3])) if sys.argv[3] != "0" else None
    started, cpu = time.monotonic(), time.process_time()
    batches = walk_tree_batches(Path(sys.argv[1]), ScanOptions(shard=shard))
    files = sum([1 async for batch in batches for item in batch if isinstance(item, FileEntry)])
    print(json.dumps({"files": files, "wall_s": time.monotonic() - started, "cpu_s": time.process_time() - cpu}))

anyio.run(main)
"""


def _walk(tree: Path, index: int, count: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(tree), str(index), str(count)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.shard_walk", description=__doc__)
    parser.add_argument("tree", type=Path)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    _walk(args.tree, 0, 0)  # warm the page cache: every row then reads directories from memory alike
    rows = [("whole tree", 0, 0)] + [(f"shard {k}/{args.shards}", k, args.shards) for k in range(args.shards)]
    print(f"Command: `python -m tools.bench.shard_walk {args.tree} --shards {args.shards} --repeat {args.repeat}`")
    print(f"({time.strftime('%Y-%m-%d')}; medians of {args.repeat} walks, each in a fresh process)\n")
    print("| walk | files found | wall s | CPU s |\n|---|---:|---:|---:|")
    for label, index, count in rows:
        runs = sorted((_walk(args.tree, index, count) for _ in range(args.repeat)), key=lambda r: r["cpu_s"])
        mid = runs[len(runs) // 2]
        print(f"| {label} | {int(mid['files']):,} | {mid['wall_s']:.2f} | {mid['cpu_s']:.2f} |")


if __name__ == "__main__":
    main()
