"""Every option of the command line and of the library, declared once in ``COMMANDS``.

From the table are made: the command line's parsers (``cli.parser``), ``make_config`` (a run's keywords into a
validated ``UploadConfig``), and docs/cli.md (``reference_markdown``, written by ``python -m tools.cli_reference``;
a test fails when the file is stale). ``RunOptions``, the typed keywords of ``upload()``, is written out for the type
checker, and a test holds it, ``UploadConfig`` and the keywords of ``Uploader``/``upload()`` equal to the table.

Each option has a scope. A run's options (``Scope.RUN``) fill ``UploadConfig``. A connection's
(``Scope.CONNECTION``: endpoint, region, profile, timeouts, ``lean``) say how to reach the store: they are the
``Uploader``'s keywords, whose pool is sized by the run's ``concurrency``. The command line's own
(``Scope.CLI``: output, debugging, Dask) never leave ``async_uploader.cli``. A new option is one entry here,
its field in ``UploadConfig`` and its key in ``RunOptions`` (the test names what is missing), and its use.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Unpack

from . import config
from .config import Compare, Overwrite, UploadConfig
from .errors import ConfigError
from .header_options import OBJECT_OPTIONS, ObjectOptions, check_combination
from .option_model import Kind as Kind
from .option_model import Option as Option
from .option_model import Scope as Scope
from .source.checksum import Algorithm, parse_algorithm


@dataclass(frozen=True, slots=True)
class Command:
    """A subcommand: its one-line help, its description, and its options in the order ``--help`` lists them."""

    name: str
    help: str
    description: str
    library: tuple[str, ...]
    """The library's functions that take the same options as keywords, the one-shot function first."""
    options: tuple[Option, ...]


PROG: Final = "async-uploader"
DESCRIPTION: Final = "Upload a directory tree to private S3-compatible storage or Azure Blob Storage."
SUMMARY_FORMATS: Final = ("text", "json", "github")


def _mib(size: int) -> str:
    return f"{size // config.MIB}MiB"


# The table, one entry per option (unformatted, so that an entry reads as one record). Entries more than one
# command shares come first.
# fmt: off
DESTINATION: Final = Option("destination", (), Scope.RUN, metavar="DEST",
    help="s3://bucket[/prefix] or az://container[/prefix]")
ENDPOINT_URL: Final = Option("endpoint_url", ("--endpoint-url", "--account-url"), Scope.CONNECTION, metavar="URL",
    field="endpoint_url", validate=config.check_endpoint_url,
    help="s3://: an S3-compatible endpoint (default: AWS, or $AWS_ENDPOINT_URL_S3); az://: the account URL, "
    "https://ACCOUNT.blob.core.windows.net (default: from $AZURE_STORAGE_CONNECTION_STRING)")
REGION: Final = Option("region", ("--region",), Scope.CONNECTION, metavar="REGION", field="region",
    shown_default="from the AWS config", help="AWS region")
PROFILE: Final = Option("profile", ("--profile",), Scope.CONNECTION, metavar="PROFILE", field="profile",
    help="AWS shared-config profile to take credentials from")
REQUEST_PAYER: Final = Option("request_payer", ("--request-payer",), Scope.CONNECTION, metavar="requester",
    field="request_payer", validate=config.check_request_payer,
    help="s3://: the requester pays for the requests and the data of a requester-pays bucket "
    "(every request says so with x-amz-request-payer: requester)")
DEBUG: Final = Option("debug", ("--debug",), Scope.CLI, kind=Kind.FLAG, default=False,
    help="show a traceback with errors")

