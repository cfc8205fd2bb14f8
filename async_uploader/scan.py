"""Walk the source tree: an async iterator of ``FileEntry`` values, streamed in small batches.

``os.scandir`` runs in a worker thread and hands over a batch at a time, so the event loop never blocks on the
disk and uploads start while the walk is still going. The walk holds only the directories it has yet to visit,
never the list of files. What counts as a file (and which symlinks are followed) is decided here and nowhere else.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio.to_thread

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


ScanItem = FileEntry | ScanFailure


def _walk_batches(
    root: str, batch_size: int, stop: threading.Event | None = None
) -> Generator[list[ScanItem], None, None]:
    """Yield batches of scan items, depth first; runs in a worker thread.

    Symlinks to files are followed (the file's content is uploaded); symlinked directories are not descended,
    which also rules out loops. Sockets, FIFOs, devices and broken links are not regular files and are passed
    over: opening a FIFO would block the run.
    """
    pending: list[tuple[str, str]] = [(root, "")]
    batch: list[ScanItem] = []
    while pending and not (stop is not None and stop.is_set()):
        directory, rel_dir = pending.pop()
        subdirs: list[tuple[str, str]] = []
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    rel = f"{rel_dir}{entry.name}"
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            subdirs.append((entry.path, rel + "/"))
                            continue
                        st = entry.stat()  # follows a symlink to its target
                    except FileNotFoundError:
                        continue  # vanished since listing, or a broken symlink: nothing to upload
                    except OSError as exc:
                        batch.append(ScanFailure(rel, f"cannot stat: {exc.strerror or exc}"))
                        continue
                    if stat.S_ISREG(st.st_mode):
                        batch.append(FileEntry(entry.path, rel, st.st_size, st.st_mtime_ns, st.st_mode))
                        if len(batch) >= batch_size:
                            yield batch
                            batch = []
        except OSError as exc:
            batch.append(ScanFailure(rel_dir.rstrip("/") or ".", f"cannot list directory: {exc.strerror or exc}"))
        # Reversed so that popping visits subdirectories in the order scandir listed them.
        pending.extend(reversed(subdirs))
    if batch:
        yield batch


async def walk_tree(source: Path, *, batch_size: int = SCAN_BATCH_SIZE) -> AsyncIterator[ScanItem]:
    """Every regular file below ``source`` (hidden ones included), and every place the walk could not read."""
    batches = _walk_batches(str(source), batch_size)
    sentinel: list[ScanItem] = []
    try:
        while True:
            batch = await anyio.to_thread.run_sync(next, batches, sentinel)
            if batch is sentinel:
                return
            for item in batch:
                yield item
    finally:
        batches.close()


@dataclass(frozen=True, slots=True)
class TreeTotals:
    """How many files and bytes a walk will find; the progress display's denominators."""

    files: int
    bytes: int


def _count(root: str, stop: threading.Event) -> TreeTotals | None:
    files = total = 0
    for batch in _walk_batches(root, SCAN_BATCH_SIZE, stop):
        for item in batch:
            if isinstance(item, FileEntry):
                files += 1
                total += item.size
    return None if stop.is_set() else TreeTotals(files, total)


async def count_tree(source: Path, stop: threading.Event | None = None) -> TreeTotals | None:
    """Count files and bytes with the same rules as ``walk_tree``, in a worker thread, holding no list.

    Returns ``None`` if ``stop`` was set first: the upload finished before the count, which then has no use.
    """
    return await anyio.to_thread.run_sync(_count, str(source), stop or threading.Event(), abandon_on_cancel=True)
