"""Tests for ``async_uploader.cluster_worker``'s pure parts: events on the wire, and their batching."""

from __future__ import annotations

import pytest

from async_uploader.cluster_worker import EventBatcher, decode_event, encode_event
from async_uploader.events import (
    Event,
    FileDone,
    FileFailed,
    FileNotStarted,
    FilePlanned,
    FileRetried,
    FileSkipped,
    FileStarted,
    PartDone,
    PhaseStarted,
    RunFinished,
    TotalsKnown,
    UploadResult,
)

msgpack = pytest.importorskip("msgpack")

ODD = "caf\udce9/r\u00e9sum\u00e9.txt"  # a Latin-1 name (surrogate escape) under a UTF-8 one
EVENTS: list[Event] = [
    TotalsKnown(3, 20),
    FileStarted(ODD, f"p/{ODD}", 12, 3),
    PartDone(ODD, 2, 5),
    FileDone(ODD, f"p/{ODD}", 12, '"abc-3"', "AAAAAA==", 3, 0.25, resumed_parts=1),
    FileFailed("b", "p/b", "cannot read file: Permission denied", 4),
    FileFailed("unlistable", None, "cannot list"),
    FileSkipped("c", "p/c", "unchanged", 4),
    FileSkipped("fifo", None, "a FIFO, not a regular file"),
    FilePlanned("d", "p/d", 1, 1),
    FileRetried("e", "503 SlowDown"),
    FileNotStarted(ODD, 12, in_flight=True),
    PhaseStarted("listing the destination"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_crosses_the_wire_unchanged(event: Event) -> None:
    wire = msgpack.unpackb(msgpack.packb(encode_event(event)))  # as the scheduler carries it
    assert decode_event(wire) == event


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_events_go_in_batches_by_time_and_by_count_and_the_result_stays_behind() -> None:
    sent: list[tuple[int, list[Event]]] = []
    clock = Clock()
    batcher = EventBatcher(
        lambda seq, batch: sent.append((seq, [decode_event(item) for item in batch])),
        interval_s=0.5,
        max_events=3,
        clock=clock,
    )
    batcher.add(EVENTS[0])
    batcher.add(EVENTS[1])
    assert sent == []  # neither due nor full
    clock.now += 0.5
    batcher.add(EVENTS[2])  # due
    batcher.add(RunFinished(UploadResult()))
    for event in EVENTS[3:6]:
        batcher.add(event)  # full at the third
    batcher.add(EVENTS[6])
    batcher.flush_if_due()  # not due yet
    assert sent == [(0, EVENTS[0:3]), (1, EVENTS[3:6])]
    clock.now += 0.6
    batcher.flush_if_due()
    batcher.flush()  # nothing left: no empty batch
    assert sent[2:] == [(2, [EVENTS[6]])]
    assert batcher.batches_sent == 3
