"""``Handout``: the walk's batches handed to the workers an item at a time, and what was not handed out yet.

A run cut short (Ctrl-C, SIGTERM, a run-level error) must say which files it never started, so that the report
lists them and ``--retry-failed`` takes them again; keeping a record per file for that would cost memory that
grows with the tree. The walk is a deterministic sequence, and the workers take it in order, so what was never
started is exactly: the files in the workers' hands, the queue, the rest of the batch being handed out, and the
rest of the walk (walked on after the cut, on the disk only, no request).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..source.scan import ScanItem


class Handout:
    """Takes the walk a batch at a time (``take_batch``, blocking: run it in a thread) and remembers the batch
    being handed out (``held``) and how far (``position``); ``remaining`` yields the rest, batch by batch."""

    __slots__ = ("_batches", "held", "position")

    def __init__(self, batches: Iterator[list[ScanItem]]) -> None:
        self._batches = batches
        self.held: list[ScanItem] = []
        self.position = 0
        """Index in ``held`` of the next item to hand out; items before it are in the queue or a worker's hands."""

    def take_batch(self) -> bool:
        """Hold the walk's next batch; ``False`` at its end. Blocking (the walk stats in the calling thread). The
        batch is kept before returning, so a caller cancelled while it waited loses nothing."""
        batch = next(self._batches, None)
        self.held, self.position = (batch, 0) if batch is not None else ([], 0)
        return batch is not None

    def take_remaining(self) -> list[ScanItem] | None:
        """The items not handed out yet, a batch per call (blocking: walks on); ``None`` once there are none."""
        rest = self.held[self.position :]
        self.held, self.position = [], 0
        if rest:
            return rest
        return next(self._batches, None)

    def close(self) -> None:
        """Stop the walk (its open directory handles) if it did not end."""
        close = getattr(self._batches, "close", None)
        if close is not None:
            close()
