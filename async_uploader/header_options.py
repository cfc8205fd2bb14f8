"""What the options of how objects are stored mean: content headers, metadata, encryption, class, tags, ACL, tier.

The parsers and checks ``options.make_config`` runs these options through (as ``config`` does the others), and
``run_headers``, the run's ``ObjectHeaders`` made from a validated config. Messages name the flag a user typed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypedDict
from urllib.parse import parse_qsl, quote, urlencode

from .config import UploadConfig
from .engine.headers import HeaderRule, check_header_value, parse_header_rules, read_header_rules
from .errors import ConfigError
from .option_model import Kind, Option, Scope
from .providers.base import ObjectHeaders

# json, base64 and email.utils are imported by the parsers that need them: ~20 ms of every run's
# start-up otherwise, for options most runs never give.

RESERVED_METADATA: Final = frozenset({"size", "mtime", "mode"})
"""The metadata a run compares to skip unchanged files: its own, never the user's."""
SSE_MODES: Final = ("AES256", "aws:kms", "aws:kms:dsse")
KMS_MODES: Final = frozenset({"aws:kms", "aws:kms:dsse"})
ACLS: Final = ("private", "bucket-owner-read", "bucket-owner-full-control")
"""The canned ACLs a run may set: none of them makes data readable by anyone outside the bucket's account(s)."""
ACCESS_TIERS: Final = ("Hot", "Cool", "Cold", "Archive")
SSE_C_KEY_BYTES: Final = 32
MAX_TAGS: Final = 10
_METADATA_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_STORAGE_CLASS_RE: Final = re.compile(r"^[A-Z][A-Z0-9_]*$")


def optional_header(flag: str) -> Any:
    """A checker for an optional header value of ``flag``."""

    def check(value: str | None) -> str | None:
        return None if value is None else check_header_value(flag, value)

    return check


