"""``TokenBucket``: one upload rate shared by every worker (``--max-bandwidth``).

Each body takes its size in tokens before it is sent; tokens refill at the rate, up to a burst. The balance may go
negative: a request that overdraws it waits until the debt is repaid, and later requests queue behind that debt,
so the long-run rate holds and no request starves. Clock and sleep are injected so tests run without waiting.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Final

import anyio

from ..errors import ConfigError

DEFAULT_BURST_S: Final = 0.25

_RATE_RE: Final = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*(?:/\s*s)?\s*$", re.ASCII)
_RATE_UNITS: Final[dict[str, Decimal]] = {
    "": Decimal(1),
    "b": Decimal(1),
    "kb": Decimal(1000),
    "mb": Decimal(1000**2),
    "gb": Decimal(1000**3),
    "k": Decimal(1024),
    "kib": Decimal(1024),
    "m": Decimal(1024**2),
    "mib": Decimal(1024**2),
    "g": Decimal(1024**3),
    "gib": Decimal(1024**3),
    "kbit": Decimal(1000) / 8,
    "mbit": Decimal(1000**2) / 8,
    "gbit": Decimal(1000**3) / 8,
}


def parse_rate(text: str) -> int:
    """Bytes per second from ``50MB/s``, ``10MiB/s``, ``200Mbit/s`` or a plain number of bytes per second.

    A capital ``B`` is bytes and a lowercase ``b`` after a prefix is bits (``200Mb/s`` is 25 MB/s), as network
    people write them; ``bit`` and ``bps`` are bits too.
    """
    match = _RATE_RE.match(text)
    raw = match.group(2) if match else ""
    unit = raw.lower()
    if len(raw) == 2 and raw[1] == "b":
        unit += "it"  # Mb -> mbit
    elif unit.endswith("bps"):
        unit = unit[:-3] + "bit"
    if match is None or unit not in _RATE_UNITS:
        raise ConfigError(f"invalid rate {text!r}: use e.g. 50MB/s, 10MiB/s or 200Mbit/s")
    rate = int(Decimal(match.group(1)) * _RATE_UNITS[unit])
    if rate <= 0:
        raise ConfigError(f"invalid rate {text!r}: must be above zero")
    return rate


class TokenBucket:
    """Paces bytes to ``rate_bps`` with a burst of ``burst_bytes``."""

    def __init__(
        self,
        rate_bps: float,
        *,
        burst_bytes: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.rate_bps = rate_bps
        self.burst_bytes = burst_bytes if burst_bytes is not None else rate_bps * DEFAULT_BURST_S
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst_bytes
        self._last = clock()

    async def consume(self, amount: int) -> None:
        """Take ``amount`` bytes' worth of tokens, waiting as long as the rate requires."""
        now = self._clock()
        self._tokens = min(self.burst_bytes, self._tokens + (now - self._last) * self.rate_bps)
        self._last = now
        self._tokens -= amount
        if self._tokens < 0:
            await self._sleep(-self._tokens / self.rate_bps)
