"""``--shard K/N``: shards are disjoint, cover the tree, are the same everywhere and balanced; a walk of one
shard finds exactly its files and reports only its own problems."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from async_uploader.errors import ConfigError
from async_uploader.source.scan import FileEntry, ScanItem, ScanOptions, ScanSkipped
from async_uploader.source.shards import Shard, parse_shard, shard_of
from tests.source.test_scan import collect, scandir_denied_for
from tests.trees import make_tree

names = st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)), min_size=1, max_size=12)
rel_paths = st.lists(names, min_size=1, max_size=4).map("/".join)


@given(st.lists(rel_paths, max_size=60, unique=True), st.integers(min_value=1, max_value=9))
def test_shards_are_disjoint_and_cover_every_path(rels: list[str], count: int) -> None:
    for rel in rels:
        owners = [k for k in range(count) if Shard(k, count).takes(rel)]
        assert owners == [shard_of(rel, count)]


def test_the_partition_never_changes() -> None:
    # Fixed values: the shards of one job array may run on machines with other Pythons or other versions of this
    # tool, and must still land on the same files.
    assert [shard_of(f"dir/file-{i}.txt", 4) for i in range(12)] == [3, 0, 1, 2, 0, 0, 3, 0, 2, 1, 3, 2]
    assert shard_of("é/ü.bin", 5) == 2


def test_shards_are_balanced_even_when_one_directory_holds_every_file() -> None:
    counts = Counter(shard_of(f"flat/{i:07d}.bin", 4) for i in range(20_000))
    assert all(4_500 <= counts[k] <= 5_500 for k in range(4)), counts


@pytest.mark.parametrize(("text", "shard"), [("0/1", Shard(0, 1)), ("3/4", Shard(3, 4)), (" 1 / 2 ", Shard(1, 2))])
def test_parse_shard(text: str, shard: Shard) -> None:
    assert parse_shard(text) == shard


@pytest.mark.parametrize("text", ["4/4", "1/0", "-1/3", "a/b", "2", ""])
def test_parse_shard_refuses_what_is_not_a_shard(text: str) -> None:
    with pytest.raises(ConfigError, match="--shard"):
        parse_shard(text)


def by_rel(items: list[ScanItem]) -> dict[str, type]:
    return {item.rel: type(item) for item in items}


async def test_walking_every_shard_finds_each_file_and_each_problem_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path, {f"d{i % 7}/sub{i % 3}/f{i}.txt": b"x" * i for i in range(300)})
    os.mkfifo(tmp_path / "d1" / "pipe")
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    (tmp_path / "locked").mkdir()

    found: list[ScanItem] = []
    with scandir_denied_for(monkeypatch, tmp_path / "locked"):
        whole = await collect(tmp_path)
        for k in range(3):
            found += await collect(tmp_path, ScanOptions(shard=Shard(k, 3)))

    assert sorted(item.rel for item in found) == sorted(item.rel for item in whole)
    assert by_rel(found) == by_rel(whole)
    assert by_rel(found)["d1/pipe"] is ScanSkipped
    assert sum(isinstance(item, FileEntry) for item in found) == 300
