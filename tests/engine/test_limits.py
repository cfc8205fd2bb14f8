"""Tests for ``async_uploader.engine.limits.Limits``: what a request holds while it runs, what it gives back however
it ends, and how a throttled store lowers the run's concurrency. Retries run on virtual time (no real pause)."""

from __future__ import annotations

import pytest

from async_uploader.engine.adaptive import AdaptiveLimit
from async_uploader.engine.budget import ByteBudget
from async_uploader.engine.limits import Limits
from async_uploader.engine.retry import RetryPolicy
from async_uploader.engine.throttle import TokenBucket
from async_uploader.errors import FileError, StoreError

CONCURRENCY = 8
CAPACITY = 100


class FakeTime:
    """Virtual time: sleeping advances the clock by the delay and records it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay


def make_limits(fake: FakeTime, *, bandwidth: TokenBucket | None = None, attempts: int = 5) -> Limits:
    retry = RetryPolicy(attempts=attempts, deadline_s=1000.0, clock=fake.clock, sleep=fake.sleep)
    return Limits(AdaptiveLimit(CONCURRENCY), ByteBudget(CAPACITY), bandwidth, retry)


async def test_a_body_holds_a_slot_and_its_bytes_while_it_is_sent_and_gives_both_back() -> None:
    fake = FakeTime()
    limits = make_limits(fake)
    held: list[tuple[int, int]] = []

    async def send() -> str:
        held.append((limits.slots.in_use, limits.budget.available))
        return "etag"

    assert await limits.send_body(30, send, deadline=fake.now + 60, on_retry=None) == "etag"
    assert held == [(1, CAPACITY - 30)]
    assert (limits.slots.in_use, limits.budget.available) == (0, CAPACITY)
    assert limits.budget.peak_used == 30


async def test_a_body_that_fails_for_good_gives_its_slot_and_bytes_back() -> None:
    fake = FakeTime()
    limits = make_limits(fake)

    async def send() -> str:
        raise StoreError("403 AccessDenied")

    with pytest.raises(StoreError, match="AccessDenied"):
        await limits.send_body(30, send, deadline=fake.now + 60, on_retry=None)
    assert (limits.slots.in_use, limits.budget.available) == (0, CAPACITY)
    assert fake.sleeps == []  # not retryable: no pause


async def test_a_throttled_request_halves_the_concurrency_and_is_tried_again() -> None:
    fake = FakeTime()
    limits = make_limits(fake)
    answers: list[BaseException | str] = [StoreError("503 SlowDown", throttled=True), "etag"]
    retried: list[FileError] = []

    async def call() -> str:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    assert await limits.request(call, deadline=fake.now + 60, on_retry=retried.append) == "etag"
    assert [str(exc) for exc in retried] == ["503 SlowDown"]
    assert limits.slots.limit == CONCURRENCY // 2
    assert limits.slots.in_use == 0
    assert len(fake.sleeps) == 1


async def test_a_transient_failure_is_retried_without_lowering_the_concurrency() -> None:
    fake = FakeTime()
    limits = make_limits(fake)
    failures = [StoreError("connection reset", retryable=True)]

    async def send() -> str:
        if failures:
            raise failures.pop()
        return "etag"

    assert await limits.send_body(10, send, deadline=fake.now + 60, on_retry=None) == "etag"
    assert limits.slots.limit == CONCURRENCY
    assert (limits.slots.in_use, limits.budget.available) == (0, CAPACITY)


async def test_every_body_pays_its_bytes_to_the_bandwidth_cap() -> None:
    fake = FakeTime()
    bucket = TokenBucket(100.0, burst_bytes=0.0, clock=fake.clock, sleep=fake.sleep)
    limits = make_limits(fake, bandwidth=bucket)

    async def send() -> None:
        return None

    for _ in range(3):
        await limits.send_body(50, send, deadline=fake.now + 60, on_retry=None)
    assert fake.now == pytest.approx(1.5)  # 150 bytes at 100 bytes per second
