"""Walk the source tree: an async iterator of ``FileEntry`` values, streamed in small batches.

``os.scandir`` runs in a worker thread and hands over a batch at a time, so the event loop never blocks on the
disk and uploads start while the walk is still going. The walk holds only the directories it has yet to visit,
never the list of files. What counts as a file, which symlinks are followed and which paths the filters take
are decided here and nowhere else.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import AsyncIterator, Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import anyio.to_thread

from .filters import PathFilter
from .shards import Shard

SCAN_BATCH_SIZE: Final = 512


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A regular file found by the walk, with the stat values its object's metadata is built from."""

    path: str
    """Path to open: the source directory joined with ``rel``."""
    rel: str
    """Path relative to the source, ``/``-separated, exactly as the name is on disk."""
    size: int
    mtime_ns: int
    mode: int


@dataclass(frozen=True, slots=True)
class ScanFailure:
    """A directory or file the walk could not read; reported as a failed file, never silently dropped."""

    rel: str
    reason: str


@dataclass(frozen=True, slots=True)
class ScanSkipped:
    """Something that is not a regular file to upload (FIFO, socket, device, broken link, symlinked directory)."""

    rel: str
    reason: str


ScanItem = FileEntry | ScanFailure | ScanSkipped


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """The walk's policy: which paths to take, and whether symlinked directories are descended."""

    path_filter: PathFilter = field(default_factory=lambda: PathFilter([]))
    follow_symlinks: bool = False
    shard: Shard | None = None
    """Only this shard's paths are taken, and the others' are never stat-ed."""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


_Pending = tuple[str, str, frozenset[tuple[int, int]]]
"""A directory still to list: its path, its relative path with a trailing ``/``, and its ancestors' ids."""


OUTSIDE_LINK_REASON: Final = "symbolic link to a file outside SOURCE (use --follow-symlinks to upload it)"


def _inside_prefix(source: str) -> str:
    """What the resolved path of a file inside ``source`` starts with."""
    real = os.path.realpath(source)
    return real if real.endswith(os.sep) else real + os.sep


def _points_outside(path: str, inside: str) -> bool:
    """Whether the symlink at ``path`` resolves to a file outside the source (``inside`` from ``_inside_prefix``)."""
    return not os.path.realpath(path).startswith(inside)


def _walk_batches(
    root: str,
    batch_size: int,
    options: ScanOptions,
    stop: threading.Event | None = None,
    rel_prefix: str = "",
    source: str | None = None,
) -> Generator[list[ScanItem], None, None]:
    """Yield batches of scan items, depth first; runs in a worker thread.

    Symlinks to files inside the source (``source``, by default ``root``) are followed (the file's content is
    uploaded); one to a file outside it is skipped unless ``follow_symlinks``: a link to ``~/.aws/credentials``
    in a build output must not publish it. Symlinked directories are descended only
    with ``follow_symlinks``; then each pending directory carries the (device, inode) of the directories above
    it, and a link back to one of them is a loop, reported once. A link to a sibling is walked like a copy
    (``cp -rL``), whatever order the directory lists in. Special files and broken links are reported as skipped
    and never opened: opening a FIFO would block.
    """
    keep = options.path_filter
    top: frozenset[tuple[int, int]] = frozenset()
    if options.follow_symlinks:
        st = os.stat(root)
        top = frozenset({(st.st_dev, st.st_ino)})
    inside = _inside_prefix(source or root)
    pending: list[_Pending] = [(root, rel_prefix, top)]
    batch: list[ScanItem] = []
    while pending and not (stop is not None and stop.is_set()):
        directory, rel_dir, ancestors = pending.pop()
        subdirs: list[_Pending] = []
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    rel = f"{rel_dir}{entry.name}"
                    item = _classify(entry, rel, options, ancestors, subdirs)
                    if item is None or (keep and not keep.includes_file(rel)):
                        continue
                    link = type(item) is FileEntry and not options.follow_symlinks and entry.is_symlink()
                    if link and _points_outside(entry.path, inside):
                        item = ScanSkipped(rel, OUTSIDE_LINK_REASON)
                    batch.append(item)
                    if len(batch) >= batch_size:
                        yield batch
                        batch = []
        except OSError as exc:
            where = rel_dir.rstrip("/") or "."
            if options.shard is None or options.shard.takes(where):  # one shard reports it, not every one
                batch.append(ScanFailure(where, f"cannot list directory: {exc.strerror or exc}"))
        # Reversed so that popping visits subdirectories in the order scandir listed them.
        pending.extend(reversed(subdirs))
    if batch:
        yield batch


