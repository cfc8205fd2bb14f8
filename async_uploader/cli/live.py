"""The live display's columns: rich's ``Progress`` with binary units throughout, an elapsed time, and an ETA
that counts the files left as well as the bytes. Imported only for a live display: plain lines never need rich.

One row fits 80 columns: label (files, or the phase before the first file), a short bar, bytes done of the
total in MiB, the rate in MiB/s, the elapsed time and the ETA.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Column
from rich.text import Text

from .units import format_bytes

BAR_WIDTH: Final = 8
LABEL_WIDTH: Final = 27
"""At most this wide, the label: the rest of a row takes up to 53 columns, and a row must fit 80."""
OVERALL_TASK: Final = 0
"""rich numbers tasks from 0, and the display adds the overall row first."""


class RateColumn(ProgressColumn):
    """The task's recent rate in the same binary units as its bytes (rich's own says MB/s beside MiB)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("?/s" if speed is None else f"{format_bytes(speed)}/s", style="progress.data.speed")


class EtaColumn(ProgressColumn):
    """The run's ETA (``eta_text``: from the files and the bytes left), on the overall row only."""

    def __init__(self, eta_text: Callable[[], str]) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self._eta_text = eta_text

    def render(self, task: Task) -> Text:
        if task.id != OVERALL_TASK:
            return Text("")
        return Text(self._eta_text(), style="progress.remaining")


def live_progress(console: Console, eta_text: Callable[[], str]) -> Progress:
    """The ``Progress`` a live ``ProgressDisplay`` draws; its first task is the overall row."""
    return Progress(
        TextColumn("[bold]{task.description}", table_column=Column(max_width=LABEL_WIDTH, no_wrap=True)),
        BarColumn(bar_width=BAR_WIDTH),
        DownloadColumn(binary_units=True, table_column=Column(no_wrap=True)),
        RateColumn(table_column=Column(no_wrap=True)),
        TimeElapsedColumn(table_column=Column(no_wrap=True)),
        EtaColumn(eta_text),
        console=console,
        refresh_per_second=10,
        transient=False,
        expand=False,
    )