UPLOAD: Final = Command(
    "upload",
    help="upload every file below SOURCE to s3://BUCKET/PREFIX or az://CONTAINER/PREFIX",
    description="Upload every regular file below SOURCE to s3://BUCKET/PREFIX (or az://CONTAINER/PREFIX), keys "
    "relative to SOURCE. A SOURCE that is one file goes into the folder a destination ending in / names, or to the "
    "exact key it names; SOURCE - streams stdin to an exact key.",
    library=("upload()", "Uploader.upload()", "make_config()"),
    options=(
        Option("source", (), Scope.RUN, metavar="SOURCE",
            help="directory to upload, or one file, or - to stream stdin to an exact key"),
        DESTINATION,
        ENDPOINT_URL,
        REGION,
        PROFILE,
        REQUEST_PAYER,
        Option("connect_timeout", ("--connect-timeout",), Scope.CONNECTION, cli_type=float, metavar="SECONDS",
            default=config.DEFAULT_CONNECT_TIMEOUT_S, field="connect_timeout_s", validate=config.check_seconds,
            help="seconds to wait for a connection to the store"),
        Option("read_timeout", ("--read-timeout",), Scope.CONNECTION, cli_type=float, metavar="SECONDS",
            default=config.DEFAULT_READ_TIMEOUT_S, field="read_timeout_s", validate=config.check_seconds,
            help="seconds to wait for each read of an answer"),
        Option("lean", ("--lean",), Scope.CONNECTION, kind=Kind.SWITCH, default=True,
            help="send file bodies (PutObject, UploadPart) over the lean signed-request path (on) or through "
            "aiobotocore (off)"),
        Option("concurrency", ("--concurrency",), Scope.RUN, cli_type=int, metavar="N",
            default=config.DEFAULT_CONCURRENCY, field="concurrency", validate=config.check_concurrency,
            help="requests in flight, files and parts together; also the size of the connection pool"),
        Option("part_size", ("--part-size",), Scope.RUN, metavar="SIZE",
            default=config.DEFAULT_PART_SIZE_BYTES, shown_default=_mib(config.DEFAULT_PART_SIZE_BYTES),
            field="part_size", validate=config.parse_part_size,
            help="multipart part size, e.g. 16MiB; grows by itself so that no file needs over 10,000 parts"),
        Option("multipart_threshold", ("--multipart-threshold",), Scope.RUN, metavar="SIZE",
            default=config.DEFAULT_MULTIPART_THRESHOLD_BYTES,
            shown_default=_mib(config.DEFAULT_MULTIPART_THRESHOLD_BYTES),
            field="multipart_threshold", validate=config.parse_size,
            help="files this large or larger use multipart upload"),
        Option("max_memory", ("--max-memory",), Scope.RUN, metavar="SIZE",
            default=config.DEFAULT_MAX_MEMORY_BYTES, shown_default=_mib(config.DEFAULT_MAX_MEMORY_BYTES),
            field="max_memory", validate=config.parse_max_memory,
            help="cap on file and part bytes held in memory at once"),
        Option("expected_size", ("--expected-size",), Scope.RUN, metavar="SIZE", default=None,
            field="expected_size", validate=config.parse_expected_size,
            help="SOURCE - (stdin): about how long the stream is, e.g. 200GiB; picks a part size that fits it in "
            "10,000 parts (without it a stream may be at most 10,000 x --part-size: ~78GiB with 8MiB parts)"),
        Option("include", ("--include",), Scope.RUN, kind=Kind.FILTER, metavar="GLOB", default=(),
            help="take paths matching GLOB (repeatable; with --exclude, the last matching flag wins); once any "
                "--include is given, a path no rule matches is left out"),
        Option("exclude", ("--exclude",), Scope.RUN, kind=Kind.FILTER, metavar="GLOB", default=(),
            help="leave out paths matching GLOB; an excluded directory is not even walked"),
        Option("follow_symlinks", ("--follow-symlinks",), Scope.RUN, kind=Kind.FLAG, default=False,
            field="follow_symlinks",
            help="also descend symlinked directories (loops are detected) and take links to files outside SOURCE "
                "(else skipped with a warning)"),
        Option("max_bandwidth", ("--max-bandwidth",), Scope.RUN, metavar="RATE",
            field="max_bandwidth", validate=config.parse_max_bandwidth,
            help="cap the upload rate of all requests together; RATE needs a unit: bytes as B, KB, MB, GB "
                "(powers of 1000) or KiB, MiB, GiB (1024), bits as bit, kbit, Mbit, Gbit; then /s, ps or "
                "nothing: 50MB/s = 50MBps; 200Mbit/s. A bare number and a lowercase b (10Mbps) are refused"),
        Option("report", ("--report",), Scope.RUN, metavar="FILE", field="report", validate=config.optional_path,
            help="write a JSON Lines record per file, then a summary"),
        Option("retry_failed", ("--retry-failed",), Scope.RUN, metavar="REPORT",
            field="retry_failed", validate=config.optional_path,
            help="upload only the files REPORT lists as failed or not started (an interrupted run's); a report "
                "of another SOURCE is refused"),
        Option("dry_run", ("--dry-run",), Scope.RUN, kind=Kind.FLAG, default=False, field="dry_run",
            help="print what would be uploaded; send nothing"),
        Option("retries", ("--retries",), Scope.RUN, cli_type=int, metavar="N",
            default=config.DEFAULT_ATTEMPTS, field="retries", validate=config.check_retries,
            help="tries per request (file or part); 1 means no retry"),
        Option("retry_deadline", ("--retry-deadline",), Scope.RUN, cli_type=float, metavar="SECONDS",
            default=config.DEFAULT_DEADLINE_S, field="retry_deadline_s", validate=config.check_seconds,
            help="time one file may spend retrying"),
        Option("max_cpu", ("--max-cpu",), Scope.RUN, cli_type=float, metavar="PERCENT",
            field="max_cpu_percent", validate=config.check_max_cpu,
            help="keep CPU use under PERCENT of one core (lowers concurrency)"),
        Option("overwrite", ("--overwrite",), Scope.RUN, choices=tuple(mode.value for mode in Overwrite),
            default=Overwrite.CHANGED.value, field="overwrite", validate=config.parse_overwrite,
            help="when the key exists: always upload, upload only if size or mtime changed, or never upload"),
        Option("compare", ("--compare",), Scope.RUN, choices=tuple(mode.value for mode in Compare),
            default=Compare.MTIME.value, field="compare", validate=config.parse_compare,
            help="what --overwrite changed compares: size and mtime, size alone (adopts objects another tool "
            "wrote, with no request per file), or the content (MD5 against the listed ETag, for CI re-runs whose "
            "mtimes are always new)"),
        Option("state_file", ("--state-file",), Scope.RUN, metavar="FILE", group="state",
            shown_default="state.sqlite3 in the OS's cache folder (Linux: ~/.cache/async-uploader)",
            help="where runs remember what they uploaded"),
        Option("use_state", ("--no-state",), Scope.RUN, kind=Kind.FLAG, default=True, group="state",
            help="remember nothing: existing objects are checked one HEAD each"),
        Option("shard", ("--shard",), Scope.RUN, metavar="K/N", field="shard", validate=config.parse_shard_option,
            help="upload only the K-th of N disjoint parts of the tree (0 <= K < N), for job arrays and CI matrices"),
        Option("delete", ("--delete",), Scope.RUN, kind=Kind.FLAG, default=False, field="delete",
            help="after the uploads, delete the keys under the destination prefix that no source file maps to "
            "(a mirror); nothing is deleted if any file or listing failed, or the run was cut short "
            "(docs/sync.md)"),
        Option("delete_excluded", ("--delete-excluded",), Scope.RUN, kind=Kind.FLAG, default=False,
            field="delete_excluded",
            help="with --delete: also delete the keys --include/--exclude leave out (else they are kept)"),
        Option("allow_empty_source", ("--allow-empty-source",), Scope.RUN, kind=Kind.FLAG, default=False,
            field="allow_empty_source",
            help="with --delete: a SOURCE with no file empties the prefix (else refused, exit 2)"),
        Option("max_delete", ("--max-delete",), Scope.RUN, cli_type=int, metavar="N", field="max_delete",
            validate=config.check_max_delete, shown_default="no limit",
            help="with --delete: delete nothing, and fail, if more than N keys would be deleted"),
        Option("checksum", ("--checksum",), Scope.RUN, choices=(*(a.value for a in Algorithm), "none"),
            default=Algorithm.CRC32.value, field="checksum", validate=parse_algorithm,
            help="checksum every body carries for the server to verify; large files also get their whole CRC "
            "checked; crc32c needs the [crc32c] extra"),
        Option("keep_partial", ("--keep-partial",), Scope.RUN, kind=Kind.FLAG, default=False, field="keep_partial",
            help="on Ctrl-C or SIGTERM, leave multipart uploads open for the next run to resume instead of "
            "aborting"),
        *OBJECT_OPTIONS,
        Option("dask", ("--dask",), Scope.CLI, metavar="ADDRESS",
            help="spread the upload over a Dask cluster (tcp://scheduler:8786), a shard per task; SOURCE must be "
            "the same path on every worker (needs the [dask] extra)"),
        Option("shards", ("--shards",), Scope.CLI, cli_type=int, metavar="N",
            shown_default="one per worker thread of the cluster",
            help="with --dask: split the tree into N shards"),
        DEBUG,
        Option("summary_format", ("--summary-format",), Scope.CLI, choices=SUMMARY_FORMATS, default="text",
            help="also print the summary for machines: json (stdout) or github (markdown, job summary, step "
            "outputs)"),
        Option("no_progress", ("--no-progress",), Scope.CLI, kind=Kind.FLAG, default=False, group="output",
            help="no live display or progress lines"),
        Option("quiet", ("-q", "--quiet"), Scope.CLI, kind=Kind.FLAG, default=False, group="output",
            help="print only errors and the summary"),
        Option("verbose", ("-v", "--verbose"), Scope.CLI, kind=Kind.FLAG, default=False, group="output",
            help="also print one line per uploaded file"),
    ),
)

