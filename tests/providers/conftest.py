"""The providers' tests run on asyncio's event loop; those marked ``every_event_loop`` (the HTTP client's) also on
uvloop's, the CLI's default, when it is installed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest

try:
    import uvloop
except ImportError:  # the fast extra is not installed: asyncio's loop only
    uvloop = None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "every_event_loop: run on every event loop the CLI may use")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
    if uvloop is not None and item.get_closest_marker("every_event_loop") is not None:
        factories["uvloop"] = uvloop.new_event_loop
    return factories
