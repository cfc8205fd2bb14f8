"""``--shard K/N``: the K-th of N disjoint parts of a tree, the same on every machine, for job arrays.

A file belongs to the shard its relative path hashes to (BLAKE2b, not Python's salted ``hash``), so the
partition is a pure function of names: shards run anywhere (Kubernetes Indexed Jobs, Slurm arrays, a CI
matrix) with no coordinator, cover the tree exactly once between them, and are balanced in file count whatever
the shape of the tree, including one directory holding most of the files. A shard still lists every directory
(readdir is cheap) but stats, reads and uploads only its own files; everything it reports (a file, a FIFO
skipped, a directory it could not list) is reported by one shard only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

from ..errors import ConfigError

_SHARD_RE: Final = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$", re.ASCII)


def shard_of(rel: str, count: int) -> int:
    """Which of ``count`` shards the path ``rel`` belongs to."""
    digest = hashlib.blake2b(rel.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    def takes(self, rel: str) -> bool:
        return self.count == 1 or shard_of(rel, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``K/N`` with ``0 <= K < N``: shards are numbered from 0, as job-array indexes are."""
    match = _SHARD_RE.match(text)
    if match is None:
        raise ConfigError(f"--shard must look like K/N (e.g. 0/4), got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise ConfigError(f"--shard {text}: K must be from 0 to N-1, and N at least 1")
    return Shard(index, count)