CLEANUP: Final = Command(
    "cleanup",
    help="abort incomplete multipart uploads left under s3://BUCKET/PREFIX",
    description="Abort the incomplete multipart uploads under s3://BUCKET/PREFIX (their parts are billed until "
    "aborted): those of killed runs, of --keep-partial never resumed, of other tools. On az:// there is nothing "
    "to abort: uncommitted blocks expire by themselves after seven days.",
    library=("cleanup()", "Uploader.cleanup()"),
    options=(
        DESTINATION,
        Option("older_than", ("--older-than",), Scope.RUN, metavar="AGE", default=config.DEFAULT_CLEANUP_AGE,
            help="only uploads started at least AGE ago, e.g. 12h, 7d, 0 for all"),
        Option("dry_run", ("--dry-run",), Scope.RUN, kind=Kind.FLAG, default=False,
            help="list what would be aborted; abort nothing"),
        ENDPOINT_URL,
        REGION,
        PROFILE,
        REQUEST_PAYER,
        DEBUG,
    ),
)

MERGE_REPORTS: Final = Command(
    "merge-reports",
    help="combine the reports of --shard runs into one summary (and one report)",
    description="Combine the JSON Lines reports of several runs (the shards of one upload) into one summary; "
    "with --output, also one report. Exit 1 if any file failed or any shard did not finish.",
    library=(),
    options=(
        Option("reports", (), Scope.CLI, metavar="REPORT", nargs="+", help="reports written by --report"),
        Option("output", ("--output", "-o"), Scope.CLI, metavar="FILE", help="write the merged report here"),
        Option("summary_format", ("--summary-format",), Scope.CLI, choices=SUMMARY_FORMATS, default="text",
            help="also print the summary for machines, on stdout: json, or github (markdown)"),
        DEBUG,
    ),
)
# fmt: on

