"""Run the CLI on Linux as it runs where Python lacks what Linux has: ``python -m tests.simulated_platform windows
upload ...`` (from the repository's root).

``windows``: no ``os.preadv``, ``os.pread`` nor ``RWF_NOWAIT`` (the reader seeks and reads instead), no
``resource`` module (no open-file limit to raise), no uvloop, and an event loop whose ``add_signal_handler``
raises ``NotImplementedError`` as Windows' loops do (signals reach the run through ``signal.signal``). The
patches are made before ``async_uploader`` is imported, since the reader chooses how it reads at import.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

WINDOWS_LACKS = ("preadv", "pread", "RWF_NOWAIT")


def _no_signal_handlers(self: Any, sig: int, *args: Any) -> Any:
    raise NotImplementedError


def simulate_windows() -> None:
    import asyncio.unix_events  # here: the module does not exist on Windows, where this is never needed

    for name in WINDOWS_LACKS:
        if hasattr(os, name):
            delattr(os, name)
    sys.modules["resource"] = None  # type: ignore[assignment]  # import resource: ImportError, as on Windows
    os.environ["ASYNC_UPLOADER_EVENT_LOOP"] = "asyncio"  # uvloop does not exist on Windows
    loop_class: Any = asyncio.unix_events._UnixSelectorEventLoop
    loop_class.add_signal_handler = _no_signal_handlers
    loop_class.remove_signal_handler = _no_signal_handlers


PLATFORMS = {"windows": simulate_windows}


def main(argv: list[str]) -> NoReturn:
    PLATFORMS[argv[0]]()
    from async_uploader.cli import main as cli_main

    cli_main(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
