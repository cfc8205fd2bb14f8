"""Tests for ``async_uploader.engine.adaptive``: the ``AdaptiveLimit`` semaphore (accounting, the bound, FIFO order,
halving and regrowth, cancellation) and the ``govern_cpu`` governor fed a fake CPU counter.

The limit's cooldown runs on an injected clock; tasks are known to be parked with
``anyio.wait_all_tasks_blocked()`` (in ``settle``), never by sleeping."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest

from async_uploader.engine.adaptive import DECREASE_COOLDOWN_S, AdaptiveLimit, govern_cpu

DEADLINE_S = 5
SETTLE_CHECKPOINTS = 5
GOVERNOR_INTERVAL_S = 0.001  # the governor's own (real) timer; tiny, so samples come quickly


class FakeClock:
    """A clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Holder:
    """A task's view of the limit: enters it, records that it holds a slot, parks until let go."""

    def __init__(self, limit: AdaptiveLimit) -> None:
        self.limit = limit
        self.holding: list[str] = []
        self.entered: list[str] = []
        self.peak = 0
        self.gates: dict[str, anyio.Event] = {}

    async def hold(self, name: str) -> None:
        gate = self.gates.setdefault(name, anyio.Event())
        async with self.limit:
            self.entered.append(name)
            self.holding.append(name)
            self.peak = max(self.peak, len(self.holding))
            try:
                await gate.wait()
            finally:
                self.holding.remove(name)

    def let_go(self, name: str) -> None:
        self.gates.setdefault(name, anyio.Event()).set()


async def settle() -> None:
    """Return once every other task is parked. A few plain checkpoints first let just-woken tasks run on, so
    ``wait_all_tasks_blocked`` (which naps 0.1 s whenever it finds a task still runnable) seldom has to wait."""
    for _ in range(SETTLE_CHECKPOINTS):
        await anyio.lowlevel.checkpoint()
    await anyio.wait_all_tasks_blocked()


# Accounting


async def test_acquire_and_release_count_the_slots_in_use() -> None:
    limit = AdaptiveLimit(3)
    assert limit.in_use == 0
    await limit.acquire()
    await limit.acquire()
    assert limit.in_use == 2
    limit.release()
    assert limit.in_use == 1
    async with limit as entered:
        assert entered is limit
        assert limit.in_use == 2
    assert limit.in_use == 1
    limit.release()
    assert limit.in_use == 0
    assert limit.limit == 3


async def note(notes: list[str], name: str) -> None:
    notes.append(name)


async def test_a_free_slot_is_taken_without_a_turn_of_the_loop_and_a_taken_one_is_waited_for() -> None:
    # The fast path: with a slot free, acquiring is not a scheduling point (another task gets no turn) ...
    limit = AdaptiveLimit(1)
    ran: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(note, ran, "other")
        await limit.acquire()
        assert ran == []
        assert limit.peak_in_use == 1
        # ... and the contended path: with none free, the next one waits until a release.
        group.start_soon(limit.acquire)
        await settle()
        assert ran == ["other"]
        assert limit.in_use == 1
        limit.release()
        await settle()
    assert limit.in_use == 1
    assert limit.peak_in_use == 1


async def test_try_acquire_takes_a_free_slot_and_refuses_when_full() -> None:
    limit = AdaptiveLimit(1)
    assert limit.try_acquire()
    assert not limit.try_acquire()
    assert limit.in_use == 1
    async with anyio.create_task_group() as group:
        group.start_soon(limit.acquire)
        await settle()
        limit.release()  # handed straight to the waiter: still none free
        assert not limit.try_acquire()
    limit.release()
    assert limit.try_acquire()
    assert limit.peak_in_use == 1


async def test_the_slot_is_released_when_the_body_raises() -> None:
    limit = AdaptiveLimit(1)
    with pytest.raises(RuntimeError, match="upload failed"):
        async with limit:
            raise RuntimeError("upload failed")
    assert limit.in_use == 0
    with anyio.fail_after(DEADLINE_S):
        async with limit:  # the slot came back: this does not wait
            assert limit.in_use == 1


