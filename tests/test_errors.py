"""Tests for ``async_uploader.errors.ungroup_run_errors``: a run-level error leaves a task group bare."""

from __future__ import annotations

import anyio
import pytest

from async_uploader.errors import BucketError, ungroup_run_errors


async def fail(exc: BaseException) -> None:
    raise exc


async def upload_that_fails(exc: BaseException) -> None:
    """As the engine's pipeline: a task group whose task raises, inside the helper."""
    with ungroup_run_errors():
        async with anyio.create_task_group() as group:
            group.start_soon(fail, exc)
            await anyio.sleep_forever()


async def test_a_run_level_error_raised_in_a_task_group_comes_out_bare() -> None:
    with pytest.raises(BucketError, match="cannot write") as raised:
        await upload_that_fails(BucketError("cannot write"))
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


async def test_a_group_without_a_run_level_error_goes_on_as_it_is() -> None:
    with pytest.raises(ExceptionGroup) as raised, ungroup_run_errors():
        async with anyio.create_task_group() as group:
            group.start_soon(fail, KeyError("a bug"))
    assert raised.group_contains(KeyError)


def test_anything_else_passes_through_untouched() -> None:
    with pytest.raises(BucketError), ungroup_run_errors():
        raise BucketError("bare already")
    with ungroup_run_errors():
        pass
