"""Small factories for source trees used across the tests."""

from __future__ import annotations

import os
import random
from pathlib import Path


def write_file(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def make_tree(root: Path, files: dict[str, bytes]) -> dict[str, bytes]:
    for rel, data in files.items():
        write_file(root, rel, data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    """Every regular file below root, by /-separated relative path."""
    found: dict[str, bytes] = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            if path.is_file():
                found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found
