"""What an option's value means: the parsers and checks of each option, and the frozen ``UploadConfig`` they fill.

``options.make_config`` runs every option through these, for the CLI and ``upload()`` alike, so a flag and a
keyword argument can never disagree on what a value means; the messages name the flag a user typed.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import platformdirs

from .engine.headers import HeaderRule
from .engine.throttle import parse_rate
from .errors import ConfigError
from .providers.registry import check_scheme
from .source.checksum import Algorithm
from .source.filters import PathFilter
from .source.shards import Shard, parse_shard

KIB: Final = 1024
MIB: Final = 1024 * KIB
GIB: Final = 1024 * MIB
TIB: Final = 1024 * GIB

DEFAULT_CONCURRENCY: Final = 64
DEFAULT_PART_SIZE_BYTES: Final = 8 * MIB
DEFAULT_MULTIPART_THRESHOLD_BYTES: Final = 8 * MIB
DEFAULT_MAX_MEMORY_BYTES: Final = 128 * MIB
# S3's own limits: every part but the last must be at least 5 MiB and at most 5 GiB.
MIN_PART_SIZE_BYTES: Final = 5 * MIB
MAX_PART_SIZE_BYTES: Final = 5 * GIB
MAX_CONCURRENCY: Final = 1024
DEFAULT_ATTEMPTS: Final = 20
DEFAULT_DEADLINE_S: Final = 120.0
DEFAULT_CONNECT_TIMEOUT_S: Final = 10.0
DEFAULT_READ_TIMEOUT_S: Final = 60.0
DEFAULT_CLEANUP_AGE: Final = "1d"
APP_NAME: Final = "async-uploader"
STATE_FILE_NAME: Final = "state.sqlite3"

_UNITS: Final[dict[str, int]] = {
    "": 1,
    "b": 1,
    "k": KIB,
    "kib": KIB,
    "kb": 1000,
    "m": MIB,
    "mib": MIB,
    "mb": 1000**2,
    "g": GIB,
    "gib": GIB,
    "gb": 1000**3,
    "t": TIB,
    "tib": TIB,
    "tb": 1000**4,
}
_SIZE_RE: Final = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$", re.ASCII)


def parse_size(text: str | int) -> int:
    """Parse ``8MiB``, ``8MB`` or ``8388608`` into bytes.

    Binary units (KiB, MiB, GiB, TiB, and the bare K, M, G, T) are powers of 1024; KB, MB, GB, TB are powers of
    1000, as their SI names say.
    """
    if isinstance(text, int):
        if text < 0:
            raise ConfigError(f"size must not be negative: {text}")
        return text
    match = _SIZE_RE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ConfigError(f"invalid size {text!r}: use a number of bytes or a unit like 8MiB, 64KiB, 1GB")
    value = Decimal(match.group(1)) * _UNITS[unit]  # exact: 4.1GB is 4,100,000,000 bytes, not a float near it
    if value != value.to_integral_value():
        raise ConfigError(f"invalid size {text!r}: not a whole number of bytes")
    return int(value)


class Overwrite(enum.Enum):
    """``--overwrite``: what to do with a file whose key already holds an object."""

    ALWAYS = "always"
    CHANGED = "changed"
    """Skip the file when the object has its size and mtime (the default)."""
    NEVER = "never"


class Compare(enum.Enum):
    """``--compare``: what tells an existing object from a changed file (under ``--overwrite changed``)."""

    MTIME = "mtime"
    """Size and mtime (the default)."""
    SIZE = "size"
    """Size alone, whatever the mtime or our metadata: adopts objects another tool wrote, with no request per file."""
    CHECKSUM = "checksum"
    """The content: the file's MD5 against the listed ETag, else a content hash the state file or the store keeps."""


_DURATION_RE: Final = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdw]?)\s*$", re.ASCII)
_DURATION_UNITS_S: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``12h``, ``1d``, ``2w`` or a number of seconds, into seconds."""
    match = _DURATION_RE.match(text.lower())
    if match is None:
        raise ConfigError(f"invalid duration {text!r}: use a number with s, m, h, d or w, like 12h or 7d")
    return float(match.group(1)) * _DURATION_UNITS_S[match.group(2)]


@dataclass(frozen=True, slots=True)
class Destination:
    """Where objects go: a bucket (an Azure container) and a key prefix that is empty or ends with ``/``; the
    scheme names the provider (``s3``, ``az``, or one an installed package registers).

    ``key`` is set when one object is uploaded (a single file, or a stream): its exact key, and ``prefix`` is
    then the folder that key is in (where the write probe goes). A tree's destination has no ``key``."""

    bucket: str
    prefix: str
    scheme: str = "s3"
    key: str | None = None

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix if self.key is None else self.key}"


