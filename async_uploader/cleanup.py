"""``async-uploader cleanup``: abort the incomplete multipart uploads left under a prefix.

An upload that was created and neither completed nor aborted keeps its parts stored, and billed, with no object
to show for it: a run killed with SIGKILL, a machine that lost power, ``--keep-partial`` never resumed, another
tool. Only uploads older than ``older_than_s`` are aborted, so that one still in progress elsewhere is left alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .errors import FileError
from .providers.base import IncompleteUpload, ObjectStore


@dataclass(frozen=True, slots=True)
class CleanupResult:
    aborted: tuple[IncompleteUpload, ...]
    """Aborted (or, in a dry run, that would be)."""
    younger: int
    """Left alone: started less than ``older_than_s`` ago."""
    failed: tuple[tuple[IncompleteUpload, str], ...]


async def abort_incomplete_uploads(
    store: ObjectStore, prefix: str, *, older_than_s: float, dry_run: bool = False, now: float | None = None
) -> CleanupResult:
    """Abort every incomplete upload under ``prefix`` started at least ``older_than_s`` ago (by the store's
    clock, compared with ours)."""
    cutoff = (time.time() if now is None else now) - older_than_s
    aborted: list[IncompleteUpload] = []
    failed: list[tuple[IncompleteUpload, str]] = []
    younger = 0
    stale: list[IncompleteUpload] = []
    async for upload in store.incomplete_uploads(prefix):
        if upload.initiated > cutoff:
            younger += 1
        else:
            stale.append(upload)
    for upload in stale:
        try:
            if not dry_run:
                await store.abort_multipart(upload.key, upload.upload_id)
            aborted.append(upload)
        except FileError as exc:
            failed.append((upload, str(exc)))
    return CleanupResult(tuple(aborted), younger, tuple(failed))
