"""The command line: ``upload``, ``cleanup`` and ``merge-reports``, each a run that ends in one exit code.

Exit codes: 0 every file uploaded or skipped as unchanged; 1 some files failed (the rest were uploaded); 2
usage, configuration, credential, endpoint or bucket error before uploading; 130 interrupted (Ctrl-C); 143
terminated (SIGTERM). ``cleanup``: 0 done, 1 some aborts failed, 2 as above. ``merge-reports``: 0 every file
uploaded or skipped, 1 some failed or a shard did not finish, 2 unreadable reports.

``parser`` makes the grammar from the option table, ``process`` tunes the process and handles signals,
``output`` prints (``progress`` is the display, ``summaries`` the closing words).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final, NoReturn

from ..api import cleanup, run_config
from ..config import UploadConfig, check_endpoint_url, parse_duration
from ..errors import ConfigError, UploaderError
from ..events import UploadResult
from ..options import CLEANUP, PROG, STREAM_SOURCE, Scope
from ..report import merge_reports
from ..source.stream import byte_stream
from .output import (
    Runner,
    escape_what_streams_cannot_encode,
    fail,
    open_display,
    print_cleanup,
    print_machine_summary,
    print_summary,
    run_with_display,
)
from .parser import build_parser, config_from_args, keywords
from .process import (
    Stopped,
    cancel_on_signals,
    concurrency_within_open_files,
    pin_mmap_threshold,
    run_event_loop,
)
from .progress import PlainConsole

EXIT_OK: Final = 0
EXIT_FILES_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 128 + signal.SIGINT
EXIT_TERMINATED: Final = 128 + signal.SIGTERM


def runner_from_args(args: argparse.Namespace, config: UploadConfig) -> Runner:
    """``run_config``, or with ``--dask`` the same run spread over that cluster (checked now, not mid-display)."""
    count_totals = not (args.quiet or args.no_progress)  # the totals feed only the progress display
    if args.dask is None:
        if args.shards is not None:
            raise ConfigError("--shards needs --dask (for one shard of a job array, give --shard K/N)")
        # SOURCE -: stdin, read in a worker thread a part at a time (not the text wrapper: the bytes as they are)
        stream = None
        if args.source == STREAM_SOURCE:
            if sys.stdin is None or sys.stdin.isatty():  # waiting for a terminal to type a tarball helps no one
                raise ConfigError("SOURCE - reads stdin, which is a terminal: pipe the stream in (CMD | ... upload -)")
            stream = byte_stream(sys.stdin.buffer)
        return functools.partial(run_config, count_totals=count_totals, lean=args.lean, stream=stream)
    from ..cluster import check_options, run_distributed  # only with --dask: it needs the [dask] extra

    check_options(config, args.shards)
    return functools.partial(
        run_distributed, scheduler=args.dask, shards=args.shards, count_totals=count_totals, lean=args.lean
    )


def _fit_open_file_limit(config: UploadConfig) -> UploadConfig:
    """``config``, with its concurrency lowered (and one line saying so) if the open-file limit cannot hold it."""
    fitting, limit = concurrency_within_open_files(config.concurrency)
    if fitting == config.concurrency:
        return config
    print(
        f"{PROG}: --concurrency lowered from {config.concurrency} to {fitting}: the open-file limit is {limit} "
        "(raise it with 'ulimit -n')",
        file=sys.stderr,
    )
    return dataclasses.replace(config, concurrency=fitting)


def _upload_main(args: argparse.Namespace) -> NoReturn:
    try:
        config = config_from_args(args)
        runner = runner_from_args(args, config)
    except UploaderError as exc:
        fail(EXIT_USAGE, exc, args.debug)
    if args.dask is None and not config.dry_run:  # a Dask run's requests are its workers', not this process's
        config = _fit_open_file_limit(config)
    silent = args.quiet or args.no_progress or config.dry_run
    display, plain_ticker = open_display(silent=silent, quiet=args.quiet, verbose=args.verbose)
    try:
        result = run_event_loop(cancel_on_signals(run_with_display(config, display, plain_ticker, runner)))
    except UploaderError as exc:
        fail(EXIT_USAGE, exc, args.debug)
    except (KeyboardInterrupt, Stopped) as stop:  # KeyboardInterrupt: Ctrl-C before the loop took over
        code = stop.exit_code if isinstance(stop, Stopped) else EXIT_INTERRUPTED
        cut_short = display.result or UploadResult()  # the run's last event
        print_summary(display.console, cut_short, interrupted=True, checksums_asked=config.checksum is not None)
        if display.result is not None:  # a run began: CI reads its totals, on this exit above all
            print_machine_summary(
                args.summary_format,
                cut_short,
                destination=str(config.destination),
                report=config.report,
                github_files=True,
                interrupted=True,
            )
        word = "interrupted" if code == EXIT_INTERRUPTED else "terminated"
        fate = "left open to resume" if config.keep_partial else "aborted"
        fail(code, f"{word}: multipart uploads in flight were {fate}", False)
    print_summary(display.console, result, checksums_asked=config.checksum is not None)
    print_machine_summary(
        args.summary_format, result, destination=str(config.destination), report=config.report, github_files=True
    )
    sys.exit(EXIT_OK if result.ok else EXIT_FILES_FAILED)


def _cleanup_main(args: argparse.Namespace) -> NoReturn:
    try:
        parse_duration(args.older_than)
        check_endpoint_url(args.endpoint_url)
        connection = keywords(args, CLEANUP, Scope.CONNECTION)
        result = asyncio.run(cleanup(args.destination, **keywords(args, CLEANUP, Scope.RUN), **connection))
    except UploaderError as exc:
        fail(EXIT_USAGE, exc, args.debug)
    except KeyboardInterrupt:
        fail(EXIT_INTERRUPTED, "interrupted", False)
    print_cleanup(result, dry_run=args.dry_run, older_than=args.older_than)
    sys.exit(EXIT_FILES_FAILED if result.failed else EXIT_OK)


def _merge_main(args: argparse.Namespace) -> NoReturn:
    output = Path(args.output) if args.output else None
    try:
        if output is not None and any(output.resolve() == Path(r).resolve() for r in args.reports):
            raise ConfigError("--output must name a new file, not one of the reports")
        merged = merge_reports([Path(r) for r in args.reports], output)
    except UploaderError as exc:
        fail(EXIT_USAGE, exc, args.debug)
    print_summary(PlainConsole(stderr=True), merged.result)
    for report in merged.incomplete:
        print(f"{PROG}: {report}: the run did not finish (no summary, or interrupted)", file=sys.stderr)
    destination = f"{len(args.reports)} reports"
    print_machine_summary(
        args.summary_format, merged.result, destination=destination, report=output, github_files=False
    )
    sys.exit(EXIT_FILES_FAILED if merged.result.failed or merged.incomplete else EXIT_OK)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script: parse ``argv`` (default: the process's), run the command, exit with its code."""
    pin_mmap_threshold()
    escape_what_streams_cannot_encode()
    try:
        args = build_parser().parse_args(argv)
    except ConfigError as exc:  # a usage error: one line, like any other
        fail(EXIT_USAGE, exc, False)
    logging.basicConfig(format=f"{PROG}: %(message)s", level=logging.DEBUG if args.debug else logging.WARNING)
    for noisy in ("botocore", "aiobotocore", "urllib3"):  # their debug logs carry request headers: tokens
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command == "cleanup":
        _cleanup_main(args)
    if args.command == "merge-reports":
        _merge_main(args)
    _upload_main(args)
