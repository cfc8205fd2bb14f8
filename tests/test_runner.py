"""Tests for ``async_uploader.runner.run`` against an in-memory store: the preflight, ``--retry-failed``'s paths,
the one tally, and the last event (and report summary) of every run, finished or cut short."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from async_uploader.config import MIB
from async_uploader.errors import BucketError, ConfigError, CredentialsError
from async_uploader.events import (
    Event,
    FileDone,
    FileFailed,
    FileNotStarted,
    PartDone,
    PhaseStarted,
    RunFinished,
    TotalsKnown,
)
from async_uploader.options import make_config
from async_uploader.providers.base import ObjectHeaders
from async_uploader.runner import PREFLIGHT_KEY_NAME, run
from tests.memory_store import MemoryStore
from tests.trees import make_tree, random_bytes

PART = 5 * MIB


def config_for(source: Path, **options: Any):  # type: ignore[no-untyped-def]
    defaults: dict[str, Any] = {"part_size": PART, "multipart_threshold": PART, "use_state": False}
    defaults.update(options)
    return make_config(source, "s3://bucket/pre", **defaults)


def summary(report: Path) -> dict[str, Any]:
    last = json.loads(report.read_text().splitlines()[-1])
    assert "summary" in last, last
    return dict(last["summary"])


async def test_a_finished_run_ends_with_its_result_in_the_last_event_and_the_report(tmp_path: Path) -> None:
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"alpha", "b/c.txt": b"gamma"})
    report = tmp_path / "report.jsonl"
    events: list[Event] = []

    result = await run(config_for(source, report=report), MemoryStore(), events.append)

    assert (result.uploaded, result.bytes_uploaded, result.failed) == (2, 10, 0)
    assert events[-1] == RunFinished(result)
    assert [e for e in events if isinstance(e, RunFinished)] == [events[-1]]
    assert summary(report) == {
        "uploaded": 2,
        "skipped": 0,
        "failed": 0,
        "not_started": 0,
        "bytes_uploaded": 10,
        "bytes_resumed": 0,
        "elapsed_s": round(result.elapsed_s, 3),
        "checked_by_size": 0,
        "deleted": 0,
        "delete_failed": 0,
        "would_delete": 0,
        "interrupted": False,
        "source": str(source.resolve()),
    }


async def test_a_cancelled_run_still_ends_with_what_it_did_marked_interrupted(tmp_path: Path) -> None:
    source = tmp_path / "src"
    make_tree(source, {"small.txt": b"done first", "big.bin": random_bytes(4 * PART, seed=1)})
    report = tmp_path / "report.jsonl"
    store = MemoryStore()
    events: list[Event] = []
    part_landed = anyio.Event()

    def on_event(event: Event) -> None:
        events.append(event)
        if isinstance(event, PartDone):
            part_landed.set()

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(run, config_for(source, report=report, concurrency=1), store, on_event)
            await part_landed.wait()
            scope.cancel()

    assert scope.cancelled_caught
    last = events[-1]
    assert isinstance(last, RunFinished)
    assert last.interrupted
    uploaded = sum(isinstance(e, FileDone) for e in events)
    assert last.result.uploaded == uploaded
    assert summary(report)["interrupted"] is True
    assert summary(report)["uploaded"] == uploaded
    assert store.uploads == {}  # the multipart upload in flight was aborted


async def test_a_run_level_error_is_raised_bare_after_an_interrupted_last_event(tmp_path: Path) -> None:
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"alpha"})
    report = tmp_path / "report.jsonl"
    events: list[Event] = []

    with pytest.raises(BucketError, match="cannot write"):
        await run(config_for(source, report=report), MemoryStore(read_only=True), events.append)

    assert events[-1] == RunFinished(events[-1].result, interrupted=True)  # type: ignore[union-attr]
    assert summary(report)["interrupted"] is True


async def test_the_preflight_reads_then_proves_write_access_with_a_probe_under_the_prefix(tmp_path: Path) -> None:
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"alpha"})
    store = MemoryStore()
    asked: list[str] = []
    store.before_request = asked.append

    await run(config_for(source), store)

    assert asked[0] == ""  # check_readable, before anything is walked
    [probe] = [key for key in asked if PREFLIGHT_KEY_NAME in key]
    assert probe.startswith(f"pre/{PREFLIGHT_KEY_NAME}")
    assert asked.index(probe) < asked.index("pre/a.txt")  # write access proven before the first upload
    assert store.probes == 1


async def test_a_destination_that_cannot_be_read_fails_before_anything_is_walked(tmp_path: Path) -> None:
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"alpha"})
    report = tmp_path / "report.jsonl"
    store = MemoryStore()

    def refuse(key: str) -> None:
        raise CredentialsError("no credentials")

    store.before_request = refuse
    events: list[Event] = []

    with pytest.raises(CredentialsError):
        await run(config_for(source, report=report), store, events.append)

    assert events == [PhaseStarted("checking the bucket"), RunFinished(events[-1].result, interrupted=True)]  # type: ignore[union-attr]
    assert events[-1].result.uploaded == 0  # type: ignore[union-attr]
    assert summary(report)["interrupted"] is True


async def test_retry_failed_uploads_only_the_paths_the_earlier_report_lists_as_failed(tmp_path: Path) -> None:
    source = tmp_path / "src"
    make_tree(source, {"ok.txt": b"ok", "again.txt": b"again", "sub/too.txt": b"too", "other.txt": b"x"})
    earlier = tmp_path / "earlier.jsonl"
    records = [
        {"path": "ok.txt", "status": "uploaded"},
        {"path": "again.txt", "status": "failed", "error": "boom"},
        {"path": "sub/too.txt", "status": "failed", "error": "boom"},
    ]
    earlier.write_text("".join(json.dumps(r) + "\n" for r in records))
    store = MemoryStore()
    events: list[Event] = []

    result = await run(config_for(source, retry_failed=earlier), store, events.append)

    assert result.uploaded == 2
    assert sorted(store.objects) == ["pre/again.txt", "pre/sub/too.txt"]
    assert [e for e in events if isinstance(e, TotalsKnown)] == [TotalsKnown(2, 0)]


async def test_an_unreadable_earlier_report_is_refused_before_any_request(tmp_path: Path) -> None:
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"alpha"})
    store = MemoryStore()

    with pytest.raises(ConfigError, match="cannot read report"):
        await run(config_for(source, retry_failed=tmp_path / "missing.jsonl"), store)

    assert store.requests == 0


async def test_a_dry_run_needs_no_store_and_sends_nothing(tmp_path: Path) -> None:
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"alpha", "big.bin": random_bytes(PART + 1, seed=2)})
    events: list[Event] = []

    result = await run(config_for(source, dry_run=True), None, events.append)

    assert (result.planned, result.bytes_planned, result.uploaded) == (2, PART + 6, 0)
    assert events[-1] == RunFinished(result)


async def test_a_subscriber_failing_on_the_last_event_of_a_cut_short_run_does_not_hide_why_it_ended(
    tmp_path: Path,
) -> None:
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"alpha"})

    def closed_stream(event: Event) -> None:  # as Uploader.events()' stream once its consumer has gone
        if isinstance(event, RunFinished):
            raise anyio.BrokenResourceError

    with pytest.raises(BucketError):
        await run(config_for(source), MemoryStore(read_only=True), closed_stream)


async def test_files_that_fail_are_in_the_result_not_raised(tmp_path: Path) -> None:
    source = tmp_path / "src"
    make_tree(source, {"good.txt": b"good", "bad.txt": b"bad"})
    store = MemoryStore(fail_keys={"pre/bad.txt"})
    events: list[Event] = []

    result = await run(config_for(source), store, events.append)

    assert (result.uploaded, result.failed) == (1, 1)
    assert [e.path for e in events if isinstance(e, FileFailed)] == ["bad.txt"]
    assert result.failures == (("bad.txt", "PutObject failed: injected failure for pre/bad.txt"),)
    assert events[-1] == RunFinished(result)


async def test_a_subscriber_that_raises_fails_no_file_and_its_error_ends_the_finished_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "src"
    make_tree(source, {f"f{i}.txt": b"x" * i for i in range(5)})
    report = tmp_path / "report.jsonl"
    store = MemoryStore()
    seen: list[Event] = []

    def broken_display(event: Event) -> None:
        seen.append(event)
        if isinstance(event, FileDone):
            raise UnicodeEncodeError("charmap", "\u65e5", 0, 1, "character maps to <undefined>")

    with pytest.raises(UnicodeEncodeError):
        await run(config_for(source, report=report), store, broken_display)

    assert sorted(store.objects) == [f"pre/f{i}.txt" for i in range(5)]  # every file still uploaded
    assert [type(e) for e in seen if isinstance(e, FileDone | FileFailed)] == [FileDone]  # then no more events
    records = [json.loads(line) for line in report.read_text().splitlines()]
    assert sorted(r["status"] for r in records if "path" in r) == ["uploaded"] * 5
    assert summary(report)["failed"] == 0
    assert len([r for r in caplog.records if "on_event raised" in r.message]) == 1  # logged once


def records(report: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in report.read_text().splitlines() if '"summary"' not in line[:12]]


async def cancel_after_first_part(source: Path, report: Path, store: MemoryStore, **options: Any) -> list[Event]:
    events: list[Event] = []
    part_landed = anyio.Event()

    def on_event(event: Event) -> None:
        events.append(event)
        if isinstance(event, PartDone):
            part_landed.set()

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(run, config_for(source, report=report, **options), store, on_event)
            await part_landed.wait()
            scope.cancel()
    return events


async def test_a_cancelled_run_lists_every_file_it_did_not_upload_as_not_started(tmp_path: Path) -> None:
    source = tmp_path / "src"
    tree = {f"d{i % 3}/f{i:03d}.txt": b"x" * i for i in range(40)}
    make_tree(source, {"0-big.bin": random_bytes(4 * PART, seed=1), **tree})
    report = tmp_path / "report.jsonl"

    events = await cancel_after_first_part(source, report, MemoryStore(), concurrency=1)

    by_path = {record["path"]: record for record in records(report)}
    assert sorted(by_path) == sorted(["0-big.bin", *tree])  # every file once: done, or not started
    assert by_path["0-big.bin"]["status"] == "not_started"
    assert by_path["0-big.bin"]["reason"] == "interrupted mid-upload"
    not_started = [r for r in by_path.values() if r["status"] == "not_started"]
    assert {r["reason"] for r in not_started} <= {"interrupted mid-upload", "interrupted before it started"}
    last = events[-1]
    assert isinstance(last, RunFinished)
    assert last.interrupted
    assert last.result.not_started == len(not_started) == sum(isinstance(e, FileNotStarted) for e in events)
    assert summary(report)["not_started"] == len(not_started)
    assert last.result.uploaded + last.result.not_started == 41


async def test_a_run_level_error_lists_the_files_as_not_started_and_retry_failed_takes_them(tmp_path: Path) -> None:
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"alpha", "b/c.txt": b"gamma"})
    report = tmp_path / "report.jsonl"
    with pytest.raises(BucketError):
        await run(config_for(source, report=report), MemoryStore(read_only=True))
    assert sorted((r["path"], r["status"]) for r in records(report)) == [
        ("a.txt", "not_started"),
        ("b/c.txt", "not_started"),
    ]

    store = MemoryStore()
    result = await run(config_for(source, retry_failed=report, report=tmp_path / "again.jsonl"), store)
    assert (result.uploaded, result.failed, result.not_started) == (2, 0, 0)


async def test_retry_failed_refuses_the_report_of_another_source(tmp_path: Path) -> None:
    make_tree(tmp_path / "one", {"a.txt": b"alpha"})
    make_tree(tmp_path / "two", {"a.txt": b"alpha"})
    report = tmp_path / "report.jsonl"
    await run(config_for(tmp_path / "one", report=report), MemoryStore())
    again = tmp_path / "again.jsonl"
    with pytest.raises(ConfigError, match=r"is the report of .*/one, not of .*/two"):
        await run(config_for(tmp_path / "two", retry_failed=report, report=again), MemoryStore())
    assert not again.exists()  # refused before the new report was opened


async def test_the_store_is_handed_the_runs_secrets_before_its_first_request(tmp_path: Path) -> None:
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"a"})
    key_file = tmp_path / "key"
    key_file.write_bytes(bytes(range(32)))
    guarded: list[tuple[bytes | None, int]] = []

    class Guarded(MemoryStore):
        def guard_secrets(self, headers: ObjectHeaders) -> None:
            guarded.append((headers.sse_c_key, self.requests))

    result = await run(config_for(source, sse_c_key_file=key_file), Guarded(), None)
    assert result.uploaded == 1
    assert guarded == [(bytes(range(32)), 0)]
