"""Tests for ``async_uploader.engine.throttle``: ``--max-bandwidth`` parsing and the shared ``TokenBucket``, on virtual
time (an injected clock and sleep), so no test waits for real."""

from __future__ import annotations

import heapq
import itertools

import anyio
import pytest

from async_uploader.engine.throttle import DEFAULT_BURST_S, TokenBucket, parse_rate
from async_uploader.errors import ConfigError

DEADLINE_S = 5
MB = 1_000_000
RATE_BPS = 10 * MB
BURST_BYTES = RATE_BPS * DEFAULT_BURST_S


class FakeTime:
    """Virtual time: the clock moves only when every task that uses it is asleep, as an event loop's would.

    When the last running task goes to sleep, the clock jumps to the earliest wake-up and wakes whoever is due,
    so concurrent sleeps overlap like real ones (a sleep that simply added its delay to the clock would hide a
    bucket that lets concurrent waiters overlap). With one task it is just "advance the clock by the delay".
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.running = 1  # the test's own task
        self._due: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        wake = anyio.Event()
        heapq.heappush(self._due, (self.now + delay, next(self._order), wake))
        self.running -= 1
        self._advance_if_idle()
        await wake.wait()

    def task_finished(self) -> None:
        self.running -= 1
        self._advance_if_idle()

    def _advance_if_idle(self) -> None:
        if self.running or not self._due:
            return
        self.now = max(self.now, self._due[0][0])
        while self._due and self._due[0][0] <= self.now:
            heapq.heappop(self._due)[2].set()
            self.running += 1


def make_bucket(fake: FakeTime, rate_bps: float = RATE_BPS, **kwargs: float) -> TokenBucket:
    return TokenBucket(rate_bps, clock=fake.clock, sleep=fake.sleep, **kwargs)


async def consume_concurrently(
    bucket: TokenBucket, fake: FakeTime, workloads: list[list[int]]
) -> list[tuple[float, int, int]]:
    """Run one task per workload, each consuming its amounts in turn; returns ``(time, worker, bytes)`` for every
    consume as it completes."""
    done: list[tuple[float, int, int]] = []

    async def worker(number: int, amounts: list[int]) -> None:
        try:
            for amount in amounts:
                await bucket.consume(amount)
                done.append((fake.now, number, amount))
        finally:
            fake.task_finished()

    fake.running += len(workloads) - 1  # the workers run; this task only waits for them
    with anyio.fail_after(DEADLINE_S):
        async with anyio.create_task_group() as group:
            for number, amounts in enumerate(workloads):
                group.start_soon(worker, number, amounts)
    fake.running = 1
    return done


# parse_rate


@pytest.mark.parametrize(
    ("text", "bps"),
    [
        ("50MB/s", 50_000_000),
        ("50MBps", 50_000_000),  # "ps" is "/s": bytes per second, not megabits
        ("50MB", 50_000_000),
        ("10MiB/s", 10 * 1024**2),
        ("10MiBps", 10 * 1024**2),
        ("200Mbit/s", 25_000_000),
        ("200Mbitps", 25_000_000),
        ("8kbit/s", 1000),
        ("1.5KB/s", 1500),
        ("1.5kB/s", 1500),
        ("2GB/s", 2_000_000_000),
        ("1GiB/s", 1024**3),
        ("1000B/s", 1000),
        ("1000Bps", 1000),
        ("4M/s", 4 * 1024**2),  # K, M, G alone: powers of 1024, as in the size syntax
        (" 5 MB / s ", 5_000_000),
        ("512KiB", 512 * 1024),
    ],
)
def test_parse_rate(text: str, bps: int) -> None:
    assert parse_rate(text) == bps


@pytest.mark.parametrize(
    "text", ["", "   ", "fast", "0MB/s", "-5MB/s", "5XB/s", "5MB/h", "MB/s", "1e6", "5Mib/s", "5 ps"]
)
def test_parse_rate_rejects_what_is_not_a_positive_rate(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid rate"):
        parse_rate(text)


@pytest.mark.parametrize("text", ["10", "0.5", "1000"])
def test_a_bare_number_is_refused_with_a_unit_suggested(text: str) -> None:
    with pytest.raises(ConfigError, match=rf"give a unit, e\.g\. {text}MB/s"):
        parse_rate(text)


@pytest.mark.parametrize(("text", "hint"), [("10Mb/s", "10MB/s"), ("10Mbps", "10Mbit/s"), ("50mb/s", "50mB/s")])
def test_a_lowercase_b_is_refused_as_ambiguous(text: str, hint: str) -> None:
    with pytest.raises(ConfigError, match=f"ambiguous unit.*{hint}"):
        parse_rate(text)


# TokenBucket


async def test_consuming_within_the_burst_does_not_wait() -> None:
    fake = FakeTime()
    bucket = make_bucket(fake)
    await bucket.consume(int(BURST_BYTES) // 2)
    await bucket.consume(int(BURST_BYTES) // 2)
    assert fake.sleeps == []
    assert fake.now == 0


async def test_bytes_beyond_the_burst_wait_their_time_at_the_rate() -> None:
    fake = FakeTime()
    bucket = make_bucket(fake)
    await bucket.consume(int(BURST_BYTES))
    await bucket.consume(3 * MB)
    assert fake.sleeps == [pytest.approx(0.3)]
    await bucket.consume(MB)
    assert fake.sleeps == [pytest.approx(0.3), pytest.approx(0.1)]
    assert fake.now == pytest.approx(0.4)


async def test_one_request_overdrawing_the_burst_waits_only_for_the_excess() -> None:
    fake = FakeTime()
    bucket = make_bucket(fake)
    await bucket.consume(int(BURST_BYTES) + 2 * MB)
    assert fake.sleeps == [pytest.approx(0.2)]


async def test_idle_time_refills_the_bucket_but_only_up_to_the_burst() -> None:
    fake = FakeTime()
    bucket = make_bucket(fake)
    await bucket.consume(int(BURST_BYTES))
    fake.now += 0.1  # idle long enough for 1 MB
    await bucket.consume(MB)
    assert fake.sleeps == []
    fake.now += 100  # idle for long: the credit is still only one burst
    await bucket.consume(int(2 * BURST_BYTES))
    assert fake.sleeps == [pytest.approx(BURST_BYTES / RATE_BPS)]


async def test_a_long_run_averages_the_rate() -> None:
    fake = FakeTime()
    bucket = make_bucket(fake)
    total = 100 * MB
    for _ in range(100):
        await bucket.consume(MB)
    assert (total - BURST_BYTES) / RATE_BPS <= fake.now + 1e-9
    assert fake.now <= total / RATE_BPS
    assert fake.now == pytest.approx(9.75)


async def test_concurrent_consumers_share_one_rate() -> None:
    fake = FakeTime()
    bucket = make_bucket(fake)
    workloads = [[MB] * 25, [MB] * 25, [MB // 2] * 50, [3 * MB] * 8 + [MB]]
    total = sum(map(sum, workloads))
    done = await consume_concurrently(bucket, fake, workloads)
    assert len(done) == sum(map(len, workloads))
    # At every moment, the bytes let through so far fit within one burst plus the rate times the time elapsed.
    sent = 0
    for at, _worker, amount in sorted(done):
        sent += amount
        assert sent <= BURST_BYTES + RATE_BPS * at + 1
    assert fake.now == pytest.approx((total - BURST_BYTES) / RATE_BPS)
    # Every worker got bytes through well before the end: none waited for the others to finish.
    first_done = {worker: at for at, worker, _amount in reversed(done)}
    assert max(first_done.values()) < fake.now / 2


async def test_a_request_larger_than_the_burst_is_served_after_the_right_wait() -> None:
    fake = FakeTime()
    bucket = make_bucket(fake, burst_bytes=MB)
    with anyio.fail_after(DEADLINE_S):
        await bucket.consume(50 * MB)
    assert fake.sleeps == [pytest.approx(4.9)]
    await bucket.consume(MB)  # queues behind the debt, which is repaid by now
    assert fake.sleeps[-1] == pytest.approx(0.1)


async def test_a_huge_request_among_small_ones_neither_starves_nor_deadlocks() -> None:
    fake = FakeTime()
    bucket = make_bucket(fake, burst_bytes=MB)
    workloads = [[MB] * 10, [40 * MB], [MB] * 10]
    done = await consume_concurrently(bucket, fake, workloads)
    assert [amount for _at, worker, amount in done if worker == 1] == [40 * MB]
    assert len(done) == 21
    assert fake.now == pytest.approx((60 * MB - MB) / RATE_BPS)
