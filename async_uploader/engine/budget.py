"""``ByteBudget``: a cap on the bytes held in memory by part and file bodies in flight.

Concurrency alone does not bound memory (64 slots of 64 MiB parts is 4 GiB), so every body draws its size from
one budget before it is read and gives it back when its request is done. A request waits rather than
allocating. Waiters are served first come, first served, so a large part is not starved by a stream of small
files.

A finished part's body can be given back with its bytes and kept as a spare for the next part of the same size:
a fresh 8 MiB buffer costs the kernel 2,048 page faults to map and zero, more CPU than the part's CRC. Spares
live inside the budget: their bytes count as free, and they are dropped as soon as
the free bytes would no longer cover them, so what is held never exceeds the capacity.
"""

from __future__ import annotations

from collections import deque

import anyio
import anyio.lowlevel

from ..providers.base import Body


class _Waiter:
    __slots__ = ("amount", "body", "event", "wants_body")

    def __init__(self, amount: int, wants_body: bool = False) -> None:
        self.amount = amount
        self.wants_body = wants_body
        self.body: Body | None = None
        """A spare handed over with the bytes, for a waiter that wants one."""
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
        self._spares: list[tuple[Body, int]] = []
        self._spare_bytes = 0

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
        if self._spare_bytes > self._available:
            self._trim()
        return amount

    async def acquire(self, amount: int) -> int:
        """Take ``amount`` bytes (at most the whole capacity) and return what was taken, to give back later."""
        return (await self._acquire(amount, wants_body=False))[0]

    async def acquire_body(self, amount: int) -> tuple[int, Body | None]:
        """``acquire``, and a spare body of exactly ``amount`` bytes to read into, if one is kept. The spare goes
        with the bytes: taken after them, it would already be dropped as no longer covered by a full budget."""
        return await self._acquire(amount, wants_body=True)

    async def _acquire(self, amount: int, *, wants_body: bool) -> tuple[int, Body | None]:
        amount = min(max(amount, 0), self.capacity)
        if not self._waiters and amount <= self._available:
            # Cancellation may only strike before the bytes are taken, as in anyio's own Semaphore. Uncontended,
            # the bytes are taken without yielding to the loop (see ``AdaptiveLimit.acquire``).
            await anyio.lowlevel.checkpoint_if_cancelled()
            body = self._take_spare(amount) if wants_body else None
            taken = self.try_acquire(amount)
            if taken is not None:
                return taken, body
        waiter = _Waiter(amount, wants_body)
        self._waiters.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.event.is_set():
                self.release(amount, waiter.body)  # granted just as we were cancelled: give it back
            else:
                self._waiters.remove(waiter)
                self._grant()  # we may have been blocking smaller waiters behind us
            raise
        return amount, waiter.body

    def _take_spare(self, amount: int) -> Body | None:
        for index in range(len(self._spares) - 1, -1, -1):
            body, size = self._spares[index]
            if size == amount:
                del self._spares[index]
                self._spare_bytes -= size
                return body
        return None

    def release(self, amount: int, body: Body | None = None) -> None:
        """Give ``amount`` bytes back; with the ``body`` that held exactly them, keep it as a spare unless
        something may still use its buffer: an exported buffer cannot be resized, which ``truncate`` checks
        (one still shared through ``getvalue`` is copied by ``BytesIO`` itself before it is written to)."""
        self._available += amount
        if body is not None and amount > 0:
            try:
                kept = body.seek(0, 2) == amount and body.truncate(amount) == amount
            except (BufferError, ValueError):  # exported, or closed
                kept = False
            if kept:
                self._spares.append((body, amount))
                self._spare_bytes += amount
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self._waiters[0].amount <= self._available:
            waiter = self._waiters.popleft()
            if waiter.wants_body:
                waiter.body = self._take_spare(waiter.amount)
            self._available -= waiter.amount
            self.peak_used = max(self.peak_used, self.capacity - self._available)
            waiter.event.set()
        self._trim()

    def _trim(self) -> None:
        """Drop the oldest spares until the free bytes cover the rest."""
        dropped = 0
        while self._spare_bytes > self._available:
            self._spare_bytes -= self._spares[dropped][1]
            dropped += 1
        del self._spares[:dropped]