COMMANDS: Final = (UPLOAD, CLEANUP, MERGE_REPORTS)


class RunOptions(ObjectOptions, total=False):
    """The keyword options of ``upload()`` and ``Uploader.upload``: the run's options of the table, typed.

    Defaults, meanings and the flags they mirror are the table's (``UPLOAD``; docs/cli.md). ``include``/``exclude``
    apply includes first, then excludes; for interleaved rules, pass ``make_config(filters=...)`` to
    ``Uploader.run_config``.
    """

    concurrency: int
    part_size: str | int
    multipart_threshold: str | int
    max_memory: str | int
    expected_size: str | int | None
    include: Sequence[str]
    exclude: Sequence[str]
    follow_symlinks: bool
    max_bandwidth: str | int | None
    report: str | os.PathLike[str] | None
    retry_failed: str | os.PathLike[str] | None
    dry_run: bool
    retries: int
    retry_deadline: float
    max_cpu: float | None
    overwrite: str | Overwrite
    compare: str | Compare
    state_file: str | os.PathLike[str] | None
    use_state: bool
    keep_partial: bool
    checksum: str
    shard: str | None
    delete: bool
    delete_excluded: bool
    allow_empty_source: bool
    max_delete: int | None


class ConfigOptions(RunOptions, total=False):
    """``make_config``'s keywords: the run's, and the connection's that ``UploadConfig`` carries to Dask workers."""

    endpoint_url: str | None
    region: str | None
    profile: str | None
    request_payer: str | None
    connect_timeout: float
    read_timeout: float


