"""The command line: parse flags into an ``UploadConfig``, run it, print a summary, exit with a clear code.

Exit codes: 0 every file uploaded or skipped as unchanged; 1 some files failed (the rest were uploaded); 2
usage, configuration, credential, endpoint or bucket error before uploading; 130 interrupted (Ctrl-C); 143
terminated (SIGTERM). ``cleanup``: 0 done, 1 some aborts failed, 2 as above. ``merge-reports``: 0 every file
uploaded or skipped, 1 some failed or a shard did not finish, 2 unreadable reports.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import functools
import gc
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

import anyio

from . import __version__
from .api import DEFAULT_CLEANUP_AGE, cleanup, run_config
from .ci import SUMMARY_FORMATS, summary_json, summary_markdown, write_github_files
from .config import (
    DEFAULT_ATTEMPTS,
    DEFAULT_CONCURRENCY,
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_DEADLINE_S,
    DEFAULT_MAX_MEMORY_BYTES,
    DEFAULT_MULTIPART_THRESHOLD_BYTES,
    DEFAULT_PART_SIZE_BYTES,
    DEFAULT_READ_TIMEOUT_S,
    Overwrite,
    UploadConfig,
    check_endpoint_url,
    make_config,
    parse_duration,
)
from .errors import ConfigError, UploaderError
from .events import Event, UploadResult
from .progress import LineConsole, PlainConsole, ProgressDisplay, stream_is_terminal, summary_lines
from .report import merge_reports

PROG: Final = "async-uploader"
EXIT_OK: Final = 0
EXIT_FILES_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
EXIT_TERMINATED: Final = 143


class _ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, like every other error of the tool."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


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


ENDPOINT_HELP = (
    "s3://: an S3-compatible endpoint (default: AWS, or $AWS_ENDPOINT_URL_S3); az://: the account URL, "
    "https://ACCOUNT.blob.core.windows.net (default: from $AZURE_STORAGE_CONNECTION_STRING)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog=PROG, description="Upload a directory tree to private S3-compatible storage or Azure Blob Storage."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)
    up = commands.add_parser(
        "upload",
        help="upload every file below SOURCE to s3://BUCKET/PREFIX or az://CONTAINER/PREFIX",
        description="Upload every regular file below SOURCE to s3://BUCKET/PREFIX (or az://CONTAINER/PREFIX), "
        "keys relative to SOURCE.",
    )
    up.add_argument("source", metavar="SOURCE", help="directory to upload")
    up.add_argument("destination", metavar="DEST", help="s3://bucket[/prefix] or az://container[/prefix]")
    up.add_argument("--endpoint-url", "--account-url", dest="endpoint_url", metavar="URL", help=ENDPOINT_HELP)
    up.add_argument("--region", help="AWS region (default: from the AWS config)")
    up.add_argument("--profile", help="AWS shared-config profile to take credentials from")
    up.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"requests in flight, files and parts together (default {DEFAULT_CONCURRENCY})",
    )
    up.add_argument(
        "--part-size",
        default=str(DEFAULT_PART_SIZE_BYTES),
        help="multipart part size, e.g. 16MiB (default 8MiB)",
    )
    up.add_argument(
        "--multipart-threshold",
        default=str(DEFAULT_MULTIPART_THRESHOLD_BYTES),
        help="files this large or larger use multipart upload (default 8MiB)",
    )
    up.add_argument(
        "--max-memory",
        default=str(DEFAULT_MAX_MEMORY_BYTES),
        help="cap on file and part bytes held in memory at once (default 128MiB)",
    )
    up.add_argument(
        "--include",
        action=_FilterAction,
        dest="filters",
        metavar="GLOB",
        help="take paths matching GLOB (repeatable; with --exclude, the last matching flag wins)",
    )
    up.add_argument(
        "--exclude",
        action=_FilterAction,
        dest="filters",
        metavar="GLOB",
        help="leave out paths matching GLOB; an excluded directory is not even walked",
    )
    up.add_argument(
        "--follow-symlinks", action="store_true", help="also descend symlinked directories (loops are detected)"
    )
    up.add_argument("--max-bandwidth", metavar="RATE", help="cap the upload rate, e.g. 50MB/s or 200Mbit/s")
    up.add_argument("--report", metavar="FILE", help="write a JSON Lines record per file, then a summary")
    up.add_argument("--retry-failed", metavar="REPORT", help="upload only the files REPORT lists as failed")
    up.add_argument("--dry-run", action="store_true", help="print what would be uploaded; send nothing")
    up.add_argument(
        "--retries", type=int, default=DEFAULT_ATTEMPTS, help=f"tries per request (default {DEFAULT_ATTEMPTS})"
    )
    up.add_argument(
        "--retry-deadline",
        type=float,
        default=DEFAULT_DEADLINE_S,
        metavar="SECONDS",
        help=f"time one file may spend retrying (default {DEFAULT_DEADLINE_S:.0f})",
    )
    up.add_argument(
        "--max-cpu", type=float, metavar="PERCENT", help="keep CPU use under PERCENT of one core (lowers concurrency)"
    )
    up.add_argument(
        "--overwrite",
        choices=[mode.value for mode in Overwrite],
        default=Overwrite.CHANGED.value,
        help="when the key exists: always upload, skip unless size or mtime changed (default), or never upload",
    )
    state = up.add_mutually_exclusive_group()
    state.add_argument(
        "--state-file",
        metavar="FILE",
        help="where runs remember what they uploaded (default: ~/.cache/async-uploader/state.sqlite3)",
    )
    state.add_argument(
        "--no-state", action="store_true", help="remember nothing: existing objects are checked one HEAD each"
    )
    up.add_argument(
        "--shard",
        metavar="K/N",
        help="upload only the K-th of N disjoint parts of the tree (0 <= K < N), for job arrays and CI matrices",
    )
    up.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="spread the upload over a Dask cluster (tcp://scheduler:8786), a shard per task; SOURCE must be the "
        "same path on every worker (needs the [dask] extra)",
    )
    up.add_argument(
        "--shards",
        type=int,
        metavar="N",
        help="with --dask: split the tree into N shards (default: one per worker thread of the cluster)",
    )
    up.add_argument(
        "--checksum",
        choices=["crc32", "crc32c", "sha256", "none"],
        default="crc32",
        help="checksum every body carries for the server to verify; large files also get their whole CRC checked "
        "(default crc32; crc32c needs the [crc32c] extra)",
    )
    up.add_argument(
        "--keep-partial",
        action="store_true",
        help="on Ctrl-C or SIGTERM, leave multipart uploads open for the next run to resume instead of aborting",
    )
    up.add_argument("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT_S, metavar="SECONDS")
    up.add_argument("--read-timeout", type=float, default=DEFAULT_READ_TIMEOUT_S, metavar="SECONDS")
    up.add_argument(
        "--lean",
        choices=("on", "off"),
        default="on",
        help="send file bodies over the lean signed-request path (on, default) or through aiobotocore (off)",
    )
    up.add_argument("--debug", action="store_true", help="show a traceback with errors")
    up.add_argument(
        "--summary-format",
        choices=SUMMARY_FORMATS,
        default="text",
        help="also print the summary for machines: json (stdout) or github (markdown, job summary, step outputs)",
    )
    clean = commands.add_parser(
        "cleanup",
        help="abort incomplete multipart uploads left under s3://BUCKET/PREFIX",
        description="Abort the incomplete multipart uploads under s3://BUCKET/PREFIX (their parts are billed "
        "until aborted): those of killed runs, of --keep-partial never resumed, of other tools. On az:// there is "
        "nothing to abort: uncommitted blocks expire by themselves after seven days.",
    )
    clean.add_argument("destination", metavar="DEST", help="s3://bucket[/prefix] or az://container[/prefix]")
    clean.add_argument(
        "--older-than",
        default=DEFAULT_CLEANUP_AGE,
        metavar="AGE",
        help=f"only uploads started at least AGE ago, e.g. 12h, 7d, 0 for all (default {DEFAULT_CLEANUP_AGE})",
    )
    clean.add_argument("--dry-run", action="store_true", help="list what would be aborted; abort nothing")
    clean.add_argument("--endpoint-url", "--account-url", dest="endpoint_url", metavar="URL", help=ENDPOINT_HELP)
    clean.add_argument("--region", help="AWS region (default: from the AWS config)")
    clean.add_argument("--profile", help="AWS shared-config profile to take credentials from")
    clean.add_argument("--debug", action="store_true", help="show a traceback with errors")
    merge = commands.add_parser(
        "merge-reports",
        help="combine the reports of --shard runs into one summary (and one report)",
        description="Combine the JSON Lines reports of several runs (the shards of one upload) into one summary; "
        "with --output, also one report. Exit 1 if any file failed or any shard did not finish.",
    )
    merge.add_argument("reports", metavar="REPORT", nargs="+", help="reports written by --report")
    merge.add_argument("--output", "-o", metavar="FILE", help="write the merged report here")
    merge.add_argument("--summary-format", choices=SUMMARY_FORMATS, default="text")
    merge.add_argument("--debug", action="store_true", help="show a traceback with errors")
    shown = up.add_mutually_exclusive_group()
    shown.add_argument("--no-progress", action="store_true", help="no live display or progress lines")
    shown.add_argument("-q", "--quiet", action="store_true", help="print only errors and the summary")
    shown.add_argument("-v", "--verbose", action="store_true", help="also print one line per uploaded file")
    return parser


def config_from_args(args: argparse.Namespace) -> UploadConfig:
    return make_config(
        args.source,
        args.destination,
        endpoint_url=args.endpoint_url,
        region=args.region,
        profile=args.profile,
        concurrency=args.concurrency,
        part_size=args.part_size,
        multipart_threshold=args.multipart_threshold,
        max_memory=args.max_memory,
        filters=args.filters or (),
        follow_symlinks=args.follow_symlinks,
        max_bandwidth=args.max_bandwidth,
        report=args.report,
        retry_failed=args.retry_failed,
        dry_run=args.dry_run,
        retries=args.retries,
        retry_deadline=args.retry_deadline,
        max_cpu=args.max_cpu,
        connect_timeout=args.connect_timeout,
        count_first=not (args.quiet or args.no_progress),  # the totals feed only the progress display
        cached_reads_on_loop=True,  # the loop is ours: no application shares it
        read_timeout=args.read_timeout,
        overwrite=args.overwrite,
        state_file=args.state_file,
        use_state=not args.no_state,
        keep_partial=args.keep_partial,
        checksum=args.checksum,
        shard=args.shard,
    )


Runner = Callable[..., Coroutine[Any, Any, UploadResult]]
"""``run_config``, or ``run_distributed`` with its cluster: called as ``runner(config, on_event=...)``."""


def runner_from_args(args: argparse.Namespace, config: UploadConfig) -> Runner:
    """``run_config``, or with ``--dask`` the same run spread over that cluster (checked now, not mid-display)."""
    if args.dask is None:
        if args.shards is not None:
            raise ConfigError("--shards needs --dask (for one shard of a job array, give --shard K/N)")
        return functools.partial(run_config, lean=args.lean == "on")
    from .cluster import check_options, run_distributed  # only with --dask: it needs the [dask] extra

    check_options(config, args.shards)
    return functools.partial(run_distributed, scheduler=args.dask, shards=args.shards, lean=args.lean == "on")


async def _upload_with_display(
    config: UploadConfig, display: ProgressDisplay, plain_ticker: bool, runner: Runner = run_config
) -> UploadResult:
    def on_event(event: Event) -> None:
        display.handle(event)

    # Errors are caught inside the group and raised after it, so the caller sees them bare, not grouped.
    outcome: UploadResult | UploaderError
    async with anyio.create_task_group() as group:
        if plain_ticker:
            group.start_soon(display.tick_plain)
        try:
            with display:
                outcome = await runner(config, on_event=on_event)
        except UploaderError as exc:
            outcome = exc
        finally:
            group.cancel_scope.cancel()
    if isinstance(outcome, UploaderError):
        raise outcome
    return outcome


async def _main_task(
    config: UploadConfig, display: ProgressDisplay, plain_ticker: bool, runner: Runner = run_config
) -> UploadResult:
    """Run the upload; Ctrl-C and SIGTERM cancel it (aborting uploads in flight), a second signal exits at once."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(code: int) -> None:
        if received:  # the user insists: do not wait for the aborts
            print(f"\n{PROG}: stopped at once; multipart uploads may be left to abort", file=sys.stderr)
            os._exit(code)
        received.append(code)
        task.cancel()

    loop.add_signal_handler(signal.SIGINT, on_signal, EXIT_INTERRUPTED)
    loop.add_signal_handler(signal.SIGTERM, on_signal, EXIT_TERMINATED)
    try:
        return await _upload_with_display(config, display, plain_ticker, runner)
    except asyncio.CancelledError:
        if received:
            raise _Stopped(received[0]) from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)


