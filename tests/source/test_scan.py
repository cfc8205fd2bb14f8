"""Tests for ``async_uploader.source.scan``: which files the walk finds, what it passes over and what it reports."""

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

import async_uploader.source.scan
from async_uploader.source.filters import PathFilter
from async_uploader.source.scan import (
    FileEntry,
    ScanFailure,
    ScanItem,
    ScanOptions,
    ScanSkipped,
    TreeTotals,
    count_tree,
    file_batches,
    stat_paths_batches,
    walk_tree_batches,
)
from tests.trees import make_tree

DEADLINE_S = 10
DEEP_DIR = "/".join(f"d{level}" for level in range(50))


async def collect(source: Path, options: ScanOptions | None = None, **kwargs: int) -> list[ScanItem]:
    with anyio.fail_after(DEADLINE_S):
        return [item async for batch in walk_tree_batches(source, options, **kwargs) for item in batch]


def entries_of(items: list[ScanItem]) -> dict[str, FileEntry]:
    return {item.rel: item for item in items if isinstance(item, FileEntry)}


def failures_of(items: list[ScanItem]) -> list[ScanFailure]:
    return [item for item in items if isinstance(item, ScanFailure)]


def skipped_of(items: list[ScanItem]) -> dict[str, str]:
    return {item.rel: item.reason for item in items if isinstance(item, ScanSkipped)}


def rels_of(items: list[ScanItem]) -> list[str]:
    """The files found, sorted, duplicates kept (a file found twice would be uploaded twice)."""
    return sorted(item.rel for item in items if isinstance(item, FileEntry))


def filtered(*flags: tuple[str, str], follow_symlinks: bool = False) -> ScanOptions:
    return ScanOptions(PathFilter.from_flags(flags), follow_symlinks)


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


def tree_with_file_links(tmp_path: Path) -> Path:
    """SOURCE with links to a file inside it (direct, relative, through a chain) and to a secret outside it."""
    source = tmp_path / "src"
    make_tree(source, {"real/data.bin": b"d"})
    make_tree(tmp_path, {"secret/credentials": b"key"})
    (source / "inside.bin").symlink_to(source / "real" / "data.bin")
    (source / "real" / "relative.bin").symlink_to("data.bin")
    (source / "creds").symlink_to(tmp_path / "secret" / "credentials")
    (source / "chain").symlink_to("creds")  # inside SOURCE, but resolving outside it
    return source


async def test_a_symlink_to_a_file_outside_source_is_skipped_with_the_reason(tmp_path: Path) -> None:
    source = tree_with_file_links(tmp_path)
    items = await collect(source)
    assert rels_of(items) == ["inside.bin", "real/data.bin", "real/relative.bin"]
    assert skipped_of(items) == {
        "creds": "symbolic link to a file outside SOURCE (use --follow-symlinks to upload it)",
        "chain": "symbolic link to a file outside SOURCE (use --follow-symlinks to upload it)",
    }
    assert await count_tree(source) == TreeTotals(3, 3)  # the denominators agree with the walk


async def test_follow_symlinks_takes_a_link_to_a_file_outside_source(tmp_path: Path) -> None:
    source = tree_with_file_links(tmp_path)
    items = await collect(source, ScanOptions(follow_symlinks=True))
    assert rels_of(items) == ["chain", "creds", "inside.bin", "real/data.bin", "real/relative.bin"]
    assert skipped_of(items) == {}


async def test_retrying_a_named_link_outside_source_skips_it_too(tmp_path: Path) -> None:
    source = tree_with_file_links(tmp_path)
    items = [item async for batch in stat_paths_batches(source, ["creds", "inside.bin"]) for item in batch]
    assert rels_of(items) == ["inside.bin"]
    assert list(skipped_of(items)) == ["creds"]


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


# Special files, the symlink policy and the filters


async def collect_beside_fifo(source: Path, fifo: Path, options: ScanOptions | None = None) -> list[ScanItem]:
    """Walk in a thread we can abandon: a walk that opened the FIFO would block forever, and the test should fail
    at its deadline instead; then release such a walk so no thread outlives the test."""
    try:
        with anyio.fail_after(DEADLINE_S):
            return await anyio.to_thread.run_sync(anyio.run, collect, source, options, abandon_on_cancel=True)
    finally:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


