"""``Limits``: what every request of a run shares, and the two ways a request goes through them.

A request holds one of the adaptive concurrency's slots (files and parts alike), a request with a body also holds
its bytes in the memory budget and waits for the bandwidth cap; a transient failure is retried by the run's
policy, and a throttled one also lowers the concurrency.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ..errors import FileError, StoreError
from .adaptive import AdaptiveLimit
from .budget import ByteBudget
from .retry import RetryPolicy
from .throttle import TokenBucket

T = TypeVar("T")
RetryNote = Callable[[FileError], None]
"""Told of each error that is about to be retried (the engine turns it into a ``FileRetried`` event)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What every request shares: the adaptive concurrency (files and parts alike), the memory budget, the
    bandwidth cap and the retry policy."""

    slots: AdaptiveLimit
    budget: ByteBudget
    bandwidth: TokenBucket | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def note_retries(self, on_retry: RetryNote | None) -> RetryNote:
        """``on_retry``, after lowering the concurrency if the store asked to slow down."""

        def note(exc: FileError) -> None:
            if isinstance(exc, StoreError) and exc.throttled:
                self.slots.decrease()
            if on_retry is not None:
                on_retry(exc)

        return note

    async def request(self, call: Callable[[], Awaitable[T]], *, deadline: float, on_retry: RetryNote | None) -> T:
        """A request without a body, under a slot, retried by the policy."""

        async def once() -> T:
            async with self.slots:
                result = await call()
            self.slots.succeeded()
            return result

        return await self.retry.call(once, deadline=deadline, on_retry=self.note_retries(on_retry))

    async def send_body(
        self, size: int, send: Callable[[], Awaitable[T]], *, deadline: float, on_retry: RetryNote | None
    ) -> T:
        """A request with a body read inside ``send``: slot, then bytes from the budget, then the bandwidth."""

        slots, budget, bandwidth = self.slots, self.budget, self.bandwidth

        async def once() -> T:
            # Spelled out rather than as context managers: this runs for every small file, and a generator-based
            # context manager costs more than the rest of the bookkeeping together. Free slots and bytes are taken
            # without an await (the cancellation check of ``acquire`` costs system calls); ``send`` awaits at
            # once, which is where a cancelled request stops.
            if not slots.try_acquire():
                await slots.acquire()
            try:
                taken = budget.try_acquire(size)
                if taken is None:
                    taken = await budget.acquire(size)
                try:
                    if bandwidth is not None:
                        await bandwidth.consume(size)
                    result = await send()
                finally:
                    budget.release(taken)
            finally:
                slots.release()
            slots.succeeded()
            return result

        return await self.retry.call(once, deadline=deadline, on_retry=self.note_retries(on_retry))
