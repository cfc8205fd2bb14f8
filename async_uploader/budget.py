"""``ByteBudget``: a cap on the bytes held in memory by part and file bodies in flight.

Concurrency alone does not bound memory (64 slots of 64 MiB parts is 4 GiB), so every body draws its size from
one budget before it is read and gives it back when its request is done. A request waits rather than
allocating. Waiters are served first come, first served, so a large part is not starved by a stream of small
files.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel


class _Waiter:
    __slots__ = ("amount", "event")

    def __init__(self, amount: int) -> None:
        self.amount = amount
        self.event = anyio.Event()


class ByteBudget:
    """A counting semaphore over bytes, FIFO-fair and safe to cancel while waiting."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._available = capacity
        self._waiters: deque[_Waiter] = deque()
        self.peak_used = 0
        """The most bytes ever held at once: the instrument behind the flat-memory claim."""

    @property
    def available(self) -> int:
        return self._available

    def try_acquire(self, amount: int) -> int | None:
        """Take ``amount`` bytes (clamped as by ``acquire``) if they are free now, with no one waiting ahead; what
        was taken, or ``None``. No await, so nothing to cancel."""
        amount = min(max(amount, 0), self.capacity)
        if self._waiters or amount > self._available:
            return None
        self._available -= amount
        used = self.capacity - self._available
        if used > self.peak_used:
            self.peak_used = used
        return amount

    async def acquire(self, amount: int) -> int:
        """Take ``amount`` bytes (at most the whole capacity) and return what was taken, to give back later."""
        amount = min(max(amount, 0), self.capacity)
        if not self._waiters and amount <= self._available:
            # Cancellation may only strike before the bytes are taken, as in anyio's own Semaphore. Uncontended,
            # the bytes are taken without yielding to the loop (see ``AdaptiveLimit.acquire``).
            await anyio.lowlevel.checkpoint_if_cancelled()
            taken = self.try_acquire(amount)
            if taken is not None:
                return taken
        waiter = _Waiter(amount)
        self._waiters.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.event.is_set():
                self.release(amount)  # granted just as we were cancelled: give it back
            else:
                self._waiters.remove(waiter)
                self._grant()  # we may have been blocking smaller waiters behind us
            raise
        return amount

    def release(self, amount: int) -> None:
        self._available += amount
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self._waiters[0].amount <= self._available:
            waiter = self._waiters.popleft()
            self._available -= waiter.amount
            self.peak_used = max(self.peak_used, self.capacity - self._available)
            waiter.event.set()

    @asynccontextmanager
    async def reserve(self, amount: int) -> AsyncIterator[int]:
        taken = await self.acquire(amount)
        try:
            yield taken
        finally:
            self.release(taken)
