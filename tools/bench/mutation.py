"""A "fresh CI checkout" of a dataset: every mtime new, and a seeded 1% of the files' content changed.

This is what a runner sees when it re-publishes a tree it (or another tool) published before: ``git checkout``
and the build wrote every file anew, and a few of them really changed. Half of the changed files keep their
size (bytes flipped in place) and the other half grow, so a tool that compares sizes alone cannot pass for one
that compares content; at least one changed file is large enough to have been uploaded in parts, so a content
check must also get a multipart object's ETag right.

The mutated tree is a copy next to the dataset's cache, never the cached tree itself, which other benchmarks
read. Which files change, and how, depends only on the seed and the file list, so every tool sees the same job.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tools.bench.datasets import MIB, Dataset

CHANGED_FRACTION = 0.01
MIN_CHANGED_FILES = 2
"""Two at least, so even a tiny tree has one same-size change and one size change."""
MULTIPART_SIZE_BYTES = 8 * MIB
"""Files at least this large were uploaded in parts by every tool here (8 MiB is ours and the AWS CLI's
threshold; s5cmd's and rclone's are higher, so for them such a file may be one PUT: still a changed file)."""
_FLIP_WINDOW_BYTES = 64
_MAX_GROWTH_BYTES = 4096
# Bump when the choice or the kind of changes differs, so a stale mutated copy is made again.
MUTATION_VERSION = 1


@dataclass(frozen=True, slots=True)
class FileChange:
    """One changed file: where (relative to the root), and whether its size stayed (bytes flipped in place)."""

    path: str
    same_size: bool
    old_size: int
    new_size: int


@dataclass(frozen=True, slots=True)
class MutatedTree:
    """The copy to re-publish: its root, its totals (what the bucket must hold after), and what changed."""

    dataset: Dataset
    changes: tuple[FileChange, ...]


def list_files(root: Path) -> list[tuple[str, int]]:
    """Every regular file below ``root`` as (relative POSIX path, size), sorted: the order the choice draws from."""
    found: list[tuple[str, int]] = []
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            found.append((path.relative_to(root).as_posix(), path.stat().st_size))
    return sorted(found)


def choose_changes(files: list[tuple[str, int]], seed: int, fraction: float = CHANGED_FRACTION) -> list[FileChange]:
    """Which files change and how: ``fraction`` of them (at least two), one multipart-sized file among them
    when the tree has one; the first half (rounded up) keep their size, the rest grow by 1-4096 bytes.

    The multipart file comes first, so it is a same-size change: the hardest case for a content check.
    """
    rng = random.Random(f"{seed}/republish/{MUTATION_VERSION}")
    count = min(len(files), max(MIN_CHANGED_FILES, round(len(files) * fraction)))
    large = [entry for entry in files if entry[1] >= MULTIPART_SIZE_BYTES]
    picked: list[tuple[str, int]] = []
    if large and count:
        picked.append(rng.choice(large))
    rest = [entry for entry in files if entry not in picked]
    picked += rng.sample(rest, count - len(picked))
    same_size_count = (count + 1) // 2
    changes = []
    for index, (path, size) in enumerate(picked):
        same_size = index < same_size_count and size > 0
        new_size = size if same_size else size + rng.randint(1, _MAX_GROWTH_BYTES)
        changes.append(FileChange(path, same_size, size, new_size))
    return changes


def _apply(root: Path, change: FileChange, rng: random.Random) -> None:
    path = root / change.path
    with path.open("r+b") as handle:
        if change.same_size:
            offset = rng.randrange(max(1, change.old_size - _FLIP_WINDOW_BYTES + 1))
            handle.seek(offset)
            window = handle.read(_FLIP_WINDOW_BYTES)
            handle.seek(offset)
            handle.write(bytes(byte ^ 0xFF for byte in window))  # every byte differs: the content surely changed
        else:
            handle.seek(0, os.SEEK_END)
            handle.write(rng.randbytes(change.new_size - change.old_size))


def touch_tree(root: Path, when_s: float | None = None) -> int:
    """Set every file's mtime (and atime) to ``when_s`` (default: now), as a fresh checkout does; return the count.

    Run right before each re-publish, so the new mtimes are later than the first publish's objects: a tool that
    trusts "newer than the object" then sees every file as changed, as it would on a real runner.
    """
    stamp = time.time() if when_s is None else when_s
    count = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            os.utime(os.path.join(folder, name), (stamp, stamp))
            count += 1
    return count


def mutate_tree(root: Path, seed: int, fraction: float = CHANGED_FRACTION) -> list[FileChange]:
    """Change ``fraction`` of the files under ``root`` in place (see ``choose_changes``) and set every mtime to now."""
    changes = choose_changes(list_files(root), seed, fraction)
    rng = random.Random(f"{seed}/republish-bytes/{MUTATION_VERSION}")
    for change in changes:
        _apply(root, change, rng)
    touch_tree(root)
    return changes


def ensure_mutated(dataset: Dataset, seed: int, fraction: float = CHANGED_FRACTION) -> MutatedTree:
    """The mutated copy of ``dataset`` beside it, made once (copied, then mutated) and reused while its marker
    matches; the marker is written last, so an interrupted copy is made again."""
    key = {"version": MUTATION_VERSION, "source": dataset.root.name, "seed": seed, "fraction": fraction}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    root = dataset.root.with_name(f"{dataset.root.name}-republish-{digest}")
    marker = root.with_name(root.name + ".json")
    if marker.is_file() and root.is_dir():
        recorded = json.loads(marker.read_text())
        if recorded.get("key") == key:
            cached = tuple(FileChange(**change) for change in recorded["changes"])
            return MutatedTree(Dataset(dataset.name, root, dataset.files, int(recorded["total_bytes"])), cached)
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(dataset.root, root)
    changes = mutate_tree(root, seed, fraction)
    total = dataset.total_bytes + sum(change.new_size - change.old_size for change in changes)
    recorded = {"key": key, "total_bytes": total, "changes": [asdict(change) for change in changes]}
    marker.write_text(json.dumps(recorded, indent=2) + "\n")
    return MutatedTree(Dataset(dataset.name, root, dataset.files, total), tuple(changes))
