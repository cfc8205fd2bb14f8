"""``--delete`` against the in-memory store: what goes, what stays, and the guards that delete nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from async_uploader.config import parse_destination
from async_uploader.engine.deletion import WalkTally, batches, check_guards, check_max_delete, doomed_keys
from async_uploader.errors import ConfigError, DeleteRefusedError
from async_uploader.events import DeleteFailed, DeletePlanned, DeletesWithheld, Event, ObjectDeleted, RunFinished
from async_uploader.options import make_config
from async_uploader.providers.base import DeleteFailure
from async_uploader.runner import run
from async_uploader.source.filters import PathFilter
from tests.memory_store import MemoryStore, StoredBlob
from tests.trees import make_tree

PREFIX = "site/"


def store_with(*keys: str) -> MemoryStore:
    store = MemoryStore()
    for key in keys:
        store.objects[key] = StoredBlob(b"old", {}, 1)
    return store


async def sync(source: Path, store: MemoryStore, events: list[Event] | None = None, **options: Any) -> Any:
    config = make_config(source, "s3://bucket/site", delete=True, use_state=False, **options)
    return await run(config, store, events.append if events is not None else None, count_totals=False)


# The guards, pure.


def test_guards_hold_for_failures_an_incomplete_listing_and_an_empty_source() -> None:
    assert check_guards(WalkTally(3, 0, None), allow_empty_source=False).delete
    failed = check_guards(WalkTally(3, 1, None), allow_empty_source=False)
    assert not failed.delete
    assert not failed.refused
    assert "1 files failed" in str(failed.reason)
    unlisted = check_guards(WalkTally(3, 0, "the listing of the destination failed"), allow_empty_source=True)
    assert not unlisted.delete
    assert unlisted.refused
    empty = check_guards(WalkTally(0, 0, None), allow_empty_source=False)
    assert not empty.delete
    assert empty.refused
    assert "--allow-empty-source" in str(empty.reason)
    assert check_guards(WalkTally(0, 0, None), allow_empty_source=True).delete
    assert not check_guards(WalkTally(0, 2, None), allow_empty_source=True).delete


def test_max_delete_allows_up_to_n() -> None:
    assert check_max_delete(5, None).delete
    assert check_max_delete(2, 2).delete
    over = check_max_delete(5, 2)
    assert not over.delete
    assert over.refused
    assert "5 keys" in str(over.reason)
    assert check_max_delete(0, 0).delete


def test_doomed_keys_stay_under_the_prefix_and_keep_markers_exclusions_and_the_probe() -> None:
    page = ["a/b/x", "a/b/dir/", "a/b/keep.tmp", "a/b/logs/y", "a/bc/z", "a/b/probe"]
    rules = PathFilter.from_flags([("exclude", "*.tmp"), ("exclude", "logs/")])
    assert list(doomed_keys([page], "a/b/", rules, delete_excluded=False, keep="a/b/probe")) == ["a/b/x"]
    everything = list(doomed_keys([page], "a/b/", rules, delete_excluded=True, keep="a/b/probe"))
    assert everything == ["a/b/x", "a/b/keep.tmp", "a/b/logs/y"]
    included = PathFilter.from_flags([("include", "*.html")])
    assert list(doomed_keys([["p/a.html", "p/a.css"]], "p/", included, delete_excluded=False)) == ["p/a.html"]


def test_batches_hold_at_most_a_thousand_keys() -> None:
    sizes = [len(batch) for batch in batches(f"k{i}" for i in range(2500))]
    assert sizes == [1000, 1000, 500]
    assert list(batches([])) == []


def test_a_prefix_is_normalised_to_end_in_a_slash() -> None:
    # What keeps a/b from touching a/bc/...: every listing and every key test uses "a/b/".
    assert parse_destination("s3://bucket/a/b").prefix == "a/b/"
    assert parse_destination("s3://bucket/a/b/").prefix == "a/b/"
    assert parse_destination("s3://bucket").prefix == ""


def test_delete_is_refused_with_a_shard_or_a_retry_and_its_companions_need_it(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    report.write_text("")
    with pytest.raises(ConfigError, match="--shard"):
        make_config(tmp_path, "s3://bkt/p", delete=True, shard="0/2")
    with pytest.raises(ConfigError, match="--retry-failed"):
        make_config(tmp_path, "s3://bkt/p", delete=True, retry_failed=report)
    for option in ("delete_excluded", "allow_empty_source"):
        with pytest.raises(ConfigError, match="needs --delete"):
            make_config(tmp_path, "s3://bkt/p", **{option: True})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs --delete"):
        make_config(tmp_path, "s3://bkt/p", max_delete=3)
    with pytest.raises(ConfigError, match="--max-delete"):
        make_config(tmp_path, "s3://bkt/p", delete=True, max_delete=-1)


# Runs.


async def test_keys_no_file_maps_to_are_deleted_and_nothing_else(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.txt": b"a", "sub/b.txt": b"b"})
    store = store_with("site/gone.txt", "site/old/deep/x", "site/sub/b.txt", "sitex/y", "site2/z", "other/w")
    events: list[Event] = []
    result = await sync(tmp_path, store, events)
    assert result.ok
    assert result.deleted == 2
    assert result.uploaded == 2
    assert sorted(store.objects) == ["other/w", "site/a.txt", "site/sub/b.txt", "site2/z", "sitex/y"]
    assert sorted(e.key for e in events if isinstance(e, ObjectDeleted)) == ["site/gone.txt", "site/old/deep/x"]
    again = await sync(tmp_path, store)
    assert again.deleted == 0
    assert again.ok


async def test_overwrite_always_still_lists_and_deletes(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.txt": b"a"})
    store = store_with("site/a.txt", "site/gone")
    result = await sync(tmp_path, store, overwrite="always")
    assert (result.uploaded, result.deleted) == (1, 1)
    assert list(store.objects) == ["site/a.txt"]


async def test_excluded_keys_stay_unless_delete_excluded(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.txt": b"a", "b.tmp": b"t"})
    store = store_with("site/x.tmp", "site/gone")
    result = await sync(tmp_path, store, exclude=["*.tmp"])
    assert result.deleted == 1
    assert sorted(store.objects) == ["site/a.txt", "site/x.tmp"]
    result = await sync(tmp_path, store, exclude=["*.tmp"], delete_excluded=True)
    assert result.deleted == 1
    assert sorted(store.objects) == ["site/a.txt"]


async def test_one_failed_file_deletes_nothing(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.txt": b"a", "b.txt": b"b"})
    store = store_with("site/gone")
    store.fail_keys.add("site/b.txt")
    events: list[Event] = []
    result = await sync(tmp_path, store, events)
    assert result.failed == 1
    assert result.deleted == 0
    assert "site/gone" in store.objects
    assert store.delete_batches == []
    assert any(isinstance(e, DeletesWithheld) for e in events)


async def test_an_unreadable_directory_deletes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its files were never seen: their objects must not look orphaned. Root reads a chmod 000 directory, so the
    # refusal is played by the walk's scandir (the file case below uses a real chmod where it can).
    make_tree(tmp_path, {"a.txt": b"a", "locked/b.txt": b"b"})
    store = store_with("site/locked/b.txt", "site/gone")
    locked = str(tmp_path / "locked")
    scandir = os.scandir

    def refusing(path: Any = ".") -> Any:
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    result = await sync(tmp_path, store)
    assert result.failed == 1
    assert result.deleted == 0
    assert sorted(store.objects) == ["site/a.txt", "site/gone", "site/locked/b.txt"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions and a non-root user")
async def test_an_unreadable_file_deletes_nothing(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.txt": b"a", "secret.txt": b"s"})
    store = store_with("site/gone")
    (tmp_path / "secret.txt").chmod(0)
    result = await sync(tmp_path, store)
    assert result.failed == 1
    assert result.deleted == 0
    assert "site/gone" in store.objects


async def test_an_empty_source_deletes_nothing_unless_allowed(tmp_path: Path) -> None:
    source = tmp_path / "empty"
    source.mkdir()
    store = store_with("site/a", "site/b/c")
    finished: list[Event] = []
    with pytest.raises(DeleteRefusedError, match="SOURCE has no file"):
        await sync(source, store, finished)
    assert sorted(store.objects) == ["site/a", "site/b/c"]
    last = finished[-1]
    assert isinstance(last, RunFinished)
    assert not last.interrupted
    result = await sync(source, store, allow_empty_source=True)
    assert result.deleted == 2
    assert store.objects == {}


async def test_max_delete_deletes_nothing_when_more_would_go(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.txt": b"a"})
    store = store_with(*(f"site/x{i}" for i in range(5)))
    with pytest.raises(DeleteRefusedError, match="5 keys would be deleted, over --max-delete 2"):
        await sync(tmp_path, store, max_delete=2)
    assert len(store.objects) == 6
    assert store.delete_batches == []
    result = await sync(tmp_path, store, max_delete=5)
    assert result.deleted == 5


async def test_a_refused_listing_deletes_nothing(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.txt": b"a"})
    store = store_with("site/gone")
    store.deny_reads = True
    with pytest.raises(DeleteRefusedError, match="could not be listed"):
        await sync(tmp_path, store)
    assert "site/gone" in store.objects
    assert store.delete_batches == []


async def test_dry_run_lists_what_would_go_and_deletes_nothing(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.txt": b"a"})
    store = store_with("site/gone", "site/a.txt")
    events: list[Event] = []
    result = await sync(tmp_path, store, events, dry_run=True)
    assert [e.key for e in events if isinstance(e, DeletePlanned)] == ["site/gone"]
    assert (result.would_delete, result.deleted, result.planned) == (1, 0, 1)
    assert sorted(store.objects) == ["site/a.txt", "site/gone"]
    assert store.objects["site/a.txt"].data == b"old"


async def test_thousands_of_deletions_go_in_batches_of_a_thousand(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.txt": b"a"})
    store = store_with(*(f"site/old/{i:05}" for i in range(2500)))
    result = await sync(tmp_path, store)
    assert result.deleted == 2500
    assert sorted(store.delete_batches) == [500, 1000, 1000]
    assert list(store.objects) == ["site/a.txt"]


async def test_a_key_that_cannot_be_deleted_fails_the_run_and_a_transient_one_is_retried(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.txt": b"a"})
    store = store_with("site/locked", "site/busy", "site/gone")
    store.undeletable["site/locked"] = DeleteFailure("site/locked", "AccessDenied: Access Denied")
    store.undeletable["site/busy"] = DeleteFailure("site/busy", "SlowDown: Please reduce", retryable=True)
    events: list[Event] = []
    result = await sync(tmp_path, store, events)
    assert not result.ok
    assert (result.deleted, result.delete_failed, result.failed) == (2, 1, 0)
    assert [(e.key, e.reason) for e in events if isinstance(e, DeleteFailed)] == [
        ("site/locked", "AccessDenied: Access Denied")
    ]
    assert ("site/locked", "not deleted: AccessDenied: Access Denied") in result.failures
    assert sorted(store.objects) == ["site/a.txt", "site/locked"]
    assert store.delete_batches == [3, 1]  # the busy key went again, alone
