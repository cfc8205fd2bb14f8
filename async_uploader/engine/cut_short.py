"""A run cut short (Ctrl-C, SIGTERM, a run-level error) still says what became of every file of the tree."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from ..events import EventHandler, FileFailed, FileNotStarted, FileSkipped
from ..source.scan import FileEntry, ScanItem, ScanSkipped
from .handout import Handout


async def report_not_started(
    emit: EventHandler,
    in_hand: Sequence[FileEntry | None],
    handout: Handout,
    queued: MemoryObjectReceiveStream[ScanItem],
) -> None:
    """A ``FileNotStarted`` for each file in a worker's hands, in the queue, or not yet walked (the walk goes on,
    on the disk only); what the walk passed over is reported as ever. The item being sent when the cut came may be
    both in the queue and in the batch: each is said once."""
    said: set[int] = set()
    for entry in in_hand:
        if entry is not None:
            said.add(id(entry))
            emit(FileNotStarted(entry.rel, entry.size, in_flight=True))
    while True:
        try:
            _not_started(emit, queued.receive_nowait(), said)
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            break
    while (batch := await anyio.to_thread.run_sync(handout.take_remaining)) is not None:
        for item in batch:
            _not_started(emit, item, said)


def _not_started(emit: EventHandler, item: ScanItem, said: set[int]) -> None:
    if id(item) in said:
        return
    if isinstance(item, FileEntry):
        emit(FileNotStarted(item.rel, item.size))
    elif isinstance(item, ScanSkipped):
        emit(FileSkipped(item.rel, None, item.reason))
    else:
        emit(FileFailed(item.rel, None, item.reason))
