"""How the command line writes sizes, rates and durations: one unit family everywhere (KiB, MiB, MiB/s)."""

from __future__ import annotations


def format_bytes(count: float) -> str:
    """``1.5 KiB``: binary units, one decimal (none for bytes)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    """``1:01:01`` or ``0:59``: whole seconds, hours only when there are some."""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
