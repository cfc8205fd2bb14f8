"""File- and part-level retries: exponential backoff with full jitter, within a deadline per file.

botocore already retries a request once or twice; this layer sits above it, because only here can a retry
re-read the bytes from disk (a part whose body was damaged in transit), and only here does the run learn that
the store is throttling, so it can lower its concurrency. Clock, sleep and randomness are injected so the
schedule is tested without waiting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

import anyio

from ..config import DEFAULT_ATTEMPTS, DEFAULT_DEADLINE_S
from ..errors import FileError, StoreError, VerificationError

BASE_DELAY_S: Final = 0.25
MAX_DELAY_S: Final = 30.0

T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    """Worth another try: a transient store error, or a body the store saw damaged (re-read from disk)."""
    if isinstance(exc, StoreError):
        return exc.retryable
    return isinstance(exc, VerificationError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to keep trying one file (and each of its parts)."""

    attempts: int = DEFAULT_ATTEMPTS
    deadline_s: float = DEFAULT_DEADLINE_S
    base_delay_s: float = BASE_DELAY_S
    max_delay_s: float = MAX_DELAY_S
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    sleep: Callable[[float], Awaitable[None]] = field(default=anyio.sleep, compare=False)
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)], so retrying clients spread out."""
        return self.rng.uniform(0.0, min(self.max_delay_s, self.base_delay_s * 2.0 ** min(attempt, 64)))

    def deadline(self) -> float:
        return self.clock() + self.deadline_s

    async def call(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        deadline: float,
        on_retry: Callable[[FileError], None] | None = None,
    ) -> T:
        """Await ``operation()`` until it succeeds, a non-retryable error, the last attempt or the deadline."""
        attempt = 0
        while True:
            try:
                return await operation()
            except FileError as exc:
                if not is_retryable(exc) or attempt + 1 >= self.attempts:
                    raise
                pause = self.delay(attempt)
                if self.clock() + pause > deadline:
                    raise
                if on_retry is not None:
                    on_retry(exc)
                await self.sleep(pause)
                attempt += 1
