"""The CI workflows and the GitHub Action, checked against GitHub's schemas offline (check-jsonschema's vendored
copies): a typo in a key there fails on GitHub only after a push, so it is caught here first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
ACTION_FILES = (REPO / "action.yml", *sorted((REPO / ".github" / "action").glob("*.sh")))


@pytest.mark.parametrize(
    ("schema", "files"),
    [
        ("vendor.github-workflows", sorted((REPO / ".github" / "workflows").glob("*.yml"))),
        ("vendor.github-actions", [REPO / "action.yml"]),
    ],
    ids=["workflows", "action"],
)
def test_the_workflows_and_the_action_are_valid(schema: str, files: list[Path]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, files)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_action_never_calls_python3() -> None:
    """Windows runners have no ``python3``: the action runs the interpreter it set up, or ``python``."""
    for path in ACTION_FILES:
        code = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("#")]
        assert [line for line in code if "python3" in line] == [], path
