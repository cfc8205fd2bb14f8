"""Tests for ``async_uploader.engine.budget.ByteBudget``: accounting, blocking, FIFO fairness and cancellation."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from async_uploader.engine.budget import ByteBudget
from async_uploader.providers.base import Body

DEADLINE_S = 5


async def acquire_then_record(budget: ByteBudget, amount: int, name: str, granted: list[str]) -> None:
    await budget.acquire(amount)
    granted.append(name)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        ByteBudget(0)


async def test_acquire_and_release_account_for_every_byte() -> None:
    budget = ByteBudget(100)
    assert budget.available == 100
    assert await budget.acquire(30) == 30
    assert budget.available == 70
    assert await budget.acquire(70) == 70
    assert budget.available == 0
    budget.release(30)
    assert budget.available == 30
    budget.release(70)
    assert budget.available == 100


@pytest.mark.parametrize(("amount", "taken"), [(101, 100), (10**12, 100), (-5, 0)])
async def test_amount_outside_capacity_is_clamped(amount: int, taken: int) -> None:
    budget = ByteBudget(100)
    with anyio.fail_after(DEADLINE_S):
        assert await budget.acquire(amount) == taken
    assert budget.available == 100 - taken
    budget.release(taken)
    assert budget.available == 100


async def note(notes: list[str], name: str) -> None:
    notes.append(name)


async def test_free_bytes_are_taken_without_a_turn_of_the_loop_and_missing_ones_are_waited_for() -> None:
    budget = ByteBudget(100)
    ran: list[str] = []
    granted: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(note, ran, "other")
        assert await budget.acquire(70) == 70  # free: taken at once, no other task ran meanwhile
        assert ran == []
        assert budget.peak_used == 70
        group.start_soon(acquire_then_record, budget, 50, "waiter", granted)
        await anyio.wait_all_tasks_blocked()
        assert ran == ["other"]
        assert granted == []  # 30 free: the waiter waits
        budget.release(70)
    assert granted == ["waiter"]
    assert budget.available == 50
    assert budget.peak_used == 70


async def test_try_acquire_takes_only_free_bytes_nobody_waits_for() -> None:
    budget = ByteBudget(100)
    assert budget.try_acquire(60) == 60
    assert budget.try_acquire(50) is None  # 40 free
    assert budget.try_acquire(10**6) is None  # clamped to the capacity, still more than is free
    granted: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(acquire_then_record, budget, 50, "waiter", granted)
        await anyio.wait_all_tasks_blocked()
        assert budget.try_acquire(10) is None  # 40 free, but the waiter is first in line
        budget.release(60)
    assert granted == ["waiter"]
    assert budget.try_acquire(50) == 50
    assert budget.available == 0


async def test_waiter_blocks_until_enough_is_released() -> None:
    budget = ByteBudget(100)
    await budget.acquire(80)
    granted: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(acquire_then_record, budget, 50, "waiter", granted)
        await anyio.wait_all_tasks_blocked()
        assert granted == []
        budget.release(20)  # 40 free: still not enough
        await anyio.wait_all_tasks_blocked()
        assert granted == []
        assert budget.available == 40
        budget.release(60)
        with anyio.fail_after(DEADLINE_S):
            while not granted:
                await anyio.wait_all_tasks_blocked()
    assert granted == ["waiter"]
    assert budget.available == 50


async def test_waiters_are_served_first_come_first_served() -> None:
    budget = ByteBudget(100)
    await budget.acquire(90)  # 10 free
    granted: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(acquire_then_record, budget, 60, "big", granted)
        await anyio.wait_all_tasks_blocked()
        group.start_soon(acquire_then_record, budget, 5, "small", granted)
        await anyio.wait_all_tasks_blocked()
        assert granted == []  # the small one would fit in the 10 free bytes, but it queued behind the big one
        assert budget.available == 10
        budget.release(50)  # 60 free: exactly the big one
        await anyio.wait_all_tasks_blocked()
        assert granted == ["big"]
        assert budget.available == 0
        budget.release(5)
        await anyio.wait_all_tasks_blocked()
    assert granted == ["big", "small"]
    assert budget.available == 0


async def test_cancelled_waiter_leaves_the_queue_and_lets_smaller_ones_through() -> None:
    budget = ByteBudget(100)
    await budget.acquire(90)  # 10 free
    granted: list[str] = []
    big_scope = anyio.CancelScope()

    async def big() -> None:
        with big_scope:
            await acquire_then_record(budget, 60, "big", granted)

    async with anyio.create_task_group() as group:
        group.start_soon(big)
        await anyio.wait_all_tasks_blocked()
        group.start_soon(acquire_then_record, budget, 5, "small", granted)
        await anyio.wait_all_tasks_blocked()
        assert granted == []
        big_scope.cancel()
        with anyio.fail_after(DEADLINE_S):
            while not granted:
                await anyio.wait_all_tasks_blocked()
    assert granted == ["small"]
    assert budget.available == 5
    budget.release(5)
    budget.release(90)
    assert budget.available == 100


async def test_cancelled_after_grant_in_acquire_gives_the_bytes_back() -> None:
    # asyncio's Task.cancel lands even when the waiter's event has already been set, so the cancellation
    # arrives inside acquire() after the bytes were granted to it.
    budget = ByteBudget(100)
    await budget.acquire(100)
    task = asyncio.ensure_future(budget.acquire(60))
    await anyio.wait_all_tasks_blocked()
    budget.release(100)  # grants the waiter's 60 ...
    task.cancel()  # ... but it is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await task
    assert budget.available == 100


async def test_cancelled_after_grant_in_acquire_body_gives_the_bytes_back() -> None:
    budget = ByteBudget(100)
    await budget.acquire(100)

    async def hold() -> None:  # as a part does: bytes (and maybe a spare body), held until its request ends
        taken, _ = await budget.acquire_body(60)
        try:
            await anyio.sleep_forever()
        finally:
            budget.release(taken)

    with anyio.fail_after(DEADLINE_S):
        async with anyio.create_task_group() as group:
            group.start_soon(hold)
            await anyio.wait_all_tasks_blocked()
            budget.release(100)  # grants 60 ...
            group.cancel_scope.cancel()  # ... and cancels the holder in the same step
    assert budget.available == 100


async def test_acquire_cancelled_at_once_does_not_keep_the_bytes() -> None:
    budget = ByteBudget(100)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await budget.acquire(10)
    assert budget.available == 100


async def test_a_released_body_is_read_into_again_by_the_next_part_of_its_size() -> None:
    budget = ByteBudget(100)
    taken, fresh = await budget.acquire_body(40)
    assert (taken, fresh) == (40, None)
    body = Body(bytes(40))
    budget.release(taken, body)
    assert budget.available == 100  # a spare's bytes count as free
    assert await budget.acquire_body(30) == (30, None)  # not its size
    taken, spare = await budget.acquire_body(40)
    assert spare is body  # handed out again, not allocated
    budget.release(30)
    budget.release(taken)  # no body: nothing kept
    assert await budget.acquire_body(40) == (40, None)


async def test_spares_are_dropped_when_other_requests_need_their_bytes() -> None:
    budget = ByteBudget(100)
    for size in (40, 40):
        taken, _ = await budget.acquire_body(size)
        budget.release(taken, Body(bytes(size)))
    assert await budget.acquire(30) == 30  # 70 free no longer cover both spares (80): the older is dropped
    budget.release(30)
    first = await budget.acquire_body(40)
    second = await budget.acquire_body(40)
    assert [first[1] is not None, second[1] is not None] == [True, False]


async def test_spares_are_dropped_for_a_waiter_too() -> None:
    budget = ByteBudget(100)
    taken, _ = await budget.acquire_body(60)
    held = await budget.acquire(40)
    granted: list[str] = []
    async with anyio.create_task_group() as group:
        group.start_soon(acquire_then_record, budget, 100, "all", granted)
        await anyio.wait_all_tasks_blocked()
        budget.release(taken, Body(bytes(60)))  # not enough for the waiter yet: kept as a spare for now
        await anyio.wait_all_tasks_blocked()
        assert granted == []
        budget.release(held)
    assert granted == ["all"]
    budget.release(100)
    assert await budget.acquire_body(60) == (60, None)  # it was dropped to serve the waiter


async def test_a_body_whose_buffer_is_still_exported_is_not_kept() -> None:
    budget = ByteBudget(100)
    body = Body(bytes(10))
    taken = await budget.acquire(10)
    with body.getbuffer() as view:  # as a sender still holding it would
        budget.release(taken, body)
        assert await budget.acquire_body(10) == (10, None)
        assert len(view) == 10


async def test_a_full_budget_hands_the_released_body_to_the_next_part() -> None:
    budget = ByteBudget(80)
    parts = [await budget.acquire_body(40) for _ in range(2)]
    assert budget.available == 0
    body = Body(bytes(40))
    budget.release(parts[0][0], body)
    assert await budget.acquire_body(40) == (40, body)  # the steady state of a large file: no new pages
    assert budget.available == 0


async def test_a_part_waiting_for_bytes_gets_the_body_released_with_them() -> None:
    budget = ByteBudget(80)
    held = [await budget.acquire_body(40) for _ in range(2)]
    got: list[tuple[int, Body | None]] = []

    async def next_part() -> None:
        got.append(await budget.acquire_body(40))

    body = Body(bytes(40))
    async with anyio.create_task_group() as group:
        group.start_soon(next_part)
        await anyio.wait_all_tasks_blocked()
        assert got == []
        budget.release(held[0][0], body)
    assert got == [(40, body)]
    assert budget.available == 0
