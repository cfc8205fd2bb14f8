"""Where the CLI's memory goes: resident set size after each phase of one real run.

``python -m tools.bench.rss_phases upload SOURCE s3://BUCKET/PREFIX [options]`` runs the CLI in this process and
prints, on stderr, VmRSS and VmHWM (the peak so far) with the glibc heap's share, after the imports, after the S3
clients are created, after the preflight, and at the end; the peak minus the preflight's RSS is what the upload
itself held (the part budget plus buffers). Credentials and the endpoint come from the environment, as for the
CLI. It complements ``--memory`` (one number per run, measured from outside) when looking for what to cut.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

MIB_PER_KIB = 1 / 1024


def _status_mib() -> dict[str, float]:
    found: dict[str, float] = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in {"VmRSS", "VmHWM", "RssAnon", "RssFile"}:
                found[name] = int(value.split()[0]) * MIB_PER_KIB
    return found


def _heap_mib() -> float:
    """Resident KiB of the ``[heap]`` mapping: glibc's main arena, where blocks below the mmap threshold live."""
    in_heap = False
    total_kib = 0
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            first = line.split(" ", 1)[0]
            if "-" in first and all(c in "0123456789abcdef-" for c in first):
                in_heap = line.rstrip().endswith("[heap]")
            elif in_heap and line.startswith("Rss:"):
                total_kib += int(line.split()[1])
    return total_kib * MIB_PER_KIB


def show(phase: str) -> None:
    mib = _status_mib()
    print(
        f"{phase:16s} RSS {mib['VmRSS']:6.1f} MiB  peak {mib['VmHWM']:6.1f}  anon {mib['RssAnon']:6.1f}  "
        f"files {mib['RssFile']:5.1f}  heap {_heap_mib():5.1f}",
        file=sys.stderr,
        flush=True,
    )


def main(argv: list[str]) -> None:
    show("start")
    from async_uploader import cli  # cli.main pins glibc's mmap threshold itself, after the imports, as ever
    from async_uploader.providers import s3
    from async_uploader.providers.registry import ConnectOptions
    from async_uploader.providers.s3.boto import BotoStore
    from async_uploader.providers.s3.store import DirectStore

    show("imports")
    opened = s3.connect

    @asynccontextmanager
    async def open_and_show(options: ConnectOptions) -> AsyncIterator[s3.S3Connection]:
        async with opened(options) as connection:
            show("clients")
            yield connection

    def showing_preflight(checked: Callable[[Any, str], Awaitable[None]]) -> Callable[[Any, str], Awaitable[None]]:
        async def check_and_show(store: Any, probe_key: str) -> None:
            await checked(store, probe_key)
            show("preflight")

        return check_and_show

    s3.connect = open_and_show  # the registry looks it up when the run connects
    # The store classes whose write probe ends the preflight (a LearningStore's probe is its BotoStore's).
    DirectStore.check_writable = showing_preflight(DirectStore.check_writable)  # type: ignore[method-assign,assignment]
    BotoStore.check_writable = showing_preflight(BotoStore.check_writable)  # type: ignore[method-assign,assignment]
    try:
        cli.main(argv)
    finally:
        show("end")


if __name__ == "__main__":
    main(sys.argv[1:])
