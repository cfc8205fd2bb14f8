"""``--include`` / ``--exclude`` rules: which relative paths a run takes, and which directories it can skip.

Pure and I/O-free; the walk asks it. Semantics, chosen to match what aws-cli and rsync users expect:

- Rules are checked in order and the *last* match wins. A file no rule matches is taken, unless there is at
  least one ``--include``: then only what an include names is taken (as rclone and s5cmd do; publishing a file
  the user did not choose would be a leak).
- A pattern without ``/`` matches a name at any depth (``*.tmp``, ``node_modules``); a pattern with ``/`` is
  anchored at SOURCE (``build/cache/**``). A trailing ``/`` makes a rule match directories only.
- ``*`` and ``?`` stay within one path segment, ``**`` crosses segments, ``[abc]`` is a character class.
- A rule that matches a directory matches everything below it, so ``--exclude node_modules`` drops the folder.
- A directory whose last matching rule is an exclude, with no include after that rule, is never descended into.
  A directory no rule matches is always descended into, even with includes: ``*.whl`` may match a file below it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class Rule:
    include: bool
    pattern: str
    regex: re.Pattern[str]
    anchored: bool
    directories_only: bool


def _glob_to_regex(glob: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")  # zero or more whole segments
            i += 3
            continue
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            start = i + 2 if glob.startswith("[!", i) else i + 1
            if glob.startswith("]", start):  # a leading ] is a member of the class, not its end
                start += 1
            end = glob.find("]", start)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = glob[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body.replace(chr(92), chr(92) * 2).replace('[', chr(92) + '[')}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def make_rule(include: bool, pattern: str) -> Rule:
    """One rule; a glob that cannot be compiled is a ``ConfigError`` naming it."""
    anchored = "/" in pattern.rstrip("/")
    body = pattern
    if body.endswith("/**"):  # everything below X is X itself, as a directory: lets the walk prune it
        body = body[:-2]
    directories_only = body.endswith("/")
    body = body.rstrip("/").lstrip("/")
    try:
        regex = re.compile(_glob_to_regex(body), re.DOTALL)
    except re.error as exc:
        raise ConfigError(f"invalid glob {pattern!r}: {exc}") from None
    return Rule(include, pattern, regex, anchored, directories_only)


class PathFilter:
    """The ordered rules of one run; ``PathFilter([])`` takes everything."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self._unmatched_taken = not any(rule.include for rule in self.rules)
        """What a file no rule matches gets: taken, unless some rule is an include."""

    @classmethod
    def from_flags(cls, flags: Sequence[tuple[str, str]]) -> PathFilter:
        """``flags`` in command-line order: ``("include" | "exclude", pattern)``."""
        return cls([make_rule(kind == "include", pattern) for kind, pattern in flags])

    def __bool__(self) -> bool:
        return bool(self.rules)

    def _matches(self, rule: Rule, rel: str, is_dir: bool) -> bool:
        """Does ``rule`` match ``rel`` itself or any directory above it?"""
        segments = rel.split("/")
        for depth in range(len(segments), 0, -1):
            target_is_dir = is_dir or depth < len(segments)
            if rule.directories_only and not target_is_dir:
                continue
            candidate = "/".join(segments[:depth]) if rule.anchored else segments[depth - 1]
            if rule.regex.fullmatch(candidate):
                return True
        return False

    def _decisive(self, rel: str, is_dir: bool) -> int:
        """Index of the last rule matching ``rel`` (or an ancestor), or -1."""
        for index in range(len(self.rules) - 1, -1, -1):
            if self._matches(self.rules[index], rel, is_dir):
                return index
        return -1

    def matching(self, rel: str) -> tuple[int, ...]:
        """The indices of the rules that match the file ``rel`` (or a directory above it), in order."""
        return tuple(index for index, rule in enumerate(self.rules) if self._matches(rule, rel, False))

    def includes_file(self, rel: str) -> bool:
        index = self._decisive(rel, is_dir=False)
        return self._unmatched_taken if index < 0 else self.rules[index].include

    def prunes_directory(self, rel: str) -> bool:
        """True when nothing below ``rel`` can be included, so the walk need not enter it.

        Only an exclude prunes: a directory no rule matches is entered even when includes exist, since telling
        whether a glob may match something below it is not worth a wrong answer that drops files.
        """
        index = self._decisive(rel, is_dir=True)
        if index < 0 or self.rules[index].include:
            return False
        return not any(rule.include for rule in self.rules[index + 1 :])