def parse_expires(value: str | datetime | None) -> str | None:
    """``--expires``: an ISO 8601 date and time (``2030-01-01T00:00:00Z``) or an HTTP date, as the HTTP date
    botocore sends for ``Expires``."""
    from email.utils import format_datetime, parsedate_to_datetime

    if value is None:
        return None
    if isinstance(value, datetime):
        when = value
    else:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                raise ConfigError(f"--expires needs a date like 2030-01-01T00:00:00Z, got {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return format_datetime(when.astimezone(UTC), usegmt=True)


def parse_metadata(value: Mapping[str, str] | Sequence[str] | str | None) -> tuple[tuple[str, str], ...]:
    """``--metadata KEY=VALUE`` (repeatable; a mapping from the library): extra user metadata on every object.
    ``size``, ``mtime`` and ``mode`` stay the run's own (it skips unchanged files by them)."""
    if value is None:
        return ()
    if isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    else:
        pairs = []
        for item in [value] if isinstance(value, str) else value:
            name, sep, text = str(item).partition("=")
            if not sep:
                raise ConfigError(f"--metadata needs KEY=VALUE, got {item!r}")
            pairs.append((name, text))
    for name, text in pairs:
        if name.lower() in RESERVED_METADATA:
            raise ConfigError(f"--metadata {name}: size, mtime and mode are the uploader's own metadata")
        if not _METADATA_NAME_RE.match(name):
            raise ConfigError(f"--metadata {name!r}: a name is letters, digits, '_' and '-'")
        if text:
            check_header_value(f"--metadata {name}", text)
    return tuple(pairs)


def parse_sse(value: str | None) -> str | None:
    """``--sse AES256|aws:kms|aws:kms:dsse``."""
    if value is not None and value not in SSE_MODES:
        raise ConfigError(f"--sse must be one of {', '.join(SSE_MODES)}, got {value!r}")
    return value


def parse_kms_context(value: str | Mapping[str, str] | None) -> str | None:
    """``--sse-kms-context '{"project": "x"}'`` (a JSON object of strings, or a mapping): base64 of its JSON, as
    S3 takes it."""
    import base64
    import json

    if value is None:
        return None
    try:
        context = json.loads(value) if isinstance(value, str) else dict(value)
    except ValueError:
        raise ConfigError('--sse-kms-context needs a JSON object of strings, like \'{"project": "x"}\'') from None
    if not isinstance(context, dict) or not all(isinstance(v, str) for v in context.values()):
        raise ConfigError('--sse-kms-context needs a JSON object of strings, like \'{"project": "x"}\'')
    return base64.b64encode(json.dumps(context, separators=(",", ":")).encode()).decode()


def read_sse_c_key(path: str | os.PathLike[str] | None) -> bytes | None:
    """``--sse-c-key-file``: a file holding the 256-bit key, as 32 raw bytes or their base64. Read once; the key
    is never printed (messages name the file only)."""
    import base64
    import binascii

    if path is None:
        return None
    try:
        with open(path, "rb") as file:
            data = file.read(4096)
    except OSError as exc:
        raise ConfigError(f"--sse-c-key-file: cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if len(data) == SSE_C_KEY_BYTES:
        return data
    try:
        key = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != SSE_C_KEY_BYTES:
        raise ConfigError(f"--sse-c-key-file {str(path)!r} must hold a 256-bit key: 32 bytes, or their base64")
    return key


def parse_storage_class(value: str | None) -> str | None:
    """``--storage-class STANDARD_IA`` (any class a store names: S3's, or a compatible's own)."""
    if value is None:
        return None
    if not _STORAGE_CLASS_RE.match(value.upper()):
        raise ConfigError(f"--storage-class needs a class name like STANDARD_IA or GLACIER_IR, got {value!r}")
    return value.upper()


def parse_tags(value: str | Mapping[str, str] | None) -> str | None:
    """``--tags k=v&k2=v2`` (or a mapping): S3's ``x-amz-tagging`` query, at most 10 tags."""
    if value is None:
        return None
    try:
        pairs = (
            parse_qsl(value, keep_blank_values=True, strict_parsing=True)
            if isinstance(value, str)
            else [(str(k), str(v)) for k, v in value.items()]
        )
    except ValueError:
        raise ConfigError(f"--tags needs key=value pairs joined by '&', got {value!r}") from None
    names = [name for name, _ in pairs]
    if not pairs or len(pairs) > MAX_TAGS or len(set(names)) != len(names) or not all(names):
        raise ConfigError(f"--tags needs 1 to {MAX_TAGS} key=value pairs with distinct, non-empty keys")
    if any(len(name) > 128 or len(text) > 256 for name, text in pairs):
        raise ConfigError("--tags: a key is at most 128 characters, a value at most 256")
    return urlencode(pairs, quote_via=quote)


def parse_acl(value: str | None) -> str | None:
    """``--acl private|bucket-owner-read|bucket-owner-full-control``; any other (``public-read``...) is refused."""
    if value is None or value in ACLS:
        return value
    raise ConfigError(f"--acl {value} is refused: async-uploader never makes data public (use {', '.join(ACLS)})")


def parse_access_tier(value: str | None) -> str | None:
    """``--access-tier Hot|Cool|Cold|Archive`` (any case)."""
    if value is None:
        return None
    tier = value.capitalize()
    if tier not in ACCESS_TIERS:
        raise ConfigError(f"--access-tier must be one of {', '.join(ACCESS_TIERS)}, got {value!r}")
    return tier


def check_combination(fields: Mapping[str, Any]) -> None:
    """What the options mean together: a KMS key or context needs KMS encryption; SSE-C excludes ``--sse``."""
    if (fields.get("sse_kms_key_id") or fields.get("sse_kms_context")) and fields.get("sse") not in KMS_MODES:
        raise ConfigError("--sse-kms-key-id and --sse-kms-context need --sse aws:kms or aws:kms:dsse")
    if fields.get("sse_c_key") is not None and fields.get("sse") is not None:
        raise ConfigError("--sse-c-key-file and --sse exclude each other: an object has one kind of encryption")
    if fields.get("content_type") is not None and not fields.get("guess_mime_type", True):
        raise ConfigError("--content-type and --no-guess-mime-type exclude each other")


def run_headers(config: UploadConfig) -> ObjectHeaders:
    """The ``ObjectHeaders`` every object of the run carries (before its guessed type and its rules)."""
    return ObjectHeaders(
        content_type=config.content_type,
        cache_control=config.cache_control,
        content_encoding=config.content_encoding,
        content_disposition=config.content_disposition,
        content_language=config.content_language,
        expires=config.expires,
        sse=config.sse,
        sse_kms_key_id=config.sse_kms_key_id,
        sse_kms_context=config.sse_kms_context,
        sse_c_key=config.sse_c_key,
        storage_class=config.storage_class,
        tagging=config.tags,
        acl=config.acl,
        access_tier=config.access_tier,
        encryption_scope=config.encryption_scope,
    )


class ObjectOptions(TypedDict, total=False):
    """The library's keywords of these options (part of ``options.RunOptions``)."""

    content_type: str | None
    guess_mime_type: bool
    cache_control: str | None
    content_encoding: str | None
    content_disposition: str | None
    content_language: str | None
    expires: str | datetime | None
    metadata: Mapping[str, str] | Sequence[str] | None
    header_rule: Sequence[str | HeaderRule] | None
    header_rules: str | os.PathLike[str] | None
    sse: str | None
    sse_kms_key_id: str | None
    sse_kms_context: str | Mapping[str, str] | None
    sse_c_key_file: str | os.PathLike[str] | None
    storage_class: str | None
    tags: str | Mapping[str, str] | None
    acl: str | None
    access_tier: str | None
    encryption_scope: str | None


_S3: Final = "s3:// only"
_AZ: Final = "az:// only"
# fmt: off
OBJECT_OPTIONS: Final = (
    Option("content_type", ("--content-type",), Scope.RUN, metavar="TYPE", field="content_type",
        validate=optional_header("--content-type"),
        shown_default="guessed from the extension",
        help="the Content-Type of every object, instead of the one guessed from its extension by the package's own "
        "table (unknown extensions: application/octet-stream)"),
    Option("guess_mime_type", ("--no-guess-mime-type",), Scope.RUN, kind=Kind.FLAG, default=True,
        field="guess_mime_type", help="send no Content-Type (the store then picks one: binary/octet-stream on S3)"),
    Option("cache_control", ("--cache-control",), Scope.RUN, metavar="VALUE", field="cache_control",
        validate=optional_header("--cache-control"), help="the Cache-Control header of every object"),
    Option("content_encoding", ("--content-encoding",), Scope.RUN, metavar="VALUE", field="content_encoding",
        validate=optional_header("--content-encoding"),
        help="the Content-Encoding of every object (gzip for files already gzipped; nothing is compressed)"),
    Option("content_disposition", ("--content-disposition",), Scope.RUN, metavar="VALUE",
        field="content_disposition", validate=optional_header("--content-disposition"),
        help="the Content-Disposition of every object"),
    Option("content_language", ("--content-language",), Scope.RUN, metavar="VALUE", field="content_language",
        validate=optional_header("--content-language"), help="the Content-Language of every object"),
    Option("expires", ("--expires",), Scope.RUN, metavar="DATE", field="expires", validate=parse_expires,
        help=f"the Expires header of every object, e.g. 2030-01-01T00:00:00Z ({_S3})"),
    Option("metadata", ("--metadata",), Scope.RUN, kind=Kind.LIST, metavar="KEY=VALUE", default=(),
        field="metadata", validate=parse_metadata,
        help="extra user metadata on every object (repeatable); size, mtime and mode are the uploader's own"),
    Option("header_rule", ("--header-rule",), Scope.RUN, kind=Kind.LIST, metavar="'GLOB:Header: value'",
        default=(), field="header_rule", validate=parse_header_rules,
        help="set a header on the paths GLOB matches (as --include reads globs), e.g. "
        "'*.html:Cache-Control: no-cache' (repeatable; for each header the last matching rule wins); headers: "
        "Content-Type, Cache-Control, Content-Encoding, Content-Disposition, Content-Language"),
    Option("header_rules", ("--header-rules",), Scope.RUN, metavar="FILE", field="header_rules",
        validate=read_header_rules,
        help="header rules from FILE, one 'GLOB:Header: value' a line (# comments); before --header-rule's"),
    Option("sse", ("--sse",), Scope.RUN, metavar="|".join(SSE_MODES), field="sse", validate=parse_sse,
        help=f"server-side encryption: S3-managed keys (AES256) or KMS (aws:kms, aws:kms:dsse) ({_S3})"),
    Option("sse_kms_key_id", ("--sse-kms-key-id",), Scope.RUN, metavar="KEY", field="sse_kms_key_id",
        validate=optional_header("--sse-kms-key-id"),
        shown_default="the bucket's or the account's KMS key", help="the KMS key of --sse aws:kms"),
    Option("sse_kms_context", ("--sse-kms-context",), Scope.RUN, metavar="JSON", field="sse_kms_context",
        validate=parse_kms_context, help="the KMS encryption context of --sse aws:kms, a JSON object of strings"),
    Option("sse_c_key_file", ("--sse-c-key-file",), Scope.RUN, metavar="FILE", field="sse_c_key",
        validate=read_sse_c_key,
        help="encrypt with your own 256-bit key (SSE-C), read from FILE (32 bytes, or their base64); sent on "
        f"every request of the object, never shown; reading an object back needs it too ({_S3})"),
    Option("storage_class", ("--storage-class",), Scope.RUN, metavar="CLASS", field="storage_class",
        validate=parse_storage_class,
        help=f"the storage class of every object: STANDARD_IA, GLACIER_IR, DEEP_ARCHIVE... ({_S3})"),
    Option("tags", ("--tags",), Scope.RUN, metavar="K=V&K2=V2", field="tags", validate=parse_tags,
        help=f"object tags, at most 10 ({_S3})"),
    Option("acl", ("--acl",), Scope.RUN, metavar="|".join(ACLS), field="acl", validate=parse_acl,
        help=f"a canned ACL; a public one is refused: the uploader never makes data public ({_S3})"),
    Option("access_tier", ("--access-tier",), Scope.RUN, metavar="|".join(ACCESS_TIERS), field="access_tier",
        validate=parse_access_tier, help=f"the access tier of every blob ({_AZ})"),
    Option("encryption_scope", ("--encryption-scope",), Scope.RUN, metavar="SCOPE", field="encryption_scope",
        validate=optional_header("--encryption-scope"),
        help=f"the encryption scope every blob is encrypted with ({_AZ})"),
)
# fmt: on
