"""Tests for ``async_uploader.engine.retry``: which errors are retried, the full-jitter backoff schedule, and
``RetryPolicy.call`` on virtual time (an injected clock and sleep), so no test waits for real."""

from __future__ import annotations

import random
import statistics
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from async_uploader.engine.retry import BASE_DELAY_S, MAX_DELAY_S, RetryPolicy, is_retryable
from async_uploader.errors import (
    FileChangedError,
    FileError,
    FileTooLargeError,
    InvalidKeyError,
    StoreError,
    VerificationError,
)


class FakeTime:
    """Virtual time for one task: sleeping advances the clock by the delay and records it."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay


class MaxJitter(random.Random):
    """Always draws the top of the range, so the schedule is the cap itself: 0.25, 0.5, 1, 2, ..."""

    def uniform(self, a: float, b: float) -> float:
        return b


class RecordingRandom(random.Random):
    """A seeded ``Random`` that remembers every pause it drew, including one the policy chose not to take."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.drawn: list[float] = []

    def uniform(self, a: float, b: float) -> float:
        value = super().uniform(a, b)
        self.drawn.append(value)
        return value


class Operation:
    """An upload attempt that fails with the given errors, in order, then returns ``result``; counts its calls."""

    def __init__(self, errors: list[BaseException], result: str = "etag", fake: FakeTime | None = None) -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0
        self.fake = fake
        self.took_s = 0.0

    async def __call__(self) -> str:
        self.calls += 1
        if self.fake is not None:
            self.fake.now += self.took_s
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def make_policy(fake: FakeTime, rng: random.Random | None = None, **kwargs: Any) -> RetryPolicy:
    return RetryPolicy(clock=fake.clock, sleep=fake.sleep, rng=rng or random.Random(1234), **kwargs)


def transient(count: int) -> list[BaseException]:
    return [StoreError(f"failure {n}", retryable=True) for n in range(1, count + 1)]


def cap(attempt: int, base: float = BASE_DELAY_S, maximum: float = MAX_DELAY_S) -> float:
    return min(maximum, base * 2**attempt)


