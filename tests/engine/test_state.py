"""The state file: remembered uploads survive a reopen, are kept apart per destination, and the listing table
is private to one run."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from async_uploader.engine.plan import Listed, Remembered
from async_uploader.engine.state import LOOKUP_BATCH, OpenUpload, StateFile
from async_uploader.errors import ConfigError


def remembered(state: StateFile, key: str) -> Remembered | None:
    """What ``state`` remembers of ``key``, asked the way a run asks: once the listing shows the key."""
    state.add_listed([(key, 0, "", "")])
    return state.lookup(key)[1]


def test_remembered_objects_and_open_uploads_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "state.sqlite3"
    state = StateFile(path, "http://host/bucket")
    state.remember("k/é", 10, 123, '"abc"')
    state.remember_upload("big", OpenUpload("u1", 100, 5, 8, "crc32"))
    state.close()

    again = StateFile(path, "http://host/bucket")
    assert remembered(again, "k/é") == Remembered(10, 123, "abc")
    assert again.open_upload("big", "u1") == OpenUpload("u1", 100, 5, 8, "crc32")
    again.forget_upload("big", "u1")
    assert again.open_upload("big", "u1") is None
    again.close()


def test_destinations_are_kept_apart(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    one = StateFile(path, "http://host/one")
    one.remember("k", 1, 1, "e")
    one.close()
    other = StateFile(path, "http://host/other")
    assert remembered(other, "k") is None
    other.close()


def test_the_listing_is_private_to_one_run(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first = StateFile(path, "s")
    first.add_listed([("a", 1, '"e1"', ""), ("b/c", 2, "e2", "")])
    assert first.lookup("a") == (Listed(1, "e1"), None)
    assert first.lookup("b/c") == (Listed(2, "e2"), None)
    assert first.lookup("zzz") == (None, None)
    first.close()
    second = StateFile(path, "s")
    second.add_listed([("other", 1, "e", "")])
    assert second.lookup("a") == (None, None)
    second.close()


def test_without_a_path_nothing_outlives_the_run() -> None:
    state = StateFile(None, "s")
    state.remember("k", 1, 1, "e")
    state.close()
    later = StateFile(None, "s")
    assert remembered(later, "k") is None
    later.close()


def test_an_unusable_state_path_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot use the state file"):
        StateFile(tmp_path / "file" / "state.sqlite3", "s")


def test_lookup_joins_the_listing_with_what_was_remembered(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "state.sqlite3", "s")
    assert state.lookup("a") == (None, None)
    state.remember("a", 1, 10, '"e1"')
    state.add_listed([("a", 1, '"e1"', ""), ("b", 2, "e2", "")])
    assert state.lookup("a") == (Listed(1, "e1"), None)  # remembered, but not yet written: no stale answers
    state.close()
    again = StateFile(tmp_path / "state.sqlite3", "s")
    again.add_listed([("a", 1, "e1", ""), ("b", 2, "e2", "")])
    assert again.lookup("a") == (Listed(1, "e1"), Remembered(1, 10, "e1"))
    assert again.lookup("b") == (Listed(2, "e2"), None)
    assert again.lookup("c") == (None, None)
    again.close()


def test_a_batch_lookup_answers_as_one_lookup_per_key(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "state.sqlite3", "s")
    keys = [f"d{i % 7}/k{i}" for i in range(LOOKUP_BATCH * 2 + 3)]  # more than one query's worth
    for i, key in enumerate(keys[::2]):
        state.remember(key, i, 10 * i, f"e{i}")
    state.close()
    again = StateFile(tmp_path / "state.sqlite3", "s")
    assert again.lookup_many(keys) == {}  # nothing listed yet: nothing asked
    again.add_listed([(key, i, f'"e{i}"', "") for i, key in enumerate(keys) if i % 3])
    found = again.lookup_many([*keys, "not-there"])
    assert found == {key: again.lookup(key) for key in keys if again.lookup(key)[0] is not None}
    assert len(found) == sum(1 for i in range(len(keys)) if i % 3)
    assert any(remembered is not None for _, remembered in found.values())
    again.close()


def test_two_runs_on_one_machine_share_the_state_file(tmp_path: Path) -> None:
    """Shards of one job on one machine: neither may hold a write transaction open while it works."""
    path = tmp_path / "state.sqlite3"
    one, two = StateFile(path, "s"), StateFile(path, "s")
    one.remember_upload("big", OpenUpload("u1", 100, 5, 8, "crc32/full"))
    one.remember("a", 1, 1, "e")
    one.forget_upload("big", "u1")
    two.remember_upload("other", OpenUpload("u2", 100, 5, 8, "crc32/full"))
    two.remember("b", 2, 2, "e")
    two.close()
    one.close()
    three = StateFile(path, "s")
    assert (remembered(three, "a"), remembered(three, "b")) == (Remembered(1, 1, "e"), Remembered(2, 2, "e"))
    three.close()


def test_a_state_file_written_before_checksums_were_remembered_is_migrated(tmp_path: Path) -> None:
    """Its rows keep working (with no checksum); new ones carry the checksum the upload sent."""
    path = tmp_path / "state.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as old:
        old.execute(
            "CREATE TABLE objects (store TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL,"
            " mtime_ns INTEGER NOT NULL, etag TEXT NOT NULL, PRIMARY KEY (store, key)) WITHOUT ROWID"
        )
        old.execute("INSERT INTO objects VALUES ('s', 'old', 1, 2, 'e')")
        old.commit()

    state = StateFile(path, "s")
    assert remembered(state, "old") == Remembered(1, 2, "e", "")
    state.remember("new", 3, 4, "f", "crc32:AAAAAA==")
    state.close()
    again = StateFile(path, "s")
    assert remembered(again, "new") == Remembered(3, 4, "f", "crc32:AAAAAA==")
    again.add_listed([("old", 1, "e", "")])
    assert again.lookup_many(["old", "new"])["new"][1] == Remembered(3, 4, "f", "crc32:AAAAAA==")
    again.close()
