"""The option table's vocabulary: an ``Option``, its ``Scope`` and its ``Kind``.

Apart from ``options`` (which re-exports these) so that a module holding a family of options (``header_options``)
can declare its entries without importing the table.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import Any


class Scope(enum.Enum):
    """Whose option it is: a run's (``UploadConfig``), a connection's (the ``Uploader``), the command line's."""

    RUN = "run"
    CONNECTION = "connection"
    CLI = "command line"


class Kind(enum.Enum):
    """How the command line spells an option."""

    VALUE = "value"
    """``--part-size 16MiB``, or a positional argument."""
    FLAG = "flag"
    """``--dry-run``: present or not. With a default of True the flag turns something off (``--no-state``)."""
    SWITCH = "switch"
    """``--lean on|off``: a bool, spelled on or off."""
    LIST = "list"
    """``--metadata K=V``: repeatable, each value appended, in command-line order, to a tuple."""
    FILTER = "filter"
    """``--include``/``--exclude``: repeatable, gathered with its sibling in command-line order (the last match
    wins), into ``make_config``'s ``filters``."""


@dataclass(frozen=True, slots=True)
class Option:
    """One option: its command-line spellings, its library keyword, its default and what it means."""

    name: str
    """The library's keyword (``part_size``), and the attribute the command line parses it into."""
    flags: tuple[str, ...]
    """Its command-line spellings, the first one the one docs show; empty for a positional argument."""
    scope: Scope
    _: KW_ONLY
    help: str
    """What it does, for ``--help`` and docs/cli.md: lower case, no final stop, no default (added from ``default``)."""
    kind: Kind = Kind.VALUE
    default: Any = None
    """The library's default, which the command line shares."""
    cli_type: Callable[[str], Any] = str
    """How the command line reads the text (``int``, ``float``); ``str`` leaves the reading to ``validate``."""
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    group: str | None = None
    """Options naming the same group exclude each other on the command line."""
    shown_default: str | None = None
    """The default as help and docs say it, where the value would not (``from the AWS config``, ``8MiB``)."""
    field: str | None = None
    """The ``UploadConfig`` field ``make_config`` fills with the value; ``None`` when it fills none by itself."""
    validate: Callable[[Any], Any] | None = None
    """Turns a value (from either face) into its field's value, or raises ``ConfigError``; ``None``: as is."""
    nargs: str | None = None
    """argparse's ``nargs`` for a positional argument that takes several values (``"+"``)."""

    @property
    def default_text(self) -> str:
        """The default as help and docs show it; empty when there is nothing to say (a flag, no value)."""
        if self.shown_default is not None:
            return self.shown_default
        if self.kind is Kind.SWITCH:
            return "on" if self.default else "off"
        if self.kind in (Kind.FLAG, Kind.FILTER, Kind.LIST) or self.default is None or not self.flags:
            return ""
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)

    @property
    def described(self) -> str:
        """The help with its default: what ``--help`` and docs/cli.md print."""
        return f"{self.help} (default: {self.default_text})" if self.default_text else self.help