async def test_fifo_and_broken_symlink_are_reported_as_skipped_with_a_reason(tmp_path: Path) -> None:
    make_tree(tmp_path, {"ok.txt": b"ok", "sub/inner.txt": b"inner"})
    (tmp_path / "sub" / "broken").symlink_to(tmp_path / "does-not-exist")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    items = await collect_beside_fifo(tmp_path, fifo)
    assert rels_of(items) == ["ok.txt", "sub/inner.txt"]
    assert failures_of(items) == []
    skipped = skipped_of(items)
    assert sorted(skipped) == ["pipe", "sub/broken"]
    assert "FIFO" in skipped["pipe"]
    assert "broken" in skipped["sub/broken"]


def tree_with_outside_link(tmp_path: Path) -> Path:
    """SOURCE with its own file and ``linkdir`` -> a directory outside it (so listing order cannot matter)."""
    source = tmp_path / "src"
    make_tree(source, {"own.txt": b"own"})
    make_tree(tmp_path / "outside", {"a.txt": b"aa", "sub/b.txt": b"bbb"})
    (source / "linkdir").symlink_to(tmp_path / "outside", target_is_directory=True)
    return source


async def test_symlinked_directory_is_skipped_with_a_hint_by_default(tmp_path: Path) -> None:
    source = tree_with_outside_link(tmp_path)
    items = await collect(source)
    assert rels_of(items) == ["own.txt"]
    assert list(skipped_of(items)) == ["linkdir"]
    assert "--follow-symlinks" in skipped_of(items)["linkdir"]


async def test_follow_symlinks_descends_a_symlinked_directory_under_the_links_name(tmp_path: Path) -> None:
    source = tree_with_outside_link(tmp_path)
    items = await collect(source, ScanOptions(follow_symlinks=True))
    assert rels_of(items) == ["linkdir/a.txt", "linkdir/sub/b.txt", "own.txt"]
    assert skipped_of(items) == {}
    assert failures_of(items) == []
    entries = entries_of(items)
    assert entries["linkdir/sub/b.txt"].path == str(source / "linkdir" / "sub" / "b.txt")
    assert entries["linkdir/sub/b.txt"].size == 3


class _StatWithoutIds:
    """A stat result as Windows' ``DirEntry.stat`` gives it: ``st_ino`` and ``st_dev`` are 0."""

    st_ino = 0
    st_dev = 0

    def __init__(self, st: os.stat_result) -> None:
        self._st = st

    def __getattr__(self, name: str) -> object:
        return getattr(self._st, name)


class _WindowsDirEntry:
    """A ``DirEntry`` as Windows' behaves: its ``stat()`` comes from the listing, without the file's ids, except
    when it follows a symbolic link (then it calls ``os.stat``, which has them)."""

    def __init__(self, entry: os.DirEntry[str]) -> None:
        self._entry = entry
        self.name = entry.name
        self.path = entry.path

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self._entry.is_dir(follow_symlinks=follow_symlinks)

    def is_symlink(self) -> bool:
        return self._entry.is_symlink()

    def stat(self, *, follow_symlinks: bool = True) -> object:
        if follow_symlinks and self._entry.is_symlink():
            return os.stat(self.path)
        return _StatWithoutIds(self._entry.stat(follow_symlinks=follow_symlinks))


@contextlib.contextmanager
def _windows_scandir(path: str) -> Iterator[Iterator[_WindowsDirEntry]]:
    with _real_scandir(path) as entries:
        yield (_WindowsDirEntry(entry) for entry in entries)


_real_scandir = os.scandir


@pytest.mark.parametrize("dir_entries", ["posix", "windows"])
async def test_follow_symlinks_walks_a_loop_once_and_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dir_entries: str
) -> None:
    if dir_entries == "windows":
        monkeypatch.setattr(os, "scandir", _windows_scandir)
    make_tree(tmp_path, {"top.txt": b"t", "a/inner.txt": b"i", "a/b/deep.txt": b"d"})
    (tmp_path / "a" / "loop").symlink_to("..", target_is_directory=True)
    (tmp_path / "a" / "b" / "up").symlink_to("../..", target_is_directory=True)
    (tmp_path / "a" / "b" / "back").symlink_to("..", target_is_directory=True)  # to a, not to the top
    items = await collect(tmp_path, ScanOptions(follow_symlinks=True))
    assert rels_of(items) == ["a/b/deep.txt", "a/inner.txt", "top.txt"]  # each real file exactly once
    assert failures_of(items) == []
    skipped = skipped_of(items)
    assert sorted(skipped) == ["a/b/back", "a/b/up", "a/loop"]
    assert all("loop" in reason for reason in skipped.values())


