"""Tests for ``async_uploader.source.filters``: which relative paths ``--include``/``--exclude`` take, and which
directories the walk may skip without ever listing them."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from async_uploader.errors import ConfigError
from async_uploader.source.filters import PathFilter

INC = "include"
EXC = "exclude"

Flags = tuple[tuple[str, str], ...]


def includes(flags: Flags, rel: str) -> bool:
    return PathFilter.from_flags(flags).includes_file(rel)


def prunes(flags: Flags, rel: str) -> bool:
    return PathFilter.from_flags(flags).prunes_directory(rel)


# (flags, file path, is the file uploaded?)
FILE_CASES: list[tuple[Flags, str, bool]] = [
    # No rules: everything, hidden and deep files too.
    ((), "a.txt", True),
    ((), "deep/er/.hidden", True),
    # A pattern without "/" matches a name at any depth.
    (((EXC, "*.tmp"),), "a.tmp", False),
    (((EXC, "*.tmp"),), "x/y/z.tmp", False),
    (((EXC, "*.tmp"),), "a.tmp.txt", True),
    (((EXC, "*.tmp"),), "tmp", True),
    (((EXC, "*.tmp"),), "dir.tmp/inside.txt", False),  # a matching directory takes its contents with it
    # Anchored at SOURCE: only the top-level build/cache.
    (((EXC, "build/cache/**"),), "build/cache/a.o", False),
    (((EXC, "build/cache/**"),), "build/cache/sub/b.o", False),
    (((EXC, "build/cache/**"),), "build/out.o", True),
    (((EXC, "build/cache/**"),), "build/cachex/a.o", True),
    (((EXC, "build/cache/**"),), "src/build/cache/a.o", True),
    (((EXC, "build/cache/**"),), "build/cache", True),  # a *file* named cache: "/**" means below a directory
    # A trailing "/" matches directories only (and, as in rsync and .gitignore, does not anchor by itself).
    (((EXC, "build/"),), "build/a.o", False),
    (((EXC, "build/"),), "build/sub/b.o", False),
    (((EXC, "build/"),), "src/build/c.o", False),
    (((EXC, "build/"),), "build", True),
    (((EXC, "build/"),), "docs/build", True),
    (((EXC, "build/"),), "builds/a.o", True),
    # Everything out, then wheels back in: wheels at any depth and nothing else.
    (((EXC, "*"), (INC, "*.whl")), "a-1.0-py3-none-any.whl", True),
    (((EXC, "*"), (INC, "*.whl")), "dist/sub/b-2.0.whl", True),
    (((EXC, "*"), (INC, "*.whl")), "dist/readme.txt", False),
    (((EXC, "*"), (INC, "*.whl")), "setup.py", False),
    # An include alone restricts: a file no rule matches is not taken once any rule is an include.
    (((INC, "f1*"),), "f1.txt", True),
    (((INC, "f1*"),), "f2.txt", False),
    (((INC, "*.whl"),), "dist/sub/b-2.0.whl", True),
    (((INC, "*.whl"),), "dist/b-2.0.tar.gz", False),
    (((INC, "dist/**"),), "dist/sub/a.txt", True),
    (((INC, "dist/**"),), "src/a.txt", False),
    (((INC, "*.whl"), (EXC, "old-*")), "old-1.whl", False),
    (((INC, "*.whl"), (EXC, "old-*")), "setup.py", False),
    (((EXC, "*.tmp"),), "setup.py", True),  # excludes alone keep the rest
    # A name rule matching a directory drops everything below it, at any depth; similar names survive.
    (((EXC, "node_modules"),), "node_modules/pkg/index.js", False),
    (((EXC, "node_modules"),), "web/app/node_modules/x.js", False),
    (((EXC, "node_modules"),), "node_modules", False),  # no trailing "/": a file of that name goes too
    (((EXC, "node_modules"),), "node_modules_old/a.js", True),
    (((EXC, "node_modules"),), "web/my_node_modules/a.js", True),
    # The last matching flag wins, in both directions, for files and for whole directories.
    (((INC, "x"), (EXC, "x")), "x", False),
    (((INC, "x"), (EXC, "x")), "d/x", False),
    (((EXC, "x"), (INC, "x")), "x", True),
    (((EXC, "x"), (INC, "x")), "d/x", True),
    (((EXC, "logs"), (INC, "*.keep")), "logs/a.keep", True),
    (((EXC, "logs"), (INC, "*.keep")), "logs/a.log", False),
    (((INC, "*.keep"), (EXC, "logs")), "logs/a.keep", False),
    # "**/" stands for zero or more whole segments.
    (((EXC, "**/test_*.py"),), "test_a.py", False),
    (((EXC, "**/test_*.py"),), "a/b/test_c.py", False),
    (((EXC, "**/test_*.py"),), "a/btest_c.py", True),
    (((EXC, "**/test_*.py"),), "a/test_c.pyc", True),
    (((EXC, "src/**/*.py"),), "src/a.py", False),
    (((EXC, "src/**/*.py"),), "src/x/y/a.py", False),
    (((EXC, "src/**/*.py"),), "lib/src/a.py", True),
    # "?" is exactly one character, never "/".
    (((EXC, "?.txt"),), "a.txt", False),
    (((EXC, "?.txt"),), "ab.txt", True),
    (((EXC, "?.txt"),), ".txt", True),
    (((EXC, "a?b/c"),), "a/b/c", True),
    # Character classes, negated classes and ranges.
    (((EXC, "file[abc].txt"),), "fileb.txt", False),
    (((EXC, "file[abc].txt"),), "filed.txt", True),
    (((EXC, "file[!abc].txt"),), "filed.txt", False),
    (((EXC, "file[!abc].txt"),), "fileb.txt", True),
    (((EXC, "v[0-9].log"),), "v7.log", False),
    (((EXC, "v[0-9].log"),), "vx.log", True),
    # "*" stays within one segment of an anchored pattern.
    (((EXC, "src/*.py"),), "src/a.py", False),
    (((EXC, "src/*.py"),), "src/sub/b.py", True),
    (((EXC, "src/*.py"),), "a.py", True),
    # Regex metacharacters in names are literal; an unclosed "[" is a literal bracket.
    (((EXC, "a+b(1).txt"),), "a+b(1).txt", False),
    (((EXC, "a+b(1).txt"),), "aab(1).txt", True),
    (((EXC, "a+b(1).txt"),), "a+b1.txt", True),
    (((EXC, "*.tar.gz"),), "x.tar.gz", False),
    (((EXC, "*.tar.gz"),), "x_tar_gz", True),
    (((EXC, "^$|{1}"),), "^$|{1}", False),
    (((EXC, "^$|{1}"),), "^$", True),
    (((EXC, "a[b"),), "a[b", False),
    (((EXC, "a[b"),), "ab", True),
    (((EXC, "[x]"),), "x", False),  # closed: a class of one character
    (((EXC, "[x]"),), "[x]", True),
]

# (flags, directory path, may the walk skip it without listing it?)
PRUNE_CASES: list[tuple[Flags, str, bool]] = [
    ((), "a", False),
    (((EXC, "*.tmp"),), "cache.tmp", True),
    (((EXC, "*.tmp"),), "src", False),
    (((EXC, "build/cache/**"),), "build/cache", True),
    (((EXC, "build/cache/**"),), "build/cache/sub", True),
    (((EXC, "build/cache/**"),), "build", False),
    (((EXC, "build/cache/**"),), "src/build/cache", False),
    (((EXC, "build/"),), "build", True),
    (((EXC, "build/"),), "builds", False),
    (((EXC, "*"), (INC, "*.whl")), "dist", False),  # a wheel may be anywhere below
    (((EXC, "*"), (INC, "*.whl")), "a/b/c", False),
    (((EXC, "node_modules"),), "node_modules", True),
    (((EXC, "node_modules"),), "web/app/node_modules", True),
    (((EXC, "node_modules"),), "web/node_modules/pkg", True),
    (((EXC, "node_modules"),), "web", False),
    (((INC, "x"), (EXC, "x")), "x", True),
    (((EXC, "x"), (INC, "x")), "x", False),
    (((EXC, "logs"), (INC, "*.keep")), "logs", False),  # a later include may take something inside
    (((INC, "*.keep"), (EXC, "logs")), "logs", True),
    (((EXC, "src/*.py"),), "src", False),
    # Includes alone never prune: what they name may be anywhere below.
    (((INC, "*.whl"),), "dist", False),
    (((INC, "dist/**"),), "src", False),
    (((INC, "dist/**"),), "dist", False),
]


def case_id(flags: Flags, rel: str, expected: bool) -> str:
    rules = " ".join(f"--{kind} {pattern}" for kind, pattern in flags) or "no rules"
    return f"{rules} | {rel} -> {expected}"


@pytest.mark.parametrize(("flags", "rel", "included"), [pytest.param(*c, id=case_id(*c)) for c in FILE_CASES])
def test_includes_file(flags: Flags, rel: str, included: bool) -> None:
    assert includes(flags, rel) is included


@pytest.mark.parametrize(("flags", "rel", "pruned"), [pytest.param(*c, id=case_id(*c)) for c in PRUNE_CASES])
def test_prunes_directory(flags: Flags, rel: str, pruned: bool) -> None:
    assert prunes(flags, rel) is pruned


def test_empty_filter_is_falsy_so_the_walk_can_skip_it() -> None:
    assert not PathFilter.from_flags([])
    assert PathFilter.from_flags([(EXC, "*.tmp")])


# Pruning must never drop a file the rules would take: the walk does not even list a pruned directory.

SEGMENTS = ["a", "b", "ab", "x.tmp", "node_modules", ".h"]
PATTERNS = [
    "a",
    "b",
    "*",
    "?",
    "a*",
    "*b",
    "[ab]",
    "[!a]",
    "*.tmp",
    "node_modules",
    "**",
    "a/",
    "b/",
    "a/**",
    "a/b",
    "a/*",
    "*/b",
    "a/b/**",
    "**/b",
    "**/a/",
    "**/x.tmp",
    "b/**/a",
]

rules_lists = st.lists(st.tuples(st.sampled_from([INC, EXC]), st.sampled_from(PATTERNS)), max_size=5)
segment_lists = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3)


@settings(max_examples=400, deadline=None)
@given(flags=rules_lists, directory=segment_lists, below=segment_lists)
@example(flags=[(EXC, "a"), (INC, "*.tmp")], directory=["a"], below=["x.tmp"])
@example(flags=[(EXC, "**"), (INC, "b")], directory=["a"], below=["a", "b"])
@example(flags=[(EXC, "a/"), (INC, "a/b/**")], directory=["a"], below=["b", "ab"])
def test_a_pruned_directory_holds_no_file_the_rules_would_take(
    flags: list[tuple[str, str]], directory: list[str], below: list[str]
) -> None:
    path_filter = PathFilter.from_flags(flags)
    rel_dir = "/".join(directory)
    if path_filter.prunes_directory(rel_dir):
        assert not path_filter.includes_file(f"{rel_dir}/{'/'.join(below)}")


# Regressions: bugs found while writing these tests.


def test_trailing_double_star_pattern_stays_anchored() -> None:
    flags: Flags = ((EXC, "build/**"),)
    assert not includes(flags, "build/x.o")
    assert includes(flags, "src/build/x.o")
    assert not prunes(flags, "src/build")


@pytest.mark.parametrize("pattern", ["[z-a]", "a[b-a]c"])
def test_malformed_class_is_a_config_error(pattern: str) -> None:
    with pytest.raises(ConfigError, match="invalid glob"):
        PathFilter.from_flags([(EXC, pattern)])


def test_negated_class_may_start_with_a_closing_bracket() -> None:
    flags: Flags = ((EXC, "[!]x]"),)  # as in fnmatch: any one character except "]" and "x"
    assert not includes(flags, "a")
    assert includes(flags, "]")
    assert includes(flags, "x")