_CONFIG_KEYWORDS: Final = ConfigOptions.__required_keys__ | ConfigOptions.__optional_keys__
_FIELD_OPTIONS: Final = tuple(option for option in UPLOAD.options if option.field is not None)
CONFIG_CONNECTION_KEYWORDS: Final = frozenset(o.name for o in _FIELD_OPTIONS if o.scope is Scope.CONNECTION)
"""The connection's options that ``UploadConfig`` carries too (for Dask workers); ``lean`` is the connection's alone."""


def make_config(
    source: str | os.PathLike[str],
    destination: str,
    *,
    filters: Sequence[tuple[str, str]] = (),
    **options: Unpack[ConfigOptions],
) -> UploadConfig:
    """Validate a run's options (see ``RunOptions``) into an ``UploadConfig``; a ``ConfigError`` says what is wrong.

    ``filters`` keeps the order of mixed ``--include``/``--exclude`` flags (the CLI passes it); ``include`` and
    ``exclude`` come after it, includes first. ``state_file`` defaults to ``config.default_state_path()``;
    ``use_state=False`` keeps no state at all. A ``source`` that is a regular file goes into the folder
    ``destination`` names when it ends with ``/`` (or is the bucket alone), else to the exact key it names.
    """
    path = config.check_source(source)
    # A single file goes into the folder the URL names (``dir/``, or the bucket), or to the exact key it names.
    target = config.one_object_destination(destination, path.name) if path.is_file() else None
    return _config(path, target or config.parse_destination(destination), filters, options)


STREAM_SOURCE: Final = "-"
"""The command line's SOURCE for stdin (the library takes a file object or an async iterable instead)."""
_NOT_FOR_STREAMS: Final = (
    ("shard", "--shard"),
    ("retry_failed", "--retry-failed"),
    ("dry_run", "--dry-run"),
    ("follow_symlinks", "--follow-symlinks"),
)


def make_stream_config(
    destination: str,
    *,
    filters: Sequence[tuple[str, str]] = (),
    **options: Unpack[ConfigOptions],
) -> UploadConfig:
    """``make_config`` for a stream (stdin, a pipe): ``destination`` must name an exact key, and the options that
    only mean something for files are refused (``ConfigError``): ``--shard``, ``--retry-failed``, ``--dry-run``,
    ``--follow-symlinks``, ``--include``/``--exclude`` and a ``--compare`` other than the default. ``source``
    is ``-`` in the config and its records."""
    values: dict[str, Any] = dict(options)
    given = [flag for name, flag in _NOT_FOR_STREAMS if values.get(name)]
    if filters or values.get("include") or values.get("exclude"):
        given.append("--include/--exclude")
    if values.get("compare", Compare.MTIME.value) not in (Compare.MTIME, Compare.MTIME.value):
        given.append("--compare")
    if given:
        raise ConfigError(f"{', '.join(given)}: not for a stream (SOURCE -), whose one object has no file to compare")
    return _config(Path(STREAM_SOURCE), config.one_object_destination(destination, None), (), options)


