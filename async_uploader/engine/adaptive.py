"""``AdaptiveLimit``: the run's concurrency, lowered when the store says slow down, raised as it recovers.

Additive increase, multiplicative decrease (as TCP does): a throttled request halves the limit (at most once a
second, so a burst of 503s from one moment counts once), and every ``limit`` successes in a row add one slot back,
up to the configured maximum. Requests in flight are never interrupted; new ones wait while the limit is below
what is in use. The same limit serves ``--max-cpu``: a governor samples the process's CPU time and lowers the
limit while the process runs above its ceiling.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Final

import anyio
import anyio.lowlevel

DECREASE_COOLDOWN_S: Final = 1.0
CPU_SAMPLE_INTERVAL_S: Final = 0.5


class AdaptiveLimit:
    """A FIFO semaphore whose size moves between 1 and ``maximum``."""

    def __init__(self, maximum: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.maximum = maximum
        self.limit = maximum
        self.in_use = 0
        self.lowest = maximum
        self.peak_in_use = 0
        self._clock = clock
        self._last_decrease = float("-inf")
        self._successes = 0
        self._waiters: deque[anyio.Event] = deque()

    def try_acquire(self) -> bool:
        """Take a slot if one is free now, with no one waiting ahead: no await, so nothing to cancel."""
        if self._waiters or self.in_use >= self.limit:
            return False
        self.in_use += 1
        if self.in_use > self.peak_in_use:
            self.peak_in_use = self.in_use
        return True

    async def acquire(self) -> None:
        if not self._waiters and self.in_use < self.limit:
            # Uncontended (nearly always): a slot is taken without yielding to the loop. A scheduling point here
            # costs two loop turns and a cancel scope per request; the request that follows yields anyway.
            await anyio.lowlevel.checkpoint_if_cancelled()
            if self.try_acquire():
                return
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                self.release()  # granted as we were cancelled: hand the slot on
            else:
                self._waiters.remove(event)
            raise

    def release(self) -> None:
        self.in_use -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_use < self.limit:
            self.in_use += 1
            self.peak_in_use = max(self.peak_in_use, self.in_use)
            self._waiters.popleft().set()

    async def __aenter__(self) -> AdaptiveLimit:
        await self.acquire()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def decrease(self) -> None:
        """The store (or the CPU governor) asked for less: halve the limit, once per cooldown."""
        now = self._clock()
        if now - self._last_decrease < DECREASE_COOLDOWN_S:
            return
        self._last_decrease = now
        self.limit = max(1, self.limit // 2)
        self.lowest = min(self.lowest, self.limit)
        self._successes = 0

    def succeeded(self) -> None:
        """A request went through: after ``limit`` of them in a row, one more slot."""
        if self.limit >= self.maximum:
            return
        self._successes += 1
        if self._successes >= self.limit:
            self._successes = 0
            self.limit += 1
            self._wake()


def process_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


async def govern_cpu(
    limit: AdaptiveLimit,
    ceiling_percent: float,
    *,
    cpu_seconds: Callable[[], float] = process_cpu_seconds,
    clock: Callable[[], float] = time.monotonic,
    interval_s: float = CPU_SAMPLE_INTERVAL_S,
) -> None:
    """Until cancelled: lower ``limit`` whenever this process used more than ``ceiling_percent`` of one core.

    Raising it again is left to ``succeeded``; the governor only ever pushes down, once per interval.
    """
    last_cpu, last_wall = cpu_seconds(), clock()
    while True:
        await anyio.sleep(interval_s)
        cpu, wall = cpu_seconds(), clock()
        if wall > last_wall and 100.0 * (cpu - last_cpu) / (wall - last_wall) > ceiling_percent:
            limit.decrease()
        last_cpu, last_wall = cpu, wall