async def test_never_more_than_limit_holders() -> None:
    limit = AdaptiveLimit(3)
    holder = Holder(limit)
    names = [f"task{n}" for n in range(10)]
    with anyio.fail_after(DEADLINE_S):
        async with anyio.create_task_group() as group:
            for name in names:
                group.start_soon(holder.hold, name)
            await settle()
            assert len(holder.holding) == 3
            assert limit.in_use == 3
            # Let the holders go one at a time: each departure lets exactly one waiter in.
            for done, name in enumerate(names, start=1):
                holder.let_go(name)
                await settle()
                assert len(holder.holding) == min(3, len(names) - done)
                assert limit.in_use == len(holder.holding)
    assert holder.entered == names
    assert holder.peak == 3
    assert limit.in_use == 0


async def test_waiters_are_served_in_arrival_order() -> None:
    limit = AdaptiveLimit(1)
    order: list[str] = []

    async def enter(name: str) -> None:
        async with limit:
            order.append(name)

    await limit.acquire()
    with anyio.fail_after(DEADLINE_S):
        async with anyio.create_task_group() as group:
            for n in range(5):
                group.start_soon(enter, f"waiter{n}")
                await settle()  # queued before the next one arrives
            assert order == []
            limit.release()
    assert order == [f"waiter{n}" for n in range(5)]
    assert limit.in_use == 0


async def test_a_newcomer_does_not_overtake_a_waiter_already_granted() -> None:
    limit = AdaptiveLimit(1)
    order: list[str] = []

    async def enter(name: str) -> None:
        async with limit:
            order.append(name)

    await limit.acquire()
    with anyio.fail_after(DEADLINE_S):
        async with anyio.create_task_group() as group:
            group.start_soon(enter, "waiter")
            await settle()
            limit.release()  # the slot goes to the waiter, which has not run yet
            await enter("newcomer")
    assert order == ["waiter", "newcomer"]
    assert limit.in_use == 0


# decrease


async def test_decrease_halves_the_limit_down_to_one() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(10, clock=clock)
    seen = []
    for _ in range(5):
        limit.decrease()
        seen.append(limit.limit)
        clock.now += DECREASE_COOLDOWN_S
    assert seen == [5, 2, 1, 1, 1]
    assert limit.lowest == 1


async def test_decrease_counts_once_per_cooldown() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(16, clock=clock)
    limit.decrease()
    assert limit.limit == 8
    for now in (0.0, 0.1, 0.5, DECREASE_COOLDOWN_S - 0.001):
        clock.now = now
        limit.decrease()  # a burst of 503s from one moment
        assert limit.limit == 8
    clock.now = DECREASE_COOLDOWN_S
    limit.decrease()
    assert limit.limit == 4
    clock.now = DECREASE_COOLDOWN_S + 0.5
    limit.decrease()
    assert limit.limit == 4
    clock.now = 2 * DECREASE_COOLDOWN_S + 0.5
    limit.decrease()
    assert limit.limit == 2


async def test_decrease_does_not_interrupt_holders_but_holds_back_newcomers() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(4, clock=clock)
    holder = Holder(limit)
    old = ["old0", "old1", "old2", "old3"]
    with anyio.fail_after(DEADLINE_S):
        async with anyio.create_task_group() as group:
            for name in old:
                group.start_soon(holder.hold, name)
            await settle()
            assert limit.in_use == 4

            limit.decrease()
            assert limit.limit == 2
            group.start_soon(holder.hold, "new")
            await settle()
            assert holder.holding == old  # nobody in flight was interrupted
            assert limit.in_use == 4

            # New work waits until fewer than two are in use.
            for name, in_use_after in (("old0", 3), ("old1", 2)):
                holder.let_go(name)
                await settle()
                assert "new" not in holder.entered
                assert limit.in_use == in_use_after
            holder.let_go("old2")
            await settle()
            assert holder.holding == ["old3", "new"]
            assert limit.in_use == 2
            for name in ("old3", "new"):
                holder.let_go(name)
    assert limit.in_use == 0


# succeeded


async def test_succeeded_adds_a_slot_after_limit_successes_in_a_row_up_to_the_maximum() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(8, clock=clock)
    limit.decrease()
    assert limit.limit == 4
    history = []
    for _ in range(40):
        limit.succeeded()
        history.append(limit.limit)
    # 4 successes to reach 5, 5 more to reach 6, 6 more to 7, 7 more to 8, then it stays at the maximum.
    assert history[:4] == [4, 4, 4, 5]
    assert history.index(6) == 4 + 5 - 1
    assert history.index(7) == 4 + 5 + 6 - 1
    assert history.index(8) == 4 + 5 + 6 + 7 - 1
    assert set(history[history.index(8) :]) == {8}
    assert limit.lowest == 4