async def test_excluded_directory_is_never_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(
        tmp_path,
        {
            "top.txt": b"t",
            "keep/a.txt": b"a",
            "node_modules/pkg/index.js": b"x",
            "web/app.js": b"y",
            "web/node_modules/dep/lib.js": b"z",
        },
    )
    listed: list[str] = []
    real_scandir = os.scandir

    def recording_scandir(path: str) -> object:
        listed.append(os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(async_uploader.source.scan.os, "scandir", recording_scandir)
    items = await collect(tmp_path, filtered(("exclude", "node_modules")))
    assert rels_of(items) == ["keep/a.txt", "top.txt", "web/app.js"]
    listed_rels = {Path(path).relative_to(tmp_path).as_posix() for path in listed}
    assert {".", "keep", "web"} <= listed_rels  # the recorder does see the walk
    assert sorted(rel for rel in listed_rels if "node_modules" in rel.split("/")) == []


FILTER_TREE = {
    "setup.py": b"s",
    "dist/a-1.0.whl": b"w1",
    "dist/old/b-0.9.whl": b"w22",
    "dist/notes.txt": b"n",
    "build/lib/m.py": b"m",
    "docs/build": b"a file named build",
    "x.tmp": b"tmp",
    "sub/y.tmp": b"tmp",
    "logs/run.log": b"log",
    "logs/keep.keep": b"keep",
}


@pytest.mark.parametrize(
    ("flags", "dropped"),
    [
        pytest.param((), set(), id="no-rules"),
        pytest.param((("exclude", "*.tmp"),), {"x.tmp", "sub/y.tmp"}, id="exclude-tmp"),
        pytest.param(
            (("exclude", "*"), ("include", "*.whl")),
            set(FILTER_TREE) - {"dist/a-1.0.whl", "dist/old/b-0.9.whl"},
            id="only-wheels",
        ),
        pytest.param((("exclude", "build/"),), {"build/lib/m.py"}, id="directory-only"),
        # An include restricts: what no rule matches is dropped.
        pytest.param(
            (("include", "*.whl"),), set(FILTER_TREE) - {"dist/a-1.0.whl", "dist/old/b-0.9.whl"}, id="only-wheels-alone"
        ),
        pytest.param(
            (("include", "dist/**"),),
            set(FILTER_TREE) - {"dist/a-1.0.whl", "dist/old/b-0.9.whl", "dist/notes.txt"},
            id="include-a-directory",
        ),
        pytest.param(
            (("exclude", "logs"), ("include", "*.keep")),
            set(FILTER_TREE) - {"logs/keep.keep"},
            id="include-after-exclude",
        ),
        pytest.param((("include", "*.keep"), ("exclude", "logs")), set(FILTER_TREE), id="exclude-after-include"),
    ],
)
async def test_filters_decide_which_files_come_out(
    tmp_path: Path, flags: tuple[tuple[str, str], ...], dropped: set[str]
) -> None:
    make_tree(tmp_path, FILTER_TREE)
    items = await collect(tmp_path, filtered(*flags))
    assert rels_of(items) == sorted(set(FILTER_TREE) - dropped)
    assert failures_of(items) == []


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(filtered(("exclude", "*.tmp"), ("exclude", "build/")), id="filtered"),
        pytest.param(filtered(("exclude", "*.whl"), follow_symlinks=True), id="filtered-following-symlinks"),
    ],
)
async def test_count_tree_with_options_counts_what_the_walk_finds(tmp_path: Path, options: ScanOptions) -> None:
    source = tmp_path / "src"
    make_tree(source, FILTER_TREE)
    make_tree(tmp_path / "outside", {"o.txt": b"outside", "o.whl": b"wheel"})
    (source / "linkdir").symlink_to(tmp_path / "outside", target_is_directory=True)
    entries = entries_of(await collect(source, options))
    with anyio.fail_after(DEADLINE_S):
        totals = await count_tree(source, options=options)
    assert totals == TreeTotals(files=len(entries), bytes=sum(entry.size for entry in entries.values()))
    with anyio.fail_after(DEADLINE_S):
        unfiltered = await count_tree(source)
    assert unfiltered is not None
    assert totals.files != unfiltered.files  # the options made a difference


# stat_paths_batches (--retry-failed)


async def collect_listed(
    source: Path, rels: list[str], options: ScanOptions | None = None, **kwargs: int
) -> list[ScanItem]:
    with anyio.fail_after(DEADLINE_S):
        return [item async for batch in stat_paths_batches(source, rels, options, **kwargs) for item in batch]