def _directory_id(entry: os.DirEntry[str], st: os.stat_result) -> tuple[int, int]:
    """The (device, inode) of a directory, as ``st`` (from ``entry``) has it or, where that is zero (Windows'
    ``DirEntry.stat`` leaves both out), from ``os.stat`` of its path, which asks the file system (one call per
    directory, with ``follow_symlinks`` only)."""
    if st.st_ino == 0 and st.st_dev == 0:
        st = os.stat(entry.path)
    return st.st_dev, st.st_ino


def _classify(
    entry: os.DirEntry[str],
    rel: str,
    options: ScanOptions,
    ancestors: frozenset[tuple[int, int]],
    subdirs: list[_Pending],
) -> ScanItem | None:
    """What one directory entry is; directories to descend are appended to ``subdirs`` instead."""
    mine = options.shard is None or options.shard.takes(rel)
    try:
        if entry.is_dir(follow_symlinks=False):
            if not (options.path_filter and options.path_filter.prunes_directory(rel)):
                inner = ancestors
                if options.follow_symlinks:
                    inner = ancestors | {_directory_id(entry, entry.stat(follow_symlinks=False))}
                subdirs.append((entry.path, rel + "/", inner))
            return None
        # Another shard's entry is not even stat-ed, unless it may be a symlinked directory to descend.
        if not mine and not (options.follow_symlinks and entry.is_symlink()):
            return None
        st = entry.stat()  # follows a symlink to its target
    except FileNotFoundError:
        if entry.is_symlink() and mine:
            return ScanSkipped(rel, "broken symbolic link")
        return None  # vanished since it was listed: nothing to upload
    except OSError as exc:
        return ScanFailure(rel, f"cannot stat: {exc.strerror or exc}") if mine else None
    if stat.S_ISDIR(st.st_mode):  # a symlink to a directory
        if options.path_filter and options.path_filter.prunes_directory(rel):
            return None
        if not options.follow_symlinks:
            return ScanSkipped(rel, "symbolic link to a directory (use --follow-symlinks to descend)")
        target = _directory_id(entry, st)
        if target in ancestors:
            return ScanSkipped(rel, "symbolic link loop: points to a directory above it") if mine else None
        subdirs.append((entry.path, rel + "/", ancestors | {target}))
        return None
    if not mine:
        return None
    if stat.S_ISREG(st.st_mode):
        return FileEntry(entry.path, rel, st.st_size, st.st_mtime_ns, st.st_mode)
    return ScanSkipped(rel, f"{_kind(st.st_mode)}, not a regular file")


def tree_batches(
    source: Path, options: ScanOptions | None = None, *, batch_size: int = SCAN_BATCH_SIZE
) -> Generator[list[ScanItem], None, None]:
    """``walk_tree_batches`` as a blocking generator, for a caller that runs each step in a thread itself."""
    return _walk_batches(str(source), batch_size, options or ScanOptions())


async def walk_tree_batches(
    source: Path, options: ScanOptions | None = None, *, batch_size: int = SCAN_BATCH_SIZE
) -> AsyncIterator[list[ScanItem]]:
    """Every regular file below ``source`` (hidden ones included) that the filters take, and every place the
    walk could not read or passed over, in the batches the worker thread stats them in (at most ``batch_size``
    each): the consumer takes a batch per thread hop, not an item."""
    batches = tree_batches(source, options, batch_size=batch_size)
    sentinel: list[ScanItem] = []
    try:
        while True:
            batch = await anyio.to_thread.run_sync(next, batches, sentinel)
            if batch is sentinel:
                return
            yield batch
    finally:
        batches.close()


