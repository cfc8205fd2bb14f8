"""The command line's grammar, made from the option table (``options.COMMANDS``), and its values as a config.

``--help`` lists an upload's options by scope: how to reach the store, the run, the command line's own. A usage
error is a ``ConfigError`` like any other, so it is printed as one line with exit code 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from .. import __version__
from ..config import UploadConfig
from ..errors import ConfigError
from ..options import (
    COMMANDS,
    CONFIG_CONNECTION_KEYWORDS,
    DESCRIPTION,
    PROG,
    STREAM_SOURCE,
    UPLOAD,
    Command,
    Kind,
    Option,
    Scope,
    make_config,
    make_stream_config,
)

FILTERS_DEST = "filters"
"""Where ``--include`` and ``--exclude`` gather, in command-line order: ``make_config``'s ``filters``."""

_SCOPE_TITLES = {
    Scope.CONNECTION: "how to reach the store",
    Scope.RUN: "the run",
    Scope.CLI: "the command line's own",
}


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, like every other error of the tool."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see '{self.prog} --help')")


class _FilterAction(argparse.Action):
    """Collects --include and --exclude into one list in command-line order, since the last match wins."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        rules = list(getattr(namespace, self.dest, None) or [])
        rules.append(((option_string or "").lstrip("-"), str(values)))
        setattr(namespace, self.dest, rules)


class _SwitchAction(argparse.Action):
    """``on`` or ``off`` (argparse has checked the choice), stored as the bool the library takes."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values == "on")


def _add(container: Any, option: Option) -> None:
    """One option of the table as an argument of ``container`` (a parser, or one of its groups)."""
    settings: dict[str, Any] = {"help": option.described.replace("%", "%%")}  # argparse %-formats help
    if option.kind is Kind.FLAG:
        settings["action"] = "store_false" if option.default else "store_true"
    elif option.kind is Kind.SWITCH:
        settings.update(action=_SwitchAction, choices=("on", "off"), default=option.default)
    elif option.kind is Kind.FILTER:
        settings.update(action=_FilterAction, dest=FILTERS_DEST, metavar=option.metavar)
    elif option.kind is Kind.LIST:
        settings.update(action="append", default=None, metavar=option.metavar)
    else:
        settings.update(default=option.default, metavar=option.metavar, choices=option.choices or None)
        if option.cli_type is not str:
            settings["type"] = option.cli_type
        if option.nargs is not None:
            settings["nargs"] = option.nargs
    if not option.flags:
        container.add_argument(option.name, **settings)
    else:
        container.add_argument(*option.flags, **({"dest": option.name} | settings))


def _add_command(commands: Any, command: Command) -> None:
    parser = commands.add_parser(command.name, help=command.help, description=command.description)
    scopes = {option.scope for option in command.options if option.flags}
    # argparse's group classes are private: Any. Sections in one order for every command.
    sections: dict[Scope, Any] = {s: parser.add_argument_group(t) for s, t in _SCOPE_TITLES.items() if s in scopes}
    exclusive: dict[str, Any] = {}
    for option in command.options:
        if not option.flags:
            _add(parser, option)
            continue
        container: Any = sections[option.scope]
        if option.group is not None:
            if option.group not in exclusive:
                exclusive[option.group] = container.add_mutually_exclusive_group()
            container = exclusive[option.group]
        _add(container, option)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand, from the option table."""
    parser = ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for command in COMMANDS:
        _add_command(commands, command)
    return parser


def keywords(args: argparse.Namespace, command: Command, scope: Scope) -> dict[str, Any]:
    """``command``'s options of one scope, as the library's keywords (``--include``/``--exclude`` aside)."""
    found = {
        option.name: getattr(args, option.name)
        for option in command.options
        if option.scope is scope and option.flags and option.kind is not Kind.FILTER
    }
    # A repeatable option given no time is its default (argparse's append cannot start from a tuple).
    return {
        name: option.default if value is None and option.kind is Kind.LIST else value
        for name, value, option in ((o.name, found[o.name], o) for o in command.options if o.name in found)
    }


def config_from_args(args: argparse.Namespace) -> UploadConfig:
    """The run ``upload``'s arguments describe, validated; SOURCE ``-`` is stdin's stream."""
    if args.source == STREAM_SOURCE:
        return make_stream_config(
            args.destination,
            filters=getattr(args, FILTERS_DEST, None) or (),
            **keywords(args, UPLOAD, Scope.RUN),
            **{k: v for k, v in keywords(args, UPLOAD, Scope.CONNECTION).items() if k in CONFIG_CONNECTION_KEYWORDS},
        )
    return make_config(
        args.source,
        args.destination,
        filters=getattr(args, FILTERS_DEST, None) or (),
        **keywords(args, UPLOAD, Scope.RUN),
        # UploadConfig carries the connection's options too, for Dask workers (see UploadConfig).
        **{k: v for k, v in keywords(args, UPLOAD, Scope.CONNECTION).items() if k in CONFIG_CONNECTION_KEYWORDS},
    )
