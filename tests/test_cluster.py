"""Tests for ``async_uploader.cluster``'s pure parts: the client's end (totals across shards, each file once in the
merged report after a retry), what makes a run impossible, and shards that did not finish."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from async_uploader.cluster import ShardEvents, check_options, collect_outcomes, run_distributed
from async_uploader.cluster_worker import ShardOutcome, encode_event
from async_uploader.errors import ConfigError
from async_uploader.events import (
    Event,
    FileDone,
    FileSkipped,
    TotalsKnown,
    UploadResult,
)
from async_uploader.options import make_config

msgpack = pytest.importorskip("msgpack")


def message(shard: int, attempt: str, seq: int, *events: Event) -> dict[str, Any]:
    return {"shard": shard, "attempt": attempt, "seq": seq, "events": [encode_event(e) for e in events]}


def done(path: str, size: int = 1) -> FileDone:
    return FileDone(path, f"p/{path}", size, '"e"', "", 1, 0.1)


async def test_the_client_adds_up_the_shards_and_keeps_each_file_once_after_a_retry(tmp_path: Path) -> None:
    seen: list[Event] = []
    events = ShardEvents(2, tmp_path, seen.append)
    # Shard 0's first attempt uploads a and dies; its rerun finds a uploaded and uploads b; shard 1 uploads c.
    events.receive(message(0, "first", 0, TotalsKnown(2, 5), done("a", 2)))
    events.receive(message(1, "other", 0, TotalsKnown(1, 4), done("c", 4)))
    events.receive(message(0, "rerun", 0, TotalsKnown(2, 5), FileSkipped("a", "p/a", "unchanged", 2)))
    outcomes = [
        ShardOutcome(0, "rerun", 2, UploadResult(uploaded=1, skipped=1, retries=2, peak_requests=3)),
        ShardOutcome(1, "other", 1, UploadResult(uploaded=1, peak_requests=5)),
    ]
    # The rerun's last batch trails its result: drain waits for it.
    asyncio.get_running_loop().call_soon(events.receive, message(0, "rerun", 1, done("b", 3)))
    await events.drain(outcomes)
    report = tmp_path / "merged.jsonl"

    result = events.merge(outcomes, report)

    assert [e.files for e in seen if isinstance(e, TotalsKnown)] == [2, 3, 3]  # the whole tree's, not a shard's
    assert sum(isinstance(e, FileDone) for e in seen) == 3
    assert (result.uploaded, result.skipped, result.failed, result.bytes_uploaded) == (3, 0, 0, 9)
    assert (result.retries, result.peak_requests) == (2, 5)
    lines = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    assert sorted((line["path"], line["status"]) for line in lines[:-1]) == [
        ("a", "uploaded"),
        ("b", "uploaded"),
        ("c", "uploaded"),
    ]
    assert lines[-1]["summary"]["interrupted"] is False


def test_an_on_event_that_raises_is_kept_for_the_run_to_raise(tmp_path: Path) -> None:
    def broken(event: Event) -> None:
        raise ValueError("display broke")

    events = ShardEvents(2, tmp_path, broken)
    events.receive(message(0, "a", 0, done("a"), done("b")))
    assert isinstance(events.error, ValueError)
    events.merge([], None)


def test_what_makes_a_distributed_run_impossible_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="--shards N"):
        check_options(make_config(tmp_path, "s3://bucket", shard="0/2"), None)
    with pytest.raises(ConfigError, match="--shards must be at least 1"):
        check_options(make_config(tmp_path, "s3://bucket"), 0)
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r"async-uploader\[dask\]"):
        check_options(make_config(tmp_path, "s3://bucket"), None)


def test_a_shard_never_heard_of_leaves_the_merged_report_interrupted(tmp_path: Path) -> None:
    events = ShardEvents(2, tmp_path, None)
    events.receive(message(0, "a", 0, done("a")))
    report = tmp_path / "merged.jsonl"
    result = events.merge([ShardOutcome(0, "a", 1, UploadResult(uploaded=1))], report)
    assert result.uploaded == 1
    assert json.loads(report.read_text(encoding="utf-8").splitlines()[-1])["summary"]["interrupted"] is True


class FakeFuture:
    """What ``collect_outcomes`` reads of a ``distributed.Future`` once it is done."""

    def __init__(self, status: str, value: Any = None) -> None:
        self.status = status
        self._value = value

    def result(self) -> Any:
        return self._value

    def exception(self) -> BaseException | None:
        return self._value if isinstance(self._value, BaseException) else None


def test_shards_that_did_not_finish_are_named_with_their_reason() -> None:
    finished = ShardOutcome(0, "a", 1, UploadResult(uploaded=1))
    futures = [
        FakeFuture("finished", finished),
        FakeFuture("error", RuntimeError("Attempted to run task on 4 workers, each died")),
        FakeFuture("finished", ShardOutcome(2, "c", 0, None)),  # stopped by the client
        FakeFuture("cancelled"),
    ]
    outcomes, failures = collect_outcomes(futures)  # type: ignore[arg-type]
    assert outcomes == [finished]
    assert failures == [
        (1, "RuntimeError: Attempted to run task on 4 workers, each died"),
        (2, "stopped"),
        (3, "cancelled"),
    ]


async def test_a_report_that_cannot_be_written_is_refused_before_the_cluster_is_asked(tmp_path: Path) -> None:
    config = make_config(tmp_path, "s3://bucket", report=tmp_path / "missing-dir" / "report.jsonl")
    with pytest.raises(ConfigError, match="cannot write report"):
        await run_distributed(config, scheduler="tcp://127.0.0.1:1")  # nothing listens there: never reached