async def test_a_decrease_restarts_the_count_of_successes() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(16, clock=clock)
    limit.decrease()
    for _ in range(7):
        limit.succeeded()
    assert limit.limit == 8
    clock.now += DECREASE_COOLDOWN_S
    limit.decrease()
    assert limit.limit == 4
    for _ in range(3):
        limit.succeeded()
    assert limit.limit == 4  # the seven earlier successes do not count towards the new limit
    limit.succeeded()
    assert limit.limit == 5


async def test_succeeded_at_the_maximum_changes_nothing() -> None:
    limit = AdaptiveLimit(2)
    for _ in range(10):
        limit.succeeded()
    assert limit.limit == 2
    assert limit.lowest == 2


async def test_a_slot_added_by_succeeded_wakes_a_waiter() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(2, clock=clock)
    limit.decrease()
    assert limit.limit == 1
    holder = Holder(limit)
    with anyio.fail_after(DEADLINE_S):
        async with anyio.create_task_group() as group:
            group.start_soon(holder.hold, "first")
            await settle()
            group.start_soon(holder.hold, "second")
            await settle()
            assert holder.holding == ["first"]

            limit.succeeded()  # one success in a row at a limit of one: a second slot
            await settle()
            assert limit.limit == 2
            assert holder.holding == ["first", "second"]
            assert limit.in_use == 2
            holder.let_go("first")
            holder.let_go("second")
    assert limit.in_use == 0


async def test_lowest_records_the_minimum_reached() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(16, clock=clock)
    assert limit.lowest == 16
    limit.decrease()
    clock.now += DECREASE_COOLDOWN_S
    limit.decrease()
    assert limit.lowest == 4
    for _ in range(200):
        limit.succeeded()
    assert limit.limit == 16
    assert limit.lowest == 4
    clock.now += DECREASE_COOLDOWN_S
    limit.decrease()
    assert limit.limit == 8
    assert limit.lowest == 4


# Cancellation


async def test_acquiring_in_a_cancelled_scope_takes_no_slot() -> None:
    limit = AdaptiveLimit(2)
    entered = False
    with anyio.CancelScope() as scope:
        scope.cancel()
        await limit.acquire()
        entered = True
    assert scope.cancelled_caught
    assert not entered
    assert limit.in_use == 0


async def test_cancelling_a_waiter_removes_it_from_the_queue() -> None:
    limit = AdaptiveLimit(1)
    holder = Holder(limit)
    scope = anyio.CancelScope()

    async def hold_until_cancelled(name: str) -> None:
        with scope:
            await holder.hold(name)

    await limit.acquire()
    with anyio.fail_after(DEADLINE_S):
        async with anyio.create_task_group() as group:
            group.start_soon(hold_until_cancelled, "cancelled")
            await settle()
            group.start_soon(holder.hold, "next")
            await settle()

            scope.cancel()
            await settle()
            assert limit.in_use == 1  # still only the test's own slot

            limit.release()  # one release: it goes to the waiter behind the cancelled one
            await settle()
            assert holder.holding == ["next"]
            assert limit.in_use == 1
            holder.let_go("next")
    assert holder.entered == ["next"]
    assert limit.in_use == 0


@pytest.mark.parametrize("cancel_first", [True, False], ids=["cancel-then-grant", "grant-then-cancel"])
async def test_cancellation_right_after_being_granted_hands_the_slot_on(cancel_first: bool) -> None:
    limit = AdaptiveLimit(1)
    holder = Holder(limit)
    scope = anyio.CancelScope()

    async def hold_until_cancelled(name: str) -> None:
        with scope:
            await holder.hold(name)

    await limit.acquire()
    with anyio.fail_after(DEADLINE_S):
        async with anyio.create_task_group() as group:
            group.start_soon(hold_until_cancelled, "cancelled")
            await settle()
            group.start_soon(holder.hold, "next")
            await settle()

            # Grant and cancel in the same step, before the waiter runs again.
            if cancel_first:
                scope.cancel()
                limit.release()
            else:
                limit.release()
                scope.cancel()
            await settle()
            assert holder.holding == ["next"]
            assert limit.in_use == 1
            holder.let_go("next")
    assert "next" in holder.entered
    assert limit.in_use == 0