@pytest.mark.parametrize("batch_size", [1, 2, 100])
async def test_stat_paths_states_files_reports_missing_ones_and_walks_directories(
    tmp_path: Path, batch_size: int
) -> None:
    make_tree(
        tmp_path,
        {"a.txt": b"abc", "sub/b.txt": b"bb", "sub/deeper/c.txt": b"c", "other.txt": b"not asked for"},
    )
    items = await collect_listed(tmp_path, ["a.txt", "gone.txt", "sub"], batch_size=batch_size)
    assert rels_of(items) == ["a.txt", "sub/b.txt", "sub/deeper/c.txt"]
    entries = entries_of(items)
    assert entries["a.txt"].path == str(tmp_path / "a.txt")
    assert entries["a.txt"].size == 3
    assert entries["sub/deeper/c.txt"].path == str(tmp_path / "sub" / "deeper" / "c.txt")
    [failure] = failures_of(items)
    assert failure.rel == "gone.txt"
    assert "no longer exists" in failure.reason


# Bugs found while writing these tests.


async def test_excluded_entries_are_not_reported_at_all(tmp_path: Path) -> None:
    make_tree(tmp_path, {"ok.txt": b"ok"})
    (tmp_path / "dangling.lnk").symlink_to(tmp_path / "nowhere")
    (tmp_path / "self.lnk").symlink_to(tmp_path / "self.lnk")  # ELOOP: "cannot stat"
    items = await collect(tmp_path, filtered(("exclude", "*.lnk")))
    assert items == [entries_of(items)["ok.txt"]]


class OrderedListing:
    """What ``os.scandir`` returns, with the entries in a chosen order."""

    def __init__(self, entries: list[os.DirEntry[str]]) -> None:
        self.entries = entries

    def __enter__(self) -> Iterator[os.DirEntry[str]]:
        return iter(self.entries)

    def __exit__(self, *exc_info: object) -> None:
        return None


async def test_follow_symlinks_result_does_not_depend_on_listing_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path, {"real/inner.txt": b"inner"})
    (tmp_path / "alias").symlink_to("real", target_is_directory=True)
    real_scandir = os.scandir
    found: dict[bool, list[str]] = {}
    for reverse in (False, True):

        def ordered_scandir(path: str, reverse: bool = reverse) -> OrderedListing:
            with real_scandir(path) as listing:
                return OrderedListing(sorted(listing, key=lambda entry: entry.name, reverse=reverse))

        with monkeypatch.context() as patch:
            patch.setattr(async_uploader.source.scan.os, "scandir", ordered_scandir)
            found[reverse] = rels_of(await collect(tmp_path, ScanOptions(follow_symlinks=True)))
    assert found[False] == ["alias/inner.txt", "real/inner.txt"]
    assert found[True] == found[False]


async def test_stat_paths_of_the_source_itself_yields_plain_relative_paths(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.txt": b"a", "sub/b.txt": b"b"})
    items = await collect_listed(tmp_path, ["."])
    assert rels_of(items) == ["a.txt", "sub/b.txt"]


# file_batches: a single file named on the command line


def test_a_single_file_is_a_tree_of_one_named_after_it(tmp_path: Path) -> None:
    path = tmp_path / "app.tgz"
    path.write_bytes(b"tarball")
    [[entry]] = list(file_batches(path))
    assert isinstance(entry, FileEntry)
    assert (entry.path, entry.rel, entry.size) == (str(path), "app.tgz", 7)


def test_a_single_file_is_left_out_by_the_filters_or_a_retry_that_does_not_name_it(tmp_path: Path) -> None:
    path = tmp_path / "app.tgz"
    path.write_bytes(b"tarball")
    assert list(file_batches(path, ScanOptions(PathFilter.from_flags([("exclude", "*.tgz")])))) == []
    assert list(file_batches(path, only=["other"])) == []
    assert len(list(file_batches(path, only=["app.tgz"]))) == 1


def test_a_symlink_named_as_source_is_followed_wherever_it_points(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "real.bin"
    make_tree(tmp_path / "elsewhere", {"real.bin": b"data"})
    (tmp_path / "link.bin").symlink_to(target)
    [[entry]] = list(file_batches(tmp_path / "link.bin"))
    assert isinstance(entry, FileEntry)
    assert (entry.rel, entry.size) == ("link.bin", 4)
