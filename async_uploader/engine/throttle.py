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

_RATE_RE: Final = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*?)\s*(/\s*s|ps)?\s*$", re.ASCII)
_PREFIXES: Final[dict[str, int]] = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}
_BINARY_PREFIXES: Final[dict[str, int]] = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def _unit_scale(unit: str) -> Decimal | None:
    """Bytes per unit, or ``None`` for what is not a unit. Bits only as ``bit``: a lone ``b`` is refused."""
    folded = unit.lower()
    if folded.endswith("bit"):
        prefix = _PREFIXES.get(folded[:-3])
        return None if prefix is None else Decimal(prefix) / 8
    if folded.endswith("ib") and unit.endswith("B"):  # KiB, MiB: the capital B of bytes
        binary = _BINARY_PREFIXES.get(folded[:-2])
        return None if binary is None else Decimal(binary)
    if unit.endswith("B"):
        prefix = _PREFIXES.get(folded[:-1])
        return None if prefix is None else Decimal(prefix)
    if folded in _BINARY_PREFIXES:  # K, M, G: powers of 1024, as in the size syntax
        return Decimal(_BINARY_PREFIXES[folded])
    return None


def parse_rate(text: str) -> int:
    """Bytes per second from ``50MB/s``, ``50MBps``, ``10MiB/s`` or ``200Mbit/s``; a unit is required.

    A bare number is refused (``10`` read as bytes per second would crawl without a word), and so is a lowercase
    ``b`` after a prefix (``10Mb/s``, ``10Mbps``): it means bits to network people and bytes to others, so bits
    are spelled ``bit``. ``ps`` is ``/s``: ``MBps`` and ``MiBps`` are bytes per second.
    """
    match = _RATE_RE.match(text)
    if match is None:
        raise ConfigError(f"invalid rate {text!r}: use e.g. 50MB/s, 10MiB/s or 200Mbit/s")
    number, unit = match.group(1), match.group(2)
    if not unit:
        raise ConfigError(f"invalid rate {text!r}: give a unit, e.g. {number}MB/s (bytes) or {number}Mbit/s (bits)")
    scale = _unit_scale(unit)
    if scale is None:
        if unit.lower().endswith("b"):
            raise ConfigError(
                f"invalid rate {text!r}: ambiguous unit {unit!r}; write {number}{unit[:-1]}B/s for bytes "
                f"or {number}{unit[:-1]}bit/s for bits"
            )
        raise ConfigError(f"invalid rate {text!r}: use e.g. 50MB/s, 10MiB/s or 200Mbit/s")
    rate = int(Decimal(number) * scale)
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
