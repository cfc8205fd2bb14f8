"""How the command line runs its process: the event loop, the garbage collector, glibc's allocator, signals.

Only the command line tunes these, because the process is its own; ``upload()`` leaves an application's
process as it found it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from types import FrameType
from typing import Any, Final, TypeVar

from ..options import PROG
from ..source.reader import read_cached_files_on_loop
from .progress import stream_is_terminal

T = TypeVar("T")

EVENT_LOOP_ENV: Final = "ASYNC_UPLOADER_EVENT_LOOP"
M_MMAP_THRESHOLD: Final = -3
MMAP_THRESHOLD_BYTES: Final = 1024 * 1024
GC_YOUNG_OBJECTS: Final = 20_000
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


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


OPEN_FILES_PER_REQUEST: Final = 2
"""A request holds its connection, and often a file being read."""
OPEN_FILES_RESERVED: Final = 64
"""Besides the requests: the standard streams, the loop's own, the state file, idle pooled connections, DNS."""


def concurrency_within_open_files(concurrency: int) -> tuple[int, int | None]:
    """The concurrency this process's open-file limit holds, and that limit (``None`` where there is none to
    read: Windows). The soft limit is raised first, toward what ``concurrency`` needs and at most to the hard
    limit (macOS starts processes at 256: a run of 256 requests would fail most files "Too many open files")."""
    try:
        import resource
    except ImportError:
        return concurrency, None
    wanted = concurrency * OPEN_FILES_PER_REQUEST + OPEN_FILES_RESERVED
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return concurrency, None if soft == resource.RLIM_INFINITY else soft
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # not allowed (some containers), or above what the kernel takes
        target = soft
    fitting = max(1, (target - OPEN_FILES_RESERVED) // OPEN_FILES_PER_REQUEST)
    return min(concurrency, fitting), target


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
    write its report; a user who signals again does not want to wait for that. Where the loop cannot take signal
    handlers (Windows' loops raise ``NotImplementedError``), Python's own handlers pass the signal to the loop.
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

    restore = _handle_signals(loop, on_signal)
    try:
        return await work
    except asyncio.CancelledError:
        if received:
            raise Stopped(128 + received[0]) from None
        raise
    finally:
        restore()


def _handle_signals(loop: asyncio.AbstractEventLoop, on_signal: Callable[[int], None]) -> Callable[[], None]:
    """Call ``on_signal(signum)`` on the loop for SIGINT and SIGTERM; returns what puts the old handling back."""
    try:
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, on_signal, signum)
    except (NotImplementedError, RuntimeError, ValueError):  # Windows; off the main thread (asyncio, uvloop)
        for signum in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signum)
    else:

        def remove() -> None:
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)

        return remove

    def handler(signum: int, frame: FrameType | None) -> None:
        # Runs between two bytecodes of the main thread, perhaps inside the loop's own code: it only wakes the
        # loop and hands it the signal.
        loop.call_soon_threadsafe(on_signal, signum)

    previous: dict[int, Any] = {}
    try:
        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread: the signals stay as they were (Ctrl-C raises KeyboardInterrupt)
        pass

    def restore() -> None:
        for signum, old in previous.items():
            signal.signal(signum, signal.SIG_DFL if old is None else old)  # None: not set from Python

    return restore