# is_retryable


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (StoreError("connection reset", retryable=True), True),
        (StoreError("503 SlowDown", throttled=True), True),
        (StoreError("403 AccessDenied"), False),
        (VerificationError("part 3: checksum mismatch"), True),
        (FileChangedError("changed while read"), False),
        (InvalidKeyError("not UTF-8"), False),
        (FileTooLargeError("over 5TiB"), False),
        (OSError("disk gone"), False),
        (ValueError("a bug"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_is_retryable(error: BaseException, retryable: bool) -> None:
    assert is_retryable(error) is retryable


def test_a_throttled_store_error_is_marked_retryable() -> None:
    error = StoreError("503 SlowDown", throttled=True)
    assert error.retryable
    assert error.throttled


# RetryPolicy.delay


@given(seed=st.integers(0, 2**32), attempt=st.integers(0, 200))
def test_delay_is_within_zero_and_the_capped_exponential(seed: int, attempt: int) -> None:
    policy = RetryPolicy(rng=random.Random(seed))
    delay = policy.delay(attempt)
    assert delay >= 0.0
    assert delay <= cap(attempt)


@given(
    seed=st.integers(0, 2**32),
    attempt=st.integers(0, 60),
    base=st.floats(0.001, 5.0),
    maximum=st.floats(0.01, 120.0),
)
def test_delay_respects_a_configured_base_and_maximum(seed: int, attempt: int, base: float, maximum: float) -> None:
    policy = RetryPolicy(base_delay_s=base, max_delay_s=maximum, rng=random.Random(seed))
    delay = policy.delay(attempt)
    assert delay >= 0.0
    assert delay <= cap(attempt, base, maximum)


def test_delay_cap_doubles_each_attempt_until_the_maximum() -> None:
    policy = RetryPolicy(rng=MaxJitter())
    assert [policy.delay(attempt) for attempt in range(10)] == [0.25, 0.5, 1, 2, 4, 8, 16, 30, 30, 30]


@pytest.mark.parametrize("attempt", [8, 20, 99, 500, 1023])
def test_delay_cap_holds_for_large_attempts(attempt: int) -> None:
    rng = random.Random(7)
    policy = RetryPolicy(rng=rng)
    delays = [policy.delay(attempt) for _ in range(100)]
    assert max(delays) <= MAX_DELAY_S
    assert RetryPolicy(rng=MaxJitter()).delay(attempt) == MAX_DELAY_S


@pytest.mark.parametrize("attempt", [1024, 5000])
def test_delay_cap_holds_for_attempts_beyond_float_range(attempt: int) -> None:
    assert RetryPolicy(rng=MaxJitter()).delay(attempt) == MAX_DELAY_S


@pytest.mark.parametrize("attempt", [2, 12])
def test_full_jitter_spreads_delays_over_the_whole_range(attempt: int) -> None:
    top = cap(attempt)
    delays = [RetryPolicy(rng=random.Random(seed)).delay(attempt) for seed in range(300)]
    assert min(delays) < 0.05 * top
    assert max(delays) > 0.95 * top
    assert statistics.fmean(delays) > 0.4 * top
    assert statistics.fmean(delays) < 0.6 * top
    assert len(set(delays)) == len(delays)  # every client picks its own pause


def test_deadline_is_the_clock_plus_the_allowance() -> None:
    fake = FakeTime(now=100.0)
    assert make_policy(fake, deadline_s=5.0).deadline() == 105.0


# RetryPolicy.call


@pytest.mark.parametrize("failures", [0, 1, 3, 9])
async def test_call_succeeds_after_transient_failures_with_one_pause_each(failures: int) -> None:
    fake = FakeTime()
    operation = Operation(transient(failures))
    policy = make_policy(fake, attempts=10)
    result = await policy.call(operation, deadline=policy.deadline())
    assert result == "etag"
    assert operation.calls == failures + 1
    assert len(fake.sleeps) == failures
    for attempt, pause in enumerate(fake.sleeps):
        assert pause >= 0.0
        assert pause <= cap(attempt)
    assert fake.now == pytest.approx(sum(fake.sleeps))


async def test_call_retries_verification_and_throttling_errors() -> None:
    fake = FakeTime()
    operation = Operation([VerificationError("part 1: checksum mismatch"), StoreError("SlowDown", throttled=True)])
    assert await make_policy(fake).call(operation, deadline=1e9) == "etag"
    assert operation.calls == 3
    assert len(fake.sleeps) == 2


@pytest.mark.parametrize(
    "error",
    [
        StoreError("403 AccessDenied"),
        FileChangedError("changed while read"),
        InvalidKeyError("not UTF-8"),
        FileTooLargeError("over 5TiB"),
        OSError("disk gone"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_a_non_retryable_error_is_raised_at_once_without_a_pause(error: BaseException) -> None:
    fake = FakeTime()
    operation = Operation([error, *transient(3)])
    retried: list[FileError] = []
    with pytest.raises(type(error)) as raised:
        await make_policy(fake).call(operation, deadline=1e9, on_retry=retried.append)
    assert raised.value is error
    assert operation.calls == 1
    assert fake.sleeps == []
    assert retried == []


async def test_call_gives_up_after_the_last_attempt_raising_the_last_error() -> None:
    fake = FakeTime()
    errors = transient(10)
    operation = Operation(errors)
    with pytest.raises(StoreError) as raised:
        await make_policy(fake, attempts=4).call(operation, deadline=1e9)
    assert raised.value is errors[3]
    assert str(raised.value) == "failure 4"
    assert operation.calls == 4
    assert len(fake.sleeps) == 3


async def test_a_single_attempt_means_no_retry() -> None:
    fake = FakeTime()
    operation = Operation(transient(1))
    with pytest.raises(StoreError, match="failure 1"):
        await make_policy(fake, attempts=1).call(operation, deadline=1e9)
    assert operation.calls == 1
    assert fake.sleeps == []


async def test_call_gives_up_when_the_next_pause_would_pass_the_deadline() -> None:
    fake = FakeTime()
    errors = transient(10)
    operation = Operation(errors)
    retried: list[FileError] = []
    policy = make_policy(fake, MaxJitter(), attempts=10, deadline_s=2.0)
    deadline = policy.deadline()
    with pytest.raises(StoreError) as raised:
        await policy.call(operation, deadline=deadline, on_retry=retried.append)
    # Pauses 0.25 + 0.5 + 1 end at 1.75; the next (2) would end at 3.75, past the deadline of 2.
    assert fake.sleeps == [0.25, 0.5, 1.0]
    assert fake.now == 1.75
    assert operation.calls == 4
    assert raised.value is errors[3]
    assert retried == errors[:3]


async def test_time_spent_in_the_operation_counts_against_the_deadline() -> None:
    fake = FakeTime()
    operation = Operation(transient(10), fake=fake)
    operation.took_s = 1.0
    with pytest.raises(StoreError, match="failure 3"):
        await make_policy(fake, MaxJitter(), attempts=10).call(operation, deadline=3.0)
    # Fails at 1, pauses to 1.25, fails at 2.25, pauses to 2.75, fails at 3.75: no pause fits any more.
    assert fake.sleeps == [0.25, 0.5]
    assert operation.calls == 3


async def test_a_deadline_already_past_allows_only_the_first_try() -> None:
    fake = FakeTime(now=50.0)
    operation = Operation(transient(1))
    with pytest.raises(StoreError, match="failure 1"):
        await make_policy(fake).call(operation, deadline=49.0)
    assert operation.calls == 1
    assert fake.sleeps == []


@given(
    seed=st.integers(0, 2**32),
    deadline_s=st.floats(0.0, 120.0),
    attempts=st.integers(1, 30),
)
async def test_call_never_sleeps_past_the_deadline(seed: int, deadline_s: float, attempts: int) -> None:
    fake = FakeTime()
    rng = RecordingRandom(seed)
    operation = Operation(transient(attempts))
    policy = make_policy(fake, rng, attempts=attempts, deadline_s=deadline_s)
    deadline = policy.deadline()
    with pytest.raises(StoreError):
        await policy.call(operation, deadline=deadline)
    assert fake.now <= deadline
    assert fake.sleeps == rng.drawn[: len(fake.sleeps)]
    assert len(fake.sleeps) == operation.calls - 1
    if operation.calls < attempts:
        # It stopped early only because the pause it drew next would have ended past the deadline.
        assert len(rng.drawn) == operation.calls
        assert fake.now + rng.drawn[-1] > deadline
    else:
        assert operation.calls == attempts


async def test_on_retry_is_called_once_per_retry_with_its_error() -> None:
    fake = FakeTime()
    errors = [StoreError("reset", retryable=True), VerificationError("bad md5"), StoreError("slow", throttled=True)]
    operation = Operation(list(errors))
    retried: list[FileError] = []
    assert await make_policy(fake).call(operation, deadline=1e9, on_retry=retried.append) == "etag"
    assert retried == errors
    assert all(seen is error for seen, error in zip(retried, errors, strict=True))


async def test_on_retry_is_not_called_for_the_error_that_ends_the_tries() -> None:
    fake = FakeTime()
    errors = transient(3)
    retried: list[FileError] = []
    with pytest.raises(StoreError, match="failure 3"):
        await make_policy(fake, attempts=3).call(Operation(errors), deadline=1e9, on_retry=retried.append)
    assert retried == errors[:2]


async def test_each_attempt_calls_the_operation_afresh_and_rereads_the_body() -> None:
    """A part whose body the store saw damaged is read again from disk: the policy must call the operation (a
    coroutine factory) once per attempt, not await one coroutine twice."""
    fake = FakeTime()
    disk = [b"first read, torn in transit", b"second read, intact"]
    reads: list[bytes] = []

    async def send_part() -> bytes:
        body = disk[len(reads)]  # each attempt reads the file again
        reads.append(body)
        if len(reads) == 1:
            raise VerificationError("part 1: the store computed a different checksum")
        return body

    sent = await make_policy(fake).call(send_part, deadline=1e9)
    assert sent == b"second read, intact"
    assert reads == disk
