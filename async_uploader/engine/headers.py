"""Each file's ``ObjectHeaders``: the run's own, its Content-Type by extension, and the header rules that match it.

A site wants ``Cache-Control: max-age=31536000, immutable`` on hashed assets and ``no-cache`` on ``index.html`` in
one run: ``--header-rule 'GLOB:Header: value'`` sets a header on the paths a glob matches (globs as ``--include``
reads them), rules from ``--header-rules FILE`` first, then the flags; for each header the last matching rule wins,
like the filters. Pure, and cheap per file: without rules a file costs one dictionary lookup by extension; with
rules, one match per rule, then the same lookup by extension and the rules that matched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..errors import ConfigError
from ..providers.base import ObjectHeaders
from ..source.content_type import OCTET_STREAM, TYPES_BY_EXTENSION, extension
from ..source.filters import PathFilter, make_rule

RULE_HEADERS: Final = {
    "content-type": "content_type",
    "cache-control": "cache_control",
    "content-encoding": "content_encoding",
    "content-disposition": "content_disposition",
    "content-language": "content_language",
}
"""The headers a rule may set, by lower-case name, and their ``ObjectHeaders`` field."""
OPTION_FLAGS: Final = {
    "content_type": "--content-type",
    "cache_control": "--cache-control",
    "content_encoding": "--content-encoding",
    "content_disposition": "--content-disposition",
    "content_language": "--content-language",
    "expires": "--expires",
    "sse": "--sse",
    "sse_kms_key_id": "--sse-kms-key-id",
    "sse_kms_context": "--sse-kms-context",
    "sse_c_key": "--sse-c-key-file",
    "storage_class": "--storage-class",
    "tagging": "--tags",
    "acl": "--acl",
    "access_tier": "--access-tier",
    "encryption_scope": "--encryption-scope",
}
"""The option that sets each ``ObjectHeaders`` field, for the one line that refuses it."""
MAX_CACHED_COMBINATIONS: Final = 4096


@dataclass(frozen=True, slots=True)
class HeaderRule:
    """Set ``header`` (an ``ObjectHeaders`` field) to ``value`` on the paths ``glob`` matches."""

    glob: str
    field: str
    value: str

    def __str__(self) -> str:
        name = next(header for header, field in RULE_HEADERS.items() if field == self.field)
        return f"{self.glob}:{name.title()}: {self.value}"


def check_header_value(flag: str, value: str) -> str:
    """A header value S3 and Azure accept as it is: printable ASCII on one line (botocore would send nothing else
    intact)."""
    if not value or not value.isascii() or not value.isprintable() or value != value.strip():
        raise ConfigError(f"{flag} needs a non-empty value of printable ASCII on one line, got {value!r}")
    return value


def parse_header_rule(text: str | HeaderRule, where: str = "--header-rule") -> HeaderRule:
    """``GLOB:Header: value`` (``*.html:Cache-Control: no-cache``) as a ``HeaderRule``; ``ConfigError`` naming the
    rule when it is not one."""
    if isinstance(text, HeaderRule):
        return text
    glob, _, rest = text.partition(":")
    name, sep, value = rest.partition(":")
    field = RULE_HEADERS.get(name.strip().lower())
    if not glob.strip() or not sep or field is None:
        names = ", ".join(h.title() for h in RULE_HEADERS)
        raise ConfigError(f"{where}: {text!r} is not GLOB:Header: value, with a header among {names}")
    make_rule(True, glob.strip())  # a glob that cannot be compiled fails now
    return HeaderRule(glob.strip(), field, check_header_value(f"{where} {glob.strip()}", value.strip()))


def parse_header_rules(values: Sequence[str | HeaderRule] | str | None) -> tuple[HeaderRule, ...]:
    """``--header-rule`` values (repeatable), in order."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = (values,)
    return tuple(parse_header_rule(value) for value in values)


def read_header_rules(path: object) -> tuple[HeaderRule, ...]:
    """``--header-rules FILE``: one ``GLOB:Header: value`` rule a line; blank lines and ``#`` comments skipped."""
    if path is None:
        return ()
    name = str(path)
    try:
        with open(name, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--header-rules: cannot read {name!r}: {getattr(exc, 'strerror', None) or exc}") from None
    return tuple(
        parse_header_rule(line.strip(), f"--header-rules {name} line {number}")
        for number, line in enumerate(lines, 1)
        if line.strip() and not line.lstrip().startswith("#")
    )


class HeaderPlanner:
    """The ``ObjectHeaders`` of each file of a run: the run's, its type guessed from the key's extension (unless
    the run forces one or guesses none), then the matching rules.

    The same instance for every file with the same extension and the same matching rules: cached here, so that a
    file costs no new object and a store's cache of what it sends for one is hit.
    """

    def __init__(self, run: ObjectHeaders, *, guess: bool, rules: Sequence[HeaderRule] = ()) -> None:
        self.run = run
        self._guess = guess and run.content_type is None
        self._rules = tuple(rules)
        self._globs = PathFilter.from_flags([("include", rule.glob) for rule in self._rules])
        self._by_extension: dict[str, ObjectHeaders] = {}
        self._by_rules: dict[tuple[str, tuple[int, ...]], ObjectHeaders] = {}

    def for_file(self, rel: str, key: str) -> ObjectHeaders:
        """The headers of the file at ``rel`` (relative to the source) stored at ``key``."""
        ext = extension(key) if self._guess else ""
        headers = self._by_extension.get(ext)
        if headers is None:
            headers = self._by_extension[ext] = self._typed(ext)
        if not self._rules:
            return headers
        matched = self._globs.matching(rel)
        if not matched:
            return headers
        cached = self._by_rules.get((ext, matched))
        if cached is None:
            changes: dict[str, Any] = {self._rules[i].field: self._rules[i].value for i in matched}  # last wins
            cached = dataclasses.replace(headers, **changes)
            if len(self._by_rules) >= MAX_CACHED_COMBINATIONS:
                self._by_rules.clear()
            self._by_rules[(ext, matched)] = cached
        return cached

    def _typed(self, ext: str) -> ObjectHeaders:
        if not self._guess:
            return self.run
        return dataclasses.replace(self.run, content_type=TYPES_BY_EXTENSION.get(ext, OCTET_STREAM))


def refused_fields(asked: ObjectHeaders, honoured: frozenset[str]) -> list[str]:
    """The options behind the fields of ``asked`` a store does not honour, by their flags."""
    return [OPTION_FLAGS.get(name, name) for name in asked.fields_set() if name not in honoured]
