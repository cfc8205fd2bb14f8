"""``--delete``: after the uploads, delete the keys under the destination prefix that no source file maps to.

The guards are rclone's: nothing is deleted when any file of the run failed (an unreadable directory is a failure
of the walk: its files were never seen, and their objects would look orphaned), when the listing of the
destination is incomplete, or when the run was cut short (this phase is never reached then); a source with no
file deletes nothing unless ``--allow-empty-source``; more deletions than ``--max-delete`` delete nothing. Keys
the filters leave out are kept unless ``--delete-excluded``; keys ending in ``/`` (folder markers, which no file
maps to) are kept. Memory stays flat: the walk's keys and the listing live in the state file's temporary tables
(``StateFile.add_seen``, ``unseen_listed``), and the deletions go out a batch at a time.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

import anyio

from ..config import UploadConfig
from ..errors import FileError, StoreError
from ..events import DeleteFailed, DeletePlanned, DeletesWithheld, EventHandler, ObjectDeleted, PhaseStarted
from ..providers.base import MAX_DELETE_BATCH_KEYS, DeletesObjects
from ..source.filters import PathFilter
from ..source.scan import FileEntry, ScanItem
from .limits import Limits
from .plan import object_key
from .state import StateFile

log = logging.getLogger(__name__)

DELETES_AT_ONCE: Final = 4
"""Batch deletions in flight: a thousand keys a request, so a few keep a large clean-up quick."""


@dataclass(frozen=True, slots=True)
class WalkTally:
    """What the guards need to know of the run before it deletes anything."""

    files_seen: int
    """Regular files the walk found (uploaded, skipped as unchanged, or failed)."""
    failed: int
    """Files (and directories of the walk) that failed."""
    listing_problem: str | None
    """Why the listing does not hold every key under the prefix, or ``None``."""


@dataclass(frozen=True, slots=True)
class DeleteVerdict:
    """What the guards decided: delete, or not and why. ``refused`` is the run's error (exit 2); otherwise a
    ``reason`` is a warning (the run has already failed for it)."""

    delete: bool
    reason: str | None = None
    refused: bool = False


def check_guards(tally: WalkTally, *, allow_empty_source: bool) -> DeleteVerdict:
    """The guards that do not need the count of deletions (``check_max_delete`` is the one that does)."""
    if tally.failed:
        return DeleteVerdict(
            False, f"--delete: nothing deleted, as {tally.failed:,} files failed (their keys are unknown)"
        )
    if tally.listing_problem is not None:
        return DeleteVerdict(False, f"--delete: nothing deleted: {tally.listing_problem}", refused=True)
    if tally.files_seen == 0 and not allow_empty_source:
        return DeleteVerdict(
            False,
            "--delete: SOURCE has no file: nothing deleted (--allow-empty-source empties the prefix)",
            refused=True,
        )
    return DeleteVerdict(True)


def check_max_delete(count: int, max_delete: int | None) -> DeleteVerdict:
    """``--max-delete N``: over N deletions, none at all."""
    if max_delete is not None and count > max_delete:
        return DeleteVerdict(
            False,
            f"--delete: {count:,} keys would be deleted, over --max-delete {max_delete:,}: nothing deleted",
            refused=True,
        )
    return DeleteVerdict(True)


def doomed_keys(
    pages: Iterable[list[str]], prefix: str, path_filter: PathFilter, *, delete_excluded: bool, keep: str | None = None
) -> Iterator[str]:
    """The keys of ``pages`` (listed, and no walked file's) that go: under ``prefix``, not a folder marker, not
    left out by the filters (unless ``delete_excluded``), not ``keep`` (the run's own write probe)."""
    start = len(prefix)
    for page in pages:
        for key in page:
            if not key.startswith(prefix) or key.endswith("/") or key == keep:
                continue
            if delete_excluded or not path_filter or path_filter.includes_file(key[start:]):
                yield key


def seen_keys(prefix: str, items: Iterable[ScanItem]) -> tuple[list[str], int]:
    """The keys a batch of the walk maps source paths to (files, and what the walk skipped or failed: kept), and
    how many of them are regular files."""
    keys: list[str] = []
    files = 0
    for item in items:
        files += isinstance(item, FileEntry)
        with contextlib.suppress(FileError):  # a name that cannot be a key fails as a file, which holds the guard
            keys.append(object_key(prefix, item.rel))
    return keys, files


def batches(keys: Iterable[str], size: int = MAX_DELETE_BATCH_KEYS) -> Iterator[list[str]]:
    """``keys`` in lists of at most ``size``."""
    batch: list[str] = []
    for key in keys:
        batch.append(key)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class Deleter:
    """Runs the deletion phase of one run: the guards, then the batches, each under the run's retry policy."""

    def __init__(
        self,
        store: DeletesObjects | None,
        state: StateFile,
        limits: Limits,
        emit: EventHandler,
        *,
        prefix: str,
        path_filter: PathFilter,
        delete_excluded: bool,
        dry_run: bool,
        keep: str | None = None,
    ) -> None:
        self._store = store
        self._state = state
        self._limits = limits
        self._emit = emit
        self._prefix = prefix
        self._path_filter = path_filter
        self._delete_excluded = delete_excluded
        self._dry_run = dry_run
        self._keep = keep

    def _doomed(self) -> Iterator[str]:
        pages = self._state.unseen_listed(self._prefix, page_rows=MAX_DELETE_BATCH_KEYS)
        return doomed_keys(
            pages, self._prefix, self._path_filter, delete_excluded=self._delete_excluded, keep=self._keep
        )

    async def run(self, tally: WalkTally, *, allow_empty_source: bool, max_delete: int | None) -> str | None:
        """Delete what goes, or nothing; the refusal to report as the run's error (``DeleteRefusedError``), if
        any. A guard that holds for a run that failed anyway is a warning and a ``DeletesWithheld`` event."""
        verdict = check_guards(tally, allow_empty_source=allow_empty_source)
        if verdict.delete and max_delete is not None:
            verdict = check_max_delete(sum(1 for _ in self._doomed()), max_delete)
        if not verdict.delete:
            assert verdict.reason is not None
            if verdict.refused:
                return verdict.reason
            log.warning("%s", verdict.reason)
            self._emit(DeletesWithheld(verdict.reason))
            return None
        if self._dry_run:
            for key in self._doomed():
                self._emit(DeletePlanned(key))
            return None
        self._emit(PhaseStarted("deleting what the source no longer has"))
        queue = batches(self._doomed())
        async with anyio.create_task_group() as group:
            for _ in range(DELETES_AT_ONCE):
                group.start_soon(self._delete_batches, queue)
        return None

    async def _delete_batches(self, queue: Iterator[list[str]]) -> None:
        for batch in queue:  # shared by the tasks: each takes the next batch when it is free
            await self.delete_batch(batch)

    async def delete_batch(self, keys: list[str]) -> None:
        """One batch, every key ending in an ``ObjectDeleted`` or a ``DeleteFailed``. Keys the store could not
        delete for a transient reason are sent again (alone) under the retry policy, like a failed request."""
        store = self._store
        assert store is not None
        pending = keys
        emit = self._emit

        async def once() -> None:
            nonlocal pending
            failures = await store.delete_objects(pending)
            failed = {failure.key for failure in failures}
            for key in pending:
                if key not in failed:
                    emit(ObjectDeleted(key))
            for failure in failures:
                if not failure.retryable:
                    emit(DeleteFailed(failure.key, failure.reason))
            again = [failure for failure in failures if failure.retryable]
            pending = [failure.key for failure in again]
            if again:
                raise StoreError(f"DeleteObjects: {len(again)} keys not deleted: {again[0].reason}", retryable=True)

        try:
            await self._limits.request(once, deadline=self._limits.retry.deadline(), on_retry=_note_retry)
        except FileError as exc:
            for key in pending:
                emit(DeleteFailed(key, str(exc)))


def _note_retry(exc: FileError) -> None:
    log.info("deleting again after: %s", exc)


async def delete_unmatched(
    config: UploadConfig,
    store: object,
    state: StateFile,
    limits: Limits,
    emit: EventHandler,
    tally: WalkTally,
    *,
    path_filter: PathFilter,
    keep: str | None,
) -> str | None:
    """``--delete``'s phase, once every file is done: what its guards refused, if they did. A store without the
    ``DeletesObjects`` capability was refused before the run (``runner``)."""
    deleter = Deleter(
        store if isinstance(store, DeletesObjects) else None,
        state,
        limits,
        emit,
        prefix=config.destination.prefix,
        path_filter=path_filter,
        delete_excluded=config.delete_excluded,
        dry_run=config.dry_run,
        keep=keep,
    )
    return await deleter.run(tally, allow_empty_source=config.allow_empty_source, max_delete=config.max_delete)
