"""The source trees the benchmark uploads: declared as data, generated once, deterministically, into a cache.

Every tool must see byte-identical input, run after run and machine after machine, so content comes from
``random.Random`` seeded per dataset and group (never ``os.urandom``). A tree counts as cached only when the
marker file beside it (not inside: it would be uploaded too) records the exact spec it was made from.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
# Bump when the way trees are laid out or filled changes, so stale caches are regenerated, not reused.
GENERATOR_VERSION = 1
DEFAULT_SPARSE_SIZE_BYTES = 20 * GIB
_WRITE_CHUNK_BYTES = MIB
_DISK_MARGIN_BYTES = GIB

# nested: files spread over a two-level tree of 16 x 32 folders, as in a real project or dataset.
# dir-each: one folder per file (100 top folders, each holding 99 subfolders), to load the directory walk.
# flat: all files side by side, for the handful of large ones.
Layout = Literal["nested", "dir-each", "flat"]


@dataclass(frozen=True, slots=True)
class FileGroup:
    """Files of one kind inside a dataset, in a folder of their own named ``name``.

    ``scale_sizes`` picks what ``--scale`` shrinks: the count for many small files, the sizes for a few
    large ones (two files stay two files, only smaller). Sparse files are never scaled: their size is
    the ``--sparse-size`` option and they cost no disk to create.
    """

    name: str
    count: int
    min_size_bytes: int
    max_size_bytes: int
    layout: Layout = "nested"
    scale_sizes: bool = False
    sparse: bool = False

    def scaled(self, scale: float) -> FileGroup:
        """This group at ``scale``: never fewer than one file, never smaller than one byte."""
        if self.sparse or scale == 1:
            return self
        if self.scale_sizes:
            return replace(
                self,
                min_size_bytes=max(1, round(self.min_size_bytes * scale)),
                max_size_bytes=max(1, round(self.max_size_bytes * scale)),
            )
        return replace(self, count=max(1, round(self.count * scale)))


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """What a dataset is: a name, what it is for, and its file groups."""

    name: str
    purpose: str
    groups: tuple[FileGroup, ...]
    memory: bool = False

    def scaled(self, scale: float) -> DatasetSpec:
        return replace(self, groups=tuple(group.scaled(scale) for group in self.groups))

    @property
    def max_bytes(self) -> int:
        """Upper bound of the apparent size, for disk checks before generating or uploading."""
        return sum(group.count * group.max_size_bytes for group in self.groups)

    @property
    def max_disk_bytes(self) -> int:
        """Upper bound of what generating costs on disk: sparse files cost nothing."""
        return sum(group.count * group.max_size_bytes for group in self.groups if not group.sparse)


@dataclass(frozen=True, slots=True)
class Dataset:
    """A generated tree on disk and what an upload of it must produce: one object per file, these bytes."""

    name: str
    root: Path
    files: int
    total_bytes: int


def dataset_specs(sparse_size_bytes: int = DEFAULT_SPARSE_SIZE_BYTES) -> dict[str, DatasetSpec]:
    """Every dataset by name; throughput ones first, then the memory ones (run with ``--memory``)."""
    tiny_10k = FileGroup("files", 10_000, 16, 256)
    tiny_100k = FileGroup("files", 100_000, 16, 256)
    sparse = FileGroup("sparse", 1, sparse_size_bytes, sparse_size_bytes, layout="flat", sparse=True)
    specs = (
        DatasetSpec("small", "per-request overhead", (FileGroup("files", 10_000, KIB, 64 * KIB),)),
        DatasetSpec("many", "scanning and scheduling at scale", (FileGroup("files", 100_000, KIB, 4 * KIB),)),
        DatasetSpec(
            "large",
            "multipart throughput",
            (FileGroup("big", 2, 512 * MIB, 512 * MIB, layout="flat", scale_sizes=True),),
        ),
        DatasetSpec(
            "mixed",
            "small files and multipart at once",
            (
                FileGroup("files", 2_000, KIB, 64 * KIB),
                FileGroup("big", 8, 32 * MIB, 128 * MIB, layout="flat", scale_sizes=True),
            ),
        ),
        DatasetSpec(
            "mixed-tiny",
            "a smoke test in seconds: small files and two multipart ones",
            (
                FileGroup("files", 200, KIB, 64 * KIB),
                FileGroup("big", 2, 9 * MIB, 12 * MIB, layout="flat", scale_sizes=True),
            ),
        ),
        DatasetSpec("mem-10k", "memory baseline", (tiny_10k,), memory=True),
        DatasetSpec("mem-100k", "memory must not grow with the file count", (tiny_100k,), memory=True),
        DatasetSpec(
            "dirs-10k",
            "memory must not grow with the folder count",
            (FileGroup("dirs", 10_000, 16, 256, layout="dir-each"),),
            memory=True,
        ),
        DatasetSpec("sparse-20g", "memory must not grow with the file size", (sparse,), memory=True),
        DatasetSpec("mem-mix", "many files and one huge file together", (tiny_100k, sparse), memory=True),
    )
    return {spec.name: spec for spec in specs}


def relative_path(group: FileGroup, index: int) -> str:
    """Where file ``index`` of ``group`` lives; a pure function of both, so layouts are reproducible."""
    name = f"f{index:06d}.bin"
    if group.layout == "flat":
        return f"{group.name}/{name}"
    if group.layout == "dir-each":
        top, sub = divmod(index, 100)
        # sub 0 puts the file in the top folder itself, so every folder, top or sub, holds exactly one file.
        return f"{group.name}/t{top:03d}/{name}" if sub == 0 else f"{group.name}/t{top:03d}/s{sub:02d}/{name}"
    return f"{group.name}/a{index % 16:02d}/b{index // 16 % 32:02d}/{name}"


def _spec_key(spec: DatasetSpec, seed: int) -> dict[str, object]:
    return {"generator": GENERATOR_VERSION, "seed": seed, "name": spec.name, "groups": [asdict(g) for g in spec.groups]}


def _write_group(root: Path, dataset: str, group: FileGroup, seed: int) -> tuple[int, int]:
    # A string seed is hashed deterministically (unlike hash()), so each group has its own stable stream.
    rng = random.Random(f"{seed}/{dataset}/{group.name}")
    made_dirs: set[Path] = set()
    total = 0
    for index in range(group.count):
        path = root / relative_path(group, index)
        if path.parent not in made_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            made_dirs.add(path.parent)
        size = rng.randint(group.min_size_bytes, group.max_size_bytes)
        with path.open("wb") as out:
            if group.sparse:
                out.truncate(size)
            else:
                for offset in range(0, size, _WRITE_CHUNK_BYTES):
                    out.write(rng.randbytes(min(_WRITE_CHUNK_BYTES, size - offset)))
        total += size
    return group.count, total


def ensure_dataset(spec: DatasetSpec, cache_dir: Path, seed: int) -> Dataset:
    """Return the tree for ``spec``, generating it first unless an identical one is already cached.

    The folder name carries a hash of the spec, so changing the scale, seed or sparse size never reuses a
    tree made for other settings; the marker is written last, so an interrupted generation is redone.
    """
    key = _spec_key(spec, seed)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    root = cache_dir / f"{spec.name}-{digest}"
    marker = root.with_name(root.name + ".json")
    if marker.is_file() and root.is_dir():
        recorded = json.loads(marker.read_text())
        if recorded.get("spec") == key:
            return Dataset(spec.name, root.resolve(), int(recorded["files"]), int(recorded["total_bytes"]))
    if root.exists():
        shutil.rmtree(root)
    cache_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(cache_dir).free
    if spec.max_disk_bytes + _DISK_MARGIN_BYTES > free:
        msg = f"not enough disk for dataset {spec.name}: needs up to {spec.max_disk_bytes / GIB:.1f} GiB"
        raise OSError(msg + f" plus 1 GiB margin, {free / GIB:.1f} GiB free in {cache_dir}")
    print(f"generating dataset {spec.name} into {root} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    files = total = 0
    for group in spec.groups:
        count, size = _write_group(root, spec.name, group, seed)
        files += count
        total += size
    os.sync()  # so the first measured run does not pay for writing back what generation left dirty
    marker.write_text(json.dumps({"spec": key, "files": files, "total_bytes": total}, indent=2) + "\n")
    print(f"  {files} files, {total / MIB:.1f} MiB in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return Dataset(spec.name, root.resolve(), files, total)