def _config(
    path: Path, target: config.Destination, filters: Sequence[tuple[str, str]], options: ConfigOptions
) -> UploadConfig:
    values: dict[str, Any] = dict(options)
    unknown = values.keys() - _CONFIG_KEYWORDS
    if unknown:  # a caller the type checker does not see (``**kwargs``) gets what Python's own check would say
        raise TypeError(f"make_config() got an unexpected keyword argument {min(unknown)!r}")
    fields: dict[str, Any] = {}
    for option in _FIELD_OPTIONS:
        value = values.get(option.name, option.default)
        fields[str(option.field)] = value if option.validate is None else option.validate(value)
    includes = [("include", glob) for glob in values.get("include", ())]
    excludes = [("exclude", glob) for glob in values.get("exclude", ())]
    rules = config.check_filters([*filters, *includes, *excludes])
    check_combination(fields)
    config.check_delete_combination(fields)
    if fields["delete"] and target.key is not None:
        raise ConfigError("--delete mirrors a folder: not for a single file or a stream, which is one object")
    report, retry_failed = fields["report"], fields["retry_failed"]
    if report is not None and retry_failed is not None and report.resolve() == retry_failed.resolve():
        raise ConfigError("--report must name a new file, not the report given to --retry-failed")
    state_file = config.optional_path(values.get("state_file")) or config.default_state_path()
    return UploadConfig(
        source=path,
        destination=target,
        filters=rules,
        state_file=state_file if values.get("use_state", True) else None,
        **fields,
    )


def _spelling(option: Option) -> str:
    """How docs write an option: its flags with what follows them (``--part-size SIZE``, ``--lean on|off``)."""
    if not option.flags:
        return option.metavar or option.name.upper()
    if option.kind is Kind.FLAG:
        value = ""
    elif option.kind is Kind.SWITCH:
        value = " on|off"
    elif option.choices:
        value = " " + "|".join(option.choices)
    else:
        value = f" {option.metavar or option.name.upper()}"
    return ", ".join(f"{flag}{value}" for flag in option.flags)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _keyword(option: Option) -> str:
    return f"`{option.name}=False`" if option.kind is Kind.FLAG and option.default else f"`{option.name}`"


def _section_note(command: Command, scope: Scope) -> str:
    if scope is Scope.CONNECTION:
        return f"Keywords of `Uploader()`, and of `{command.library[0]}`."
    if scope is Scope.RUN and command.library:
        return "Keywords of " + ", ".join(f"`{name}`" for name in command.library) + "."
    return "Not library keywords: what the command line prints, and how it runs."


_TITLES: Final = {Scope.CONNECTION: "How to reach the store", Scope.RUN: "The run", Scope.CLI: "The command line's own"}


def reference_markdown() -> str:
    """docs/cli.md: every command, argument and option, with its library keyword and its default."""
    lines = [
        "# Command-line reference",
        "",
        "<!-- Made from the table in async_uploader/options.py by `python -m tools.cli_reference`: edit the table, "
        "not this file. -->",
        "",
        f"`{PROG}`: {DESCRIPTION} The library takes the same options as keywords (the *keyword* column), with the "
        "same defaults.",
    ]
    for command in COMMANDS:
        positionals = [option for option in command.options if not option.flags]
        usage = " ".join(f"{o.metavar}..." if o.nargs == "+" else str(o.metavar) for o in positionals)
        lines += ["", f"## `{PROG} {command.name} {usage}`", "", command.description, ""]
        lines += ["| argument | meaning |", "| --- | --- |"]
        lines += [f"| `{_spelling(o)}` | {_cell(o.described)} |" for o in positionals]
        for scope, title in _TITLES.items():
            options = [o for o in command.options if o.flags and o.scope is scope]
            if not options:
                continue
            lines += ["", f"### {title}", "", _section_note(command, scope), ""]
            if scope is Scope.CLI:
                lines += ["| option | default | meaning |", "| --- | --- | --- |"]
                lines += [f"| `{_cell(_spelling(o))}` | {_cell(o.default_text)} | {_cell(o.help)} |" for o in options]
            else:
                lines += ["| option | keyword | default | meaning |", "| --- | --- | --- | --- |"]
                lines += [
                    f"| `{_cell(_spelling(o))}` | {_keyword(o)} | {_cell(o.default_text)} | {_cell(o.help)} |"
                    for o in options
                ]
    return "\n".join(lines) + "\n"
