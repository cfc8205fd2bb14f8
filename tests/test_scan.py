"""Tests for ``async_uploader.scan``: which files the walk finds, what it passes over and what it reports."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from async_uploader.scan import FileEntry, ScanFailure, ScanItem, TreeTotals, count_tree, walk_tree
from tests.trees import make_tree

DEADLINE_S = 10
DEEP_DIR = "/".join(f"d{level}" for level in range(50))


async def collect(source: Path, **kwargs: int) -> list[ScanItem]:
    with anyio.fail_after(DEADLINE_S):
        return [item async for item in walk_tree(source, **kwargs)]


def entries_of(items: list[ScanItem]) -> dict[str, FileEntry]:
    return {item.rel: item for item in items if isinstance(item, FileEntry)}


def failures_of(items: list[ScanItem]) -> list[ScanFailure]:
    return [item for item in items if isinstance(item, ScanFailure)]


@contextlib.contextmanager
def scandir_denied_for(monkeypatch: pytest.MonkeyPatch, denied: Path) -> Iterator[None]:
    """Make ``os.scandir`` refuse one directory, as a chmod 000 directory would for a non-root user."""
    real_scandir = os.scandir

    def scandir(path: str) -> object:
        if os.fspath(path) == str(denied):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_scandir(path)

    with monkeypatch.context() as patch:
        patch.setattr(os, "scandir", scandir)
        yield


TREE = {
    "top.txt": b"top",
    ".hidden": b"hidden file",
    "sub/a.bin": b"\x00" * 1000,
    "sub/.config/settings.ini": b"[x]\n",
    "sub/deeper/empty.txt": b"",
    "with space/na\u00efve \u65e5\u672c.txt": b"unicode",
    f"{DEEP_DIR}/bottom.txt": b"fifty levels down",
}


async def test_walk_finds_every_regular_file_including_hidden_and_deep_ones(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE)
    items = await collect(tmp_path)
    assert failures_of(items) == []
    assert sorted(entries_of(items)) == sorted(TREE)
    assert len(items) == len(TREE)  # each file once


async def test_walk_entries_carry_the_files_path_and_stat(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE)
    (tmp_path / "sub" / "a.bin").chmod(0o755)
    os.utime(tmp_path / "top.txt", ns=(1_600_000_000_000_000_001, 1_700_000_000_123_456_789))
    entries = entries_of(await collect(tmp_path))
    for rel, entry in entries.items():
        expected_path = tmp_path.joinpath(*rel.split("/"))
        st = expected_path.stat()
        assert Path(entry.path) == expected_path
        assert (entry.size, entry.mtime_ns, entry.mode) == (st.st_size, st.st_mtime_ns, st.st_mode)
        assert entry.size == len(TREE[rel])
    assert entries["top.txt"].mtime_ns == 1_700_000_000_123_456_789
    assert entries["sub/a.bin"].mode & 0o777 == 0o755


async def test_walk_of_empty_tree_yields_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty" / "also-empty").mkdir(parents=True)
    assert await collect(tmp_path) == []


async def test_symlink_to_file_is_uploaded_under_the_links_name(tmp_path: Path) -> None:
    make_tree(tmp_path, {"real/data.bin": b"d" * 1234})
    (tmp_path / "link.bin").symlink_to(tmp_path / "real" / "data.bin")
    entries = entries_of(await collect(tmp_path))
    assert sorted(entries) == ["link.bin", "real/data.bin"]
    link = entries["link.bin"]
    assert link.size == 1234
    assert link.path == str(tmp_path / "link.bin")


async def test_symlinked_directory_is_not_descended(tmp_path: Path) -> None:
    make_tree(tmp_path, {"real/inner.txt": b"inner"})
    (tmp_path / "linkdir").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "real" / "loop").symlink_to(tmp_path, target_is_directory=True)
    items = await collect(tmp_path)
    assert failures_of(items) == []
    assert sorted(entries_of(items)) == ["real/inner.txt"]


async def test_broken_symlink_and_fifo_are_passed_over_without_blocking(tmp_path: Path) -> None:
    make_tree(tmp_path, {"ok.txt": b"ok"})
    (tmp_path / "broken").symlink_to(tmp_path / "does-not-exist")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    try:
        # Walk in a thread we can abandon: if the walk opened the FIFO it would block forever, and this test
        # should fail at its deadline rather than hang.
        with anyio.fail_after(DEADLINE_S):
            items = await anyio.to_thread.run_sync(anyio.run, collect, tmp_path, abandon_on_cancel=True)
    finally:
        # Release a walk blocked opening the FIFO for reading, so no thread outlives the test.
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert failures_of(items) == []
    assert sorted(entries_of(items)) == ["ok.txt"]


async def test_symlink_loop_is_reported_not_dropped(tmp_path: Path) -> None:
    make_tree(tmp_path, {"ok.txt": b"ok"})
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    items = await collect(tmp_path)
    assert sorted(entries_of(items)) == ["ok.txt"]
    [failure] = failures_of(items)
    assert failure.rel == "loop"
    assert "cannot stat" in failure.reason


async def test_unreadable_directory_is_reported_and_the_rest_is_walked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(
        tmp_path,
        {"top.txt": b"t", "locked/secret.txt": b"s", "open/a.txt": b"a", "open/deeper/b.txt": b"b"},
    )
    with scandir_denied_for(monkeypatch, tmp_path / "locked"):
        items = await collect(tmp_path)
    assert sorted(entries_of(items)) == ["open/a.txt", "open/deeper/b.txt", "top.txt"]
    [failure] = failures_of(items)
    assert failure.rel == "locked"
    assert "cannot list directory" in failure.reason
    assert "permission denied" in failure.reason.lower()


async def test_unreadable_source_is_reported_as_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path, {"a.txt": b"a"})
    with scandir_denied_for(monkeypatch, tmp_path):
        items = await collect(tmp_path)
    assert items == [ScanFailure(".", "cannot list directory: Permission denied")]


async def test_chmod_000_directory_is_reported_and_the_rest_is_walked(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads a chmod 000 directory anyway; the scandir-patching test covers this case")
    make_tree(tmp_path, {"top.txt": b"t", "locked/secret.txt": b"s"})
    locked = tmp_path / "locked"
    locked.chmod(0)
    try:
        items = await collect(tmp_path)
    finally:
        locked.chmod(0o755)
    assert sorted(entries_of(items)) == ["top.txt"]
    assert [failure.rel for failure in failures_of(items)] == ["locked"]


@pytest.mark.parametrize("batch_size", [1, 3, 10, 11])
async def test_small_batches_lose_no_file(tmp_path: Path, batch_size: int) -> None:
    files = {f"f{i}.txt": bytes(i) for i in range(7)} | {f"sub/g{i}.txt": bytes(i) for i in range(3)}
    make_tree(tmp_path, files)
    items = await collect(tmp_path, batch_size=batch_size)
    assert len(items) == 10
    assert sorted(entries_of(items)) == sorted(files)


async def test_count_tree_matches_the_walk(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE)
    (tmp_path / "link.bin").symlink_to(tmp_path / "sub" / "a.bin")
    (tmp_path / "linkdir").symlink_to(tmp_path / "sub", target_is_directory=True)
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "pipe")
    entries = entries_of(await collect(tmp_path))
    with anyio.fail_after(DEADLINE_S):
        totals = await count_tree(tmp_path)
    assert totals == TreeTotals(files=len(entries), bytes=sum(entry.size for entry in entries.values()))
    assert totals == TreeTotals(files=len(TREE) + 1, bytes=sum(map(len, TREE.values())) + 1000)


async def test_count_tree_returns_none_when_stopped_first(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE)
    stop = threading.Event()
    stop.set()
    with anyio.fail_after(DEADLINE_S):
        assert await count_tree(tmp_path, stop) is None