def file_batches(
    path: Path, options: ScanOptions | None = None, only: Iterable[str] | None = None
) -> Generator[list[ScanItem], None, None]:
    """A single file as the walk of a tree holding only it, named by its own name (the ``rel`` of its records):
    one batch, or none when the filters, the shard or ``only`` (``--retry-failed``'s paths) leave it out. The
    file was named on the command line, so a symlink to it is followed wherever it points (as ``cp`` does)."""
    options = options or ScanOptions()
    rel = path.name
    if (options.path_filter and not options.path_filter.includes_file(rel)) or (
        options.shard is not None and not options.shard.takes(rel)
    ):
        return
    if only is not None and rel not in set(only):
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        yield [ScanFailure(rel, "file no longer exists")]
        return
    except OSError as exc:
        yield [ScanFailure(rel, f"cannot stat: {exc.strerror or exc}")]
        return
    if stat.S_ISREG(st.st_mode):
        yield [FileEntry(str(path), rel, st.st_size, st.st_mtime_ns, st.st_mode)]
    else:
        yield [ScanSkipped(rel, f"{_kind(st.st_mode)}, not a regular file")]


def _stat_listed(root: str, rels: list[str], options: ScanOptions) -> list[ScanItem]:
    items: list[ScanItem] = []
    inside = _inside_prefix(root)
    for rel in rels:
        path = os.path.join(root, *rel.split("/"))
        try:
            st = os.stat(path)
        except FileNotFoundError:
            items.append(ScanFailure(rel, "file no longer exists"))
            continue
        except OSError as exc:
            items.append(ScanFailure(rel, f"cannot stat: {exc.strerror or exc}"))
            continue
        if stat.S_ISREG(st.st_mode):
            if not options.follow_symlinks and os.path.islink(path) and _points_outside(path, inside):
                items.append(ScanSkipped(rel, OUTSIDE_LINK_REASON))
            else:
                items.append(FileEntry(path, rel, st.st_size, st.st_mtime_ns, st.st_mode))
        elif stat.S_ISDIR(st.st_mode):  # a directory the earlier run could not list: walk it now
            prefix = "" if rel == "." else rel + "/"  # "." is how a report names an unreadable SOURCE
            for batch in _walk_batches(path, SCAN_BATCH_SIZE, options, rel_prefix=prefix, source=root):
                items.extend(batch)
        else:
            items.append(ScanSkipped(rel, f"{_kind(st.st_mode)}, not a regular file"))
    return items


def listed_batches(
    source: Path, rels: Iterable[str], options: ScanOptions | None = None, *, batch_size: int = SCAN_BATCH_SIZE
) -> Generator[list[ScanItem], None, None]:
    """``stat_paths_batches`` as a blocking generator, for a caller that runs each step in a thread itself."""
    batch: list[str] = []
    for rel in rels:
        batch.append(rel)
        if len(batch) >= batch_size:
            yield _stat_listed(str(source), batch, options or ScanOptions())
            batch = []
    yield _stat_listed(str(source), batch, options or ScanOptions())


async def stat_paths_batches(
    source: Path, rels: Iterable[str], options: ScanOptions | None = None, *, batch_size: int = SCAN_BATCH_SIZE
) -> AsyncIterator[list[ScanItem]]:
    """The named files below ``source`` (for ``--retry-failed``), stated in batches in a worker thread; a named
    directory (one an earlier run could not list) is walked."""
    batch: list[str] = []
    for rel in rels:
        batch.append(rel)
        if len(batch) >= batch_size:
            yield await anyio.to_thread.run_sync(_stat_listed, str(source), batch, options or ScanOptions())
            batch = []
    yield await anyio.to_thread.run_sync(_stat_listed, str(source), batch, options or ScanOptions())


@dataclass(frozen=True, slots=True)
class TreeTotals:
    """How many files and bytes a walk will find; the progress display's denominators."""

    files: int
    bytes: int


def _count(root: str, options: ScanOptions, stop: threading.Event) -> TreeTotals | None:
    files = total = 0
    for batch in _walk_batches(root, SCAN_BATCH_SIZE, options, stop):
        for item in batch:
            if isinstance(item, FileEntry):
                files += 1
                total += item.size
    return None if stop.is_set() else TreeTotals(files, total)


async def count_tree(
    source: Path, stop: threading.Event | None = None, options: ScanOptions | None = None
) -> TreeTotals | None:
    """Count files and bytes with the same rules as ``walk_tree_batches``, in a worker thread, holding no list.

    Returns ``None`` if ``stop`` was set first: the upload finished before the count, which then has no use.
    """
    return await anyio.to_thread.run_sync(
        _count, str(source), options or ScanOptions(), stop or threading.Event(), abandon_on_cancel=True
    )