_BUCKET_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,254}$")
_SCHEME_RE: Final = re.compile(r"^[a-z][a-z0-9+.-]*$", re.ASCII)


def parse_destination(url: str) -> Destination:
    """Split ``s3://bucket/some/prefix`` (or ``az://container/...``) into scheme, bucket and a normalised prefix
    (``some/prefix/``); a scheme no provider serves is a ``ConfigError``."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or not _SCHEME_RE.match(scheme):
        raise ConfigError(f"destination must look like s3://bucket/prefix or az://container/prefix, got {url!r}")
    check_scheme(scheme)
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET_RE.match(bucket):
        raise ConfigError(f"invalid bucket name {bucket!r} in {url!r}")
    prefix = prefix.rstrip("/")
    if prefix.startswith("/") or "//" in prefix:
        raise ConfigError(f"destination prefix has an empty path segment: {url!r}")
    return Destination(bucket=bucket, prefix=f"{prefix}/" if prefix else "", scheme=scheme)


def names_folder(url: str) -> bool:
    """Whether a destination URL names a folder, not an exact key: it ends with ``/`` or is the bucket alone."""
    rest = url.partition("://")[2]
    return url.endswith("/") or "/" not in rest


def one_object_destination(url: str, name: str | None) -> Destination:
    """The destination of one object: ``name`` (a file's name) in the folder ``url`` names when it ends with
    ``/`` or is the bucket alone (``s3://b/dir/`` -> ``dir/NAME``), else exactly the key ``url`` names
    (``s3://b/exact/key``). ``name=None`` (a stream: it has no name) requires an exact key."""
    destination = parse_destination(url)
    if names_folder(url):
        if name is None:
            raise ConfigError(f"a stream needs an exact key to upload to, not a folder: {url!r} ends with '/'")
        key = f"{destination.prefix}{name}"
    else:
        key = destination.prefix[:-1]
    folder = key.rpartition("/")[0]
    return Destination(destination.bucket, f"{folder}/" if folder else "", destination.scheme, key)


def default_state_path() -> Path:
    """``state.sqlite3`` in ``$XDG_CACHE_HOME/async-uploader`` when that is set (on every OS), else in the OS's
    cache folder: ``~/.cache/async-uploader`` on Linux, ``~/Library/Caches/async-uploader`` on macOS,
    ``%LOCALAPPDATA%\\async-uploader\\Cache`` on Windows (``platformdirs``' rules)."""
    cache = os.environ.get("XDG_CACHE_HOME", "").strip()
    if cache:
        return Path(cache) / APP_NAME / STATE_FILE_NAME
    return platformdirs.user_cache_path(APP_NAME, appauthor=False) / STATE_FILE_NAME


def check_endpoint_url(url: str | None) -> str | None:
    """``None`` (the provider's default), or an http(s) URL with a host; anything else is a ``ConfigError``."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname or any(c.isspace() for c in url):
        raise ConfigError(f"--endpoint-url / --account-url must be an http:// or https:// URL, got {url!r}")
    return url


REQUEST_PAYERS: Final = ("requester",)
"""What ``--request-payer`` takes: S3 knows one payer besides the bucket's owner."""


def check_request_payer(value: str | None) -> str | None:
    """``--request-payer requester``: this run's requests pay for themselves on a requester-pays bucket."""
    if value is None or value in REQUEST_PAYERS:
        return value
    raise ConfigError(f"--request-payer takes {', '.join(REQUEST_PAYERS)}, got {value!r}")


def check_source(source: str | os.PathLike[str]) -> Path:
    """The directory or the regular file to upload, which must exist and be readable: found now, not as a
    failure mid-run."""
    path = Path(source)
    if not path.exists():
        raise ConfigError(f"source {str(path)!r} does not exist")
    if path.is_file():
        if not os.access(path, os.R_OK):
            raise ConfigError(f"source {str(path)!r} cannot be read (permission denied)")
        return path
    if not path.is_dir():
        raise ConfigError(f"source {str(path)!r} is neither a directory nor a regular file")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ConfigError(f"source {str(path)!r} cannot be read (permission denied)")
    return path


def check_concurrency(value: int) -> int:
    """Requests in flight: at least one, at most ``MAX_CONCURRENCY``."""
    if not 1 <= value <= MAX_CONCURRENCY:
        raise ConfigError(f"--concurrency must be between 1 and {MAX_CONCURRENCY}, got {value}")
    return value


def parse_part_size(value: str | int) -> int:
    """A size within S3's limits for a part (the planner may still grow it, to stay under 10,000 parts)."""
    size = parse_size(value)
    if not MIN_PART_SIZE_BYTES <= size <= MAX_PART_SIZE_BYTES:
        raise ConfigError("--part-size must be between 5MiB and 5GiB (S3's limits for a part)")
    return size


def parse_max_memory(value: str | int) -> int:
    """A size that holds at least one minimal part, or no multipart upload could ever proceed."""
    size = parse_size(value)
    if size < MIN_PART_SIZE_BYTES:
        raise ConfigError("--max-memory must be at least 5MiB (one part)")
    return size


def parse_expected_size(value: str | int | None) -> int | None:
    """``--expected-size``: about how many bytes a stream will bring (``None``: not known), at most 5 TiB."""
    if value is None:
        return None
    size = parse_size(value)
    if size > 5 * TIB:
        raise ConfigError("--expected-size is over 5TiB, S3's limit for one object")
    return size


def parse_max_bandwidth(value: str | int | None) -> int | None:
    """Bytes per second from a rate (``50MB/s``) or a number, or ``None``: no limit."""
    if isinstance(value, str):
        return parse_rate(value)
    if value is not None and value <= 0:
        raise ConfigError("--max-bandwidth must be above zero")
    return value


def check_filters(rules: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """``("include" | "exclude", glob)`` rules, each compiled now: a bad glob is a usage error, not a failure
    mid-run."""
    for kind, glob in rules:
        if kind not in {"include", "exclude"} or not glob:
            raise ConfigError(f"invalid filter {kind} {glob!r}: give a non-empty glob like '*.tmp' or 'build/**'")
    PathFilter.from_flags(rules)
    return tuple(rules)


def check_retries(value: int) -> int:
    """Tries per request, from 1 (no retry) to 100."""
    if not 1 <= value <= 100:
        raise ConfigError(f"--retries must be between 1 and 100, got {value}")
    return value


def check_seconds(value: float) -> float:
    """A timeout or deadline: above zero (one message for the three options that take one)."""
    if value <= 0:
        raise ConfigError("--retry-deadline, --connect-timeout and --read-timeout must be above zero seconds")
    return value


def check_max_cpu(value: float | None) -> float | None:
    """A share of one core in percent, up to every core of this machine, or ``None``: no cap."""
    cores = os.cpu_count() or 1
    if value is not None and not 1 <= value <= 100 * cores:
        raise ConfigError(f"--max-cpu must be a percentage of one core between 1 and {100 * cores}")
    return value


def parse_overwrite(value: str | Overwrite) -> Overwrite:
    """``always``, ``changed`` or ``never`` (or the ``Overwrite`` itself)."""
    try:
        return Overwrite(value)
    except ValueError:
        choices = ", ".join(mode.value for mode in Overwrite)
        raise ConfigError(f"--overwrite must be one of {choices}, got {value!r}") from None


def parse_compare(value: str | Compare) -> Compare:
    """``mtime``, ``size`` or ``checksum`` (or the ``Compare`` itself)."""
    try:
        return Compare(value)
    except ValueError:
        choices = ", ".join(mode.value for mode in Compare)
        raise ConfigError(f"--compare must be one of {choices}, got {value!r}") from None


def parse_shard_option(value: str | Shard | None) -> Shard | None:
    """``--shard K/N`` as text, or a ``Shard`` a library caller built, or ``None``: the whole tree."""
    return parse_shard(value) if isinstance(value, str) else value


def check_max_delete(value: int | None) -> int | None:
    """``--max-delete N``: at most N deletions (0 allowed: deleting anything stops the run), or ``None``: no cap."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ConfigError(f"--max-delete must be a whole number of keys, 0 or more, got {value!r}")
    return value


def check_delete_combination(fields: Mapping[str, Any]) -> None:
    """``--delete`` mirrors the whole tree, so it needs to have seen the whole tree: a shard or a retry of some
    files sees part of it, and would delete the rest. Its companions mean nothing without it."""
    if not fields.get("delete"):
        for name in ("delete_excluded", "allow_empty_source"):
            if fields.get(name):
                raise ConfigError(f"--{name.replace('_', '-')} needs --delete")
        if fields.get("max_delete") is not None:
            raise ConfigError("--max-delete needs --delete")
        return
    if fields.get("shard") is not None:
        raise ConfigError(
            "--delete cannot be used with --shard: a shard sees part of the tree, and would delete the rest"
        )
    if fields.get("retry_failed") is not None:
        raise ConfigError("--delete cannot be used with --retry-failed: a retry sees only the files it retries")


def optional_path(value: str | os.PathLike[str] | None) -> Path | None:
    """A path the user named, or ``None`` for none."""
    return Path(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class UploadConfig:
    """Everything one run needs to know, validated; build it with ``options.make_config``.

    The defaults are the option table's (a test holds them equal); each field's meaning is its option's help.
    """

    source: Path
    destination: Destination
    # The connection's options ride along because a Dask worker opens its own connection from the config it is
    # sent (cluster.py); the engine itself never reads them.
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    request_payer: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    part_size: int = DEFAULT_PART_SIZE_BYTES
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD_BYTES
    max_memory: int = DEFAULT_MAX_MEMORY_BYTES
    expected_size: int | None = None
    """A stream's expected length: its part size is chosen to fit it in 10,000 parts."""
    filters: tuple[tuple[str, str], ...] = ()
    """``("include" | "exclude", glob)`` in command-line order; the last match wins."""
    follow_symlinks: bool = False
    max_bandwidth: int | None = None
    """Bytes per second for all workers together, or no limit."""
    report: Path | None = None
    retry_failed: Path | None = None
    """An earlier report: upload only the files it lists as failed."""
    dry_run: bool = False
    retries: int = DEFAULT_ATTEMPTS
    """Tries per request (files and parts) before a file fails; 1 means no retry."""
    retry_deadline_s: float = DEFAULT_DEADLINE_S
    """Time one file may spend retrying before it fails."""
    max_cpu_percent: float | None = None
    """Keep this process's CPU use under this share of one core, by lowering the concurrency."""
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S  # the connection's too, for the same reason
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    overwrite: Overwrite = Overwrite.CHANGED
    compare: Compare = Compare.MTIME
    state_file: Path | None = None
    """Where runs remember what they uploaded (``None``: nowhere; every existing object then costs a HEAD)."""
    keep_partial: bool = False
    """On interruption, leave multipart uploads in flight open (for the next run to resume) instead of aborting."""
    checksum: Algorithm | None = Algorithm.CRC32
    """The checksum every body carries for the server to verify (``None``: none)."""
    shard: Shard | None = None
    """Upload only this shard of the tree (``--shard K/N``)."""
    delete: bool = False
    """After the uploads, delete the keys under the prefix that no source file maps to (docs/sync.md)."""
    delete_excluded: bool = False
    """With ``delete``: also delete the keys that ``--include``/``--exclude`` leave out (kept otherwise)."""
    allow_empty_source: bool = False
    """With ``delete``: a source with no file empties the prefix, instead of refusing to delete anything."""
    max_delete: int | None = None
    """With ``delete``: refuse to delete anything when more keys than this would go."""
    # How objects are stored (header_options.py reads these options; ``run_headers`` makes the run's
    # ObjectHeaders of them).
    content_type: str | None = None
    guess_mime_type: bool = True
    cache_control: str | None = None
    content_encoding: str | None = None
    content_disposition: str | None = None
    content_language: str | None = None
    expires: str | None = None
    """An HTTP date."""
    metadata: tuple[tuple[str, str], ...] = ()
    """Extra user metadata on every object (never ``size``, ``mtime`` or ``mode``)."""
    header_rule: tuple[HeaderRule, ...] = ()
    header_rules: tuple[HeaderRule, ...] = ()
    """The rules of ``--header-rules FILE``, read when the config was made; they come before ``header_rule``."""
    sse: str | None = None
    sse_kms_key_id: str | None = None
    sse_kms_context: str | None = None
    """Base64 of the context's JSON."""
    sse_c_key: bytes | None = field(default=None, repr=False)
    """The SSE-C key itself, read from ``--sse-c-key-file``: never shown."""
    storage_class: str | None = None
    tags: str | None = None
    """As a URL query (``k=v&k2=v2``)."""
    acl: str | None = None
    access_tier: str | None = None
    encryption_scope: str | None = None
