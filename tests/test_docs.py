"""The documentation holds together: a short README with its quick start up front, and no relative link that leads
nowhere (a moved page or a renamed heading breaks the test, not a newcomer's first hour)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_LINES = 200
FIRST_SCREEN_LINES = 40
PAGES = sorted([README, *(ROOT / "docs").glob("*.md")])

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _prose(page: Path) -> str:
    """The page without code blocks and comments, where brackets and ``#`` lines are not Markdown."""
    return COMMENT.sub("", FENCE.sub("", page.read_text(encoding="utf-8")))


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|__", "", heading).lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading counts by its text
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    for heading in HEADING.findall(_prose(page)):
        anchor = github_anchor(heading)
        n = 0
        while (anchor if n == 0 else f"{anchor}-{n}") in found:
            n += 1
        found.add(anchor if n == 0 else f"{anchor}-{n}")
    return found


def test_github_anchor_matches_githubs_rule() -> None:
    assert github_anchor("Selecting files: `--include`, `--exclude`") == "selecting-files---include---exclude"
    assert github_anchor("Current results (2026-12-04, session 7)") == "current-results-2026-12-04-session-7"


def test_the_readme_is_short_and_starts_with_the_quick_start() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES
    first_screen = "\n".join(lines[:FIRST_SCREEN_LINES])
    assert "## Quick start" in first_screen
    assert "async-uploader upload " in first_screen
    assert "await async_uploader.upload(" in first_screen


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(_prose(page)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not ours to check
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if path_part == "cli.md" and not linked.exists():
            continue  # generated from the option table; a branch may not have it yet
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no such heading")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"
