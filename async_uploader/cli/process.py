"""How the command line runs its process: the event loop, the garbage collector, glibc's allocator, signals.

Only the command line tunes these, because the process is its own; ``upload()`` leaves an application's
process as it found it.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import signal
import sys
from collections.abc import Awaitable, Coroutine
from typing import Any, Final, TypeVar

from ..options import PROG
from ..source.reader import read_cached_files_on_loop
from .progress import stream_is_terminal

T = TypeVar("T")

EVENT_LOOP_ENV: Final = "ASYNC_UPLOADER_EVENT_LOOP"
M_MMAP_THRESHOLD: Final = -3
MMAP_THRESHOLD_BYTES: Final = 1024 * 1024
GC_YOUNG_OBJECTS: Final = 20_000


def pin_mmap_threshold() -> None:
    """Make glibc give part buffers back to the OS as soon as they are freed.

    glibc raises its mmap threshold after the first large block is freed, so later multi-MiB part buffers come
    from the heap and per-thread arenas, which are seldom returned: the process would grow well past
    ``--max-memory``. Pinning the threshold (which also stops its adjustment) keeps each buffer its own mapping,
    unmapped when it is freed.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):  # not glibc (musl, say): nothing to tune
        pass


def collect_garbage_less_often() -> None:
    """Run the cyclic garbage collector seldom, and never over what start-up built.

    An upload allocates a few hundred objects per file, nearly all freed by reference counting, so Python's
    defaults (a young collection every 700 allocations, now and then a full one walking every object the imports
    made) spend CPU finding next to nothing. Start-up's objects (modules, classes, botocore's models) are never
    garbage: frozen, no collection walks them; the young generation is collected every ``GC_YOUNG_OBJECTS``
    allocations.
    """
    gc.freeze()
    gc.set_threshold(GC_YOUNG_OBJECTS, *gc.get_threshold()[1:])


def run_event_loop(main_task: Coroutine[Any, Any, T]) -> T:
    """Run ``main_task`` on uvloop when it is installed (the ``fast`` extra), else on asyncio's own loop.

    uvloop spends less CPU per request than asyncio's loop (docs/benchmarks.md). ``ASYNC_UPLOADER_EVENT_LOOP=
    asyncio`` keeps the standard loop, to compare or to rule uvloop out.
    """
    collect_garbage_less_often()
    read_cached_files_on_loop()  # the loop is ours: no application shares it
    if os.environ.get(EVENT_LOOP_ENV, "").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main_task)
    return asyncio.run(main_task)


SHOW_CURSOR: Final = "\x1b[?25h"


def show_cursor() -> None:
    """Show the terminal's cursor again (the live display hides it) where stderr is a terminal; a pipe or a log
    never gets the escape."""
    if stream_is_terminal(sys.stderr):
        sys.stderr.write(SHOW_CURSOR)
        sys.stderr.flush()


class Stopped(Exception):
    """A signal cancelled the run; ``exit_code`` is the shell's code for it, 128 + the signal's number."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


async def cancel_on_signals(work: Awaitable[T]) -> T:
    """Await ``work``; SIGINT or SIGTERM cancels it and raises ``Stopped``, a second signal exits at once.

    Cancelling lets the run abort its multipart uploads in flight (or keep them, with ``--keep-partial``) and
    write its report; a user who signals again does not want to wait for that.
    """
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if received:
            print(f"\n{PROG}: stopped at once; multipart uploads may be left to abort", file=sys.stderr)
            show_cursor()  # os._exit skips the live display's own restore
            os._exit(128 + signum)
        received.append(signum)
        task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await work
    except asyncio.CancelledError:
        if received:
            raise Stopped(128 + received[0]) from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