# govern_cpu


class FakeProcess:
    """CPU time and wall time that advance together on every sample, at a given share of one core per interval
    (the last share repeats).

    The governor reads ``cpu_seconds`` first in each round, so when it does, the previous round's decision is
    made: that is where ``watch`` is checked, and ``reached`` set once it holds.
    """

    def __init__(self, *shares_of_one_core: float, step_s: float = 0.1, wall_moves: bool = True) -> None:
        self.shares = shares_of_one_core
        self.step_s = step_s
        self.wall_moves = wall_moves
        self.elapsed = 0.0
        self.cpu = 0.0
        self.samples = 0
        self.watch: Callable[[], bool] = lambda: False
        self.reached = anyio.Event()

    def cpu_seconds(self) -> float:
        if self.watch():
            self.reached.set()
        share = self.shares[min(self.samples, len(self.shares) - 1)]
        self.samples += 1
        self.elapsed += self.step_s
        self.cpu += share * self.step_s
        return self.cpu

    def clock(self) -> float:
        return self.elapsed if self.wall_moves else 0.0


async def run_governor(limit: AdaptiveLimit, process: FakeProcess, ceiling: float, until: Callable[[], bool]) -> None:
    """Run the governor until ``until()`` holds between two of its rounds, then cancel it."""
    process.watch = until
    with anyio.fail_after(DEADLINE_S):
        async with anyio.create_task_group() as group:
            group.start_soon(
                lambda: govern_cpu(
                    limit,
                    ceiling,
                    cpu_seconds=process.cpu_seconds,
                    clock=process.clock,
                    interval_s=GOVERNOR_INTERVAL_S,
                )
            )
            await process.reached.wait()
            group.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("share", "ceiling"),
    [(0.9, 50.0), (1.5, 100.0), (3.0, 250.0)],
    ids=["90%-of-50%", "150%-of-100%", "300%-of-250%"],
)
async def test_governor_lowers_the_limit_above_the_ceiling(share: float, ceiling: float) -> None:
    process = FakeProcess(share)
    limit = AdaptiveLimit(8, clock=process.clock)
    await run_governor(limit, process, ceiling, until=lambda: limit.limit < 8)
    assert limit.limit == 4
    assert limit.lowest == 4
    assert process.samples >= 2  # a decision needs two samples


@pytest.mark.parametrize(
    ("share", "ceiling"),
    [(0.1, 50.0), (0.45, 50.0), (1.5, 200.0)],
    ids=["10%-of-50%", "45%-of-50%", "150%-of-200%"],
)
async def test_governor_leaves_the_limit_alone_below_the_ceiling(share: float, ceiling: float) -> None:
    process = FakeProcess(share)
    limit = AdaptiveLimit(8, clock=process.clock)
    await run_governor(limit, process, ceiling, until=lambda: process.samples >= 20)
    assert limit.limit == 8
    assert limit.lowest == 8


async def test_governor_keeps_pushing_down_while_the_cpu_stays_high() -> None:
    process = FakeProcess(0.9, step_s=DECREASE_COOLDOWN_S)  # each sample is one cooldown apart
    limit = AdaptiveLimit(8, clock=process.clock)
    await run_governor(limit, process, 50.0, until=lambda: limit.limit == 1)
    assert limit.lowest == 1


async def test_governor_judges_each_interval_on_its_own() -> None:
    """Two busy intervals halve the limit twice; once the process calms down, the busy past no longer counts."""
    process = FakeProcess(0.9, 0.9, 0.9, 0.1, step_s=DECREASE_COOLDOWN_S)  # the first share is the start reading
    limit = AdaptiveLimit(64, clock=process.clock)
    await run_governor(limit, process, 50.0, until=lambda: process.samples >= 12)
    assert limit.limit == 16
    assert limit.lowest == 16


async def test_governor_survives_a_wall_clock_that_does_not_move() -> None:
    """A coarse timer can return the same time twice: no division by zero, and no decision on no evidence."""
    process = FakeProcess(0.9, wall_moves=False)
    limit = AdaptiveLimit(8)
    await run_governor(limit, process, 50.0, until=lambda: process.samples >= 10)
    assert limit.limit == 8