class _Stopped(Exception):
    """The run was cancelled by a signal; ``args[0]`` is the exit code."""


M_MMAP_THRESHOLD: Final = -3
MMAP_THRESHOLD_BYTES: Final = 1024 * 1024


def _pin_mmap_threshold() -> None:
    """Make glibc give part buffers back to the OS as soon as they are freed.

    glibc raises its mmap threshold after the first large block is freed, so later multi-MiB part buffers come
    from the heap and per-thread arenas, which are seldom returned: a 1 GiB upload peaked at 350 MiB against a
    128 MiB budget. Pinning the threshold (which also stops its adjustment) keeps each buffer its own mapping;
    the same upload then peaks near 200 MiB. Only the CLI does this: the process is ours, not an application's.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):  # not glibc (musl, say): nothing to tune
        pass


GC_YOUNG_OBJECTS: Final = 20_000


def _collect_garbage_less_often() -> None:
    """Run the cyclic garbage collector seldom, and never over what start-up built.

    An upload allocates a few hundred objects per file, nearly all freed by reference counting. With Python's
    defaults (a young collection every 700 allocations, a full one now and then walking every object the imports
    made) the collector took 3-6% of the client's CPU on small files. Start-up's objects (modules, classes,
    botocore's models) are never garbage: frozen, no collection walks them; the young generation is collected
    every ``GC_YOUNG_OBJECTS`` allocations. Only the CLI does this: the process is ours, not an application's.
    """
    gc.freeze()
    gc.set_threshold(GC_YOUNG_OBJECTS, *gc.get_threshold()[1:])


def _cleanup_main(args: argparse.Namespace) -> NoReturn:
    try:
        parse_duration(args.older_than)
        check_endpoint_url(args.endpoint_url)
        result = asyncio.run(
            cleanup(
                args.destination,
                older_than=args.older_than,
                dry_run=args.dry_run,
                endpoint_url=args.endpoint_url,
                region=args.region,
                profile=args.profile,
            )
        )
    except UploaderError as exc:
        _fail(EXIT_USAGE, exc, args.debug)
    except KeyboardInterrupt:
        _fail(EXIT_INTERRUPTED, "interrupted", False)
    verb = "would abort" if args.dry_run else "aborted"
    for upload in result.aborted:
        started = datetime.fromtimestamp(upload.initiated, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        print(f"{verb} {upload.key} (started {started}, id {upload.upload_id})")
    for upload, reason in result.failed:
        print(f"{PROG}: could not abort {upload.key} (id {upload.upload_id}): {reason}", file=sys.stderr)
    younger = f"; {result.younger} younger than {args.older_than} left alone" if result.younger else ""
    print(f"{len(result.aborted)} incomplete uploads {verb}, {len(result.failed)} failed{younger}", file=sys.stderr)
    sys.exit(EXIT_FILES_FAILED if result.failed else EXIT_OK)


def _merge_main(args: argparse.Namespace) -> NoReturn:
    output = Path(args.output) if args.output else None
    try:
        if output is not None and any(output.resolve() == Path(r).resolve() for r in args.reports):
            raise ConfigError("--output must name a new file, not one of the reports")
        merged = merge_reports([Path(r) for r in args.reports], output)
    except UploaderError as exc:
        _fail(EXIT_USAGE, exc, args.debug)
    _print_summary(PlainConsole(stderr=True), merged.result)
    for report in merged.incomplete:
        print(f"{PROG}: {report}: the run did not finish (no summary, or interrupted)", file=sys.stderr)
    destination = f"{len(args.reports)} reports"
    if args.summary_format == "json":
        print(summary_json(merged.result, destination=destination, report=output))
    elif args.summary_format == "github":
        print(summary_markdown(merged.result, destination=destination), end="")
    sys.exit(EXIT_FILES_FAILED if merged.result.failed or merged.incomplete else EXIT_OK)


T = TypeVar("T")
EVENT_LOOP_ENV: Final = "ASYNC_UPLOADER_EVENT_LOOP"


def run_event_loop(main_task: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed (the ``fast`` extra), else on asyncio's own loop.

    uvloop takes ~10% off the CPU per small file (measured in docs/benchmarks.md). ``ASYNC_UPLOADER_EVENT_LOOP=
    asyncio`` keeps the standard loop, to compare or to rule uvloop out.
    """
    _collect_garbage_less_often()
    if os.environ.get(EVENT_LOOP_ENV, "").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main_task)
    return asyncio.run(main_task)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    _pin_mmap_threshold()
    args = build_parser().parse_args(argv)
    logging.basicConfig(format=f"{PROG}: %(message)s", level=logging.DEBUG if args.debug else logging.WARNING)
    for noisy in ("botocore", "aiobotocore", "urllib3"):  # their debug logs carry request headers: tokens
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command == "cleanup":
        _cleanup_main(args)
    if args.command == "merge-reports":
        _merge_main(args)
    try:
        config = config_from_args(args)
        runner = runner_from_args(args, config)
    except UploaderError as exc:
        _fail(EXIT_USAGE, exc, args.debug)
    quiet = args.quiet or args.no_progress or config.dry_run
    on_terminal = stream_is_terminal(sys.stderr)
    live = on_terminal and not quiet
    plain_ticker = not on_terminal and not quiet
    err: LineConsole
    if live:
        from rich.console import Console  # only for the live display: rich costs 2.5 MiB that plain lines need not

        # A line is never wrapped at 80 columns; a name is printed as it is, not as the emoji ":name:" could be.
        err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
    else:
        err = PlainConsole(stderr=True)
    display = ProgressDisplay(err, live=live, verbose=args.verbose, quiet=args.quiet, out=PlainConsole())
    try:
        result = run_event_loop(_main_task(config, display, plain_ticker, runner))
    except UploaderError as exc:
        _fail(EXIT_USAGE, exc, args.debug)
    except (KeyboardInterrupt, _Stopped) as stop:  # KeyboardInterrupt: Ctrl-C before the loop took over
        code = stop.args[0] if isinstance(stop, _Stopped) else EXIT_INTERRUPTED
        _print_summary(err, display.so_far.result())
        word = "interrupted" if code == EXIT_INTERRUPTED else "terminated"
        fate = "left open to resume" if config.keep_partial else "aborted"
        _fail(code, f"{word}: multipart uploads in flight were {fate}", False)
    _print_summary(err, result)
    destination = str(config.destination)
    if args.summary_format == "json":
        print(summary_json(result, destination=destination, report=config.report))
    elif args.summary_format == "github":
        print(summary_markdown(result, destination=destination), end="")
        write_github_files(result, destination=destination, report=config.report)
    sys.exit(EXIT_OK if result.ok else EXIT_FILES_FAILED)


def _print_summary(console: LineConsole, result: UploadResult) -> None:
    for line in summary_lines(result):
        console.print(line, markup=False, highlight=False)


def _fail(code: int, error: UploaderError | str, debug: bool) -> NoReturn:
    if debug and isinstance(error, BaseException):
        traceback.print_exception(error)
    print(f"{PROG}: error: {error}", file=sys.stderr)
    sys.exit(code)
