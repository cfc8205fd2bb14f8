"""What the destination already holds: skip unchanged files and find uploads to resume, without a request per file.

At the start of a run the destination prefix is listed once: the objects directly under it, and each of the
source's top-level folders as its own listing, several at a time, so a big tree is listed in parallel and the
files of a folder can be decided as soon as that folder's listing is in (uploads start before the whole listing
is). Rows go into the state file's temporary table, not into memory. A file is then skipped, uploaded or, only
where the listing and the state file cannot settle it, checked with one HEAD (see ``plan.compare_with_destination``).

The open multipart uploads under the prefix are listed once too; a large file looks there for an upload of its
own to resume.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio

from ..config import Compare, Overwrite, UploadConfig
from ..errors import FileError, ReadDeniedError, StoreError
from ..events import Compared
from ..providers.base import NO_HEADERS, IncompleteUpload, ObjectHeaders, ObjectStore
from ..source.filters import PathFilter
from ..source.scan import FileEntry
from .compare import ContentComparer
from .limits import Limits
from .plan import Listed, Remembered, Verdict, compare_with_destination, unchanged_by_metadata
from .state import OpenUpload, StateFile

log = logging.getLogger(__name__)

LISTINGS_AT_ONCE: Final = 8
HASH_IN_WALK_BYTES: Final = 1024 * 1024
"""``--compare checksum``: files up to this size are hashed by the walk, a batch per thread call; larger ones by
their workers, where a thread call costs little beside the hashing."""
MAX_FOLDER_LISTINGS: Final = 256
"""Above this many top-level folders, one listing of the whole prefix costs fewer requests than one per folder."""
WHOLE: Final = "*"
SKIP_UNCHANGED: Final = "unchanged"
SKIP_EXISTS: Final = "already exists (--overwrite never)"


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a file goes up: ``skip`` (the reason it need not, else ``None``), and how the object at its key was
    compared (``None``: there is none, or nothing was compared)."""

    skip: str | None
    compared: Compared | None = None


UPLOAD: Final = Decision(None)
_DECISIONS: Final = {
    (skip, compared): Decision(skip, compared)
    for skip in (None, SKIP_UNCHANGED, SKIP_EXISTS)
    for compared in (None, "size", "mtime", "stat", "no-checksum")
}
"""The decisions made without reading a file, made once: most files of a run take one of these."""


def _decision(skip: str | None, compared: Compared | None) -> Decision:
    return _DECISIONS.get((skip, compared)) or Decision(skip, compared)


def _subfolders(directory: str, rel: str, path_filter: PathFilter) -> list[str]:
    names: list[str] = []
    with os.scandir(directory) as it:
        for entry in it:
            try:
                name = f"{rel}{entry.name}"
                if entry.is_dir() and not (path_filter and path_filter.prunes_directory(name)):
                    names.append(name)
            except OSError:
                continue  # the walk reports what it cannot read
    return names


def listing_units(source: Path, path_filter: PathFilter) -> dict[str, bool]:
    """The listings to make, ``folder -> recursive``: the files directly under the source (``""``), then each
    top-level folder; when there are fewer of those than listings in flight, each is split into the files
    directly in it and its own subfolders, so a tree under one folder is still listed in parallel. Over
    ``MAX_FOLDER_LISTINGS`` units, one listing of the whole prefix is fewer requests."""
    try:
        top = _subfolders(str(source), "", path_filter)
    except OSError:
        return {WHOLE: True}
    units: dict[str, bool] = {"": False}
    for folder in top:
        inner: list[str] = []
        if len(top) < LISTINGS_AT_ONCE:
            try:
                inner = _subfolders(os.path.join(source, folder), f"{folder}/", path_filter)
            except OSError:
                inner = []
        units[folder] = not inner
        units.update(dict.fromkeys(inner, True))
    return {WHOLE: True} if len(units) > MAX_FOLDER_LISTINGS else units


def _note_listing_retry(exc: FileError) -> None:
    log.info("listing again from its start after: %s", exc)


_SKIP_COMPARED: Final[dict[Compare, Compared]] = {
    Compare.MTIME: "mtime",
    Compare.SIZE: "size",
    Compare.CHECKSUM: "stat",
}


def _skip_compared(config: UploadConfig) -> Compared | None:
    """How a file the listing and the state file settle was compared, by the run's options."""
    return _SKIP_COMPARED[config.compare] if config.overwrite is Overwrite.CHANGED else None


def _folder_of(rel: str, listed: Mapping[str, object]) -> str:
    """The listing a path's object is in: its subfolder's or top-level folder's, ``""`` for the files directly
    under the source, or the whole prefix's."""
    if WHOLE in listed:
        return WHOLE
    parts = rel.split("/", 2)
    if len(parts) == 3 and f"{parts[0]}/{parts[1]}" in listed:
        return f"{parts[0]}/{parts[1]}"
    return parts[0] if len(parts) > 1 else ""


class DestinationIndex:
    """Answers, per file, "is it already there?", and per large file, "is there an upload of it to resume?"."""

    def __init__(self, store: ObjectStore, state: StateFile, config: UploadConfig, limits: Limits) -> None:
        self._store = store
        self._state = state
        self._prefix = config.destination.prefix
        self._single_key = config.destination.key
        """One file's key: only it is listed, not the folder it is in."""
        self._overwrite = config.overwrite
        self._compare = config.compare
        self._whole = config.delete
        """``--delete`` needs every key under the prefix, also under folders the source lacks: one listing of the
        whole prefix (docs/sync.md says why not a second one)."""
        self._limits = limits
        # A HEAD of an SSE-C object needs its key; nothing else of the run's headers.
        self._head_headers = ObjectHeaders(sse_c_key=config.sse_c_key) if config.sse_c_key else NO_HEADERS
        self._content = (
            ContentComparer(store, config, limits, self._head_headers) if config.compare is Compare.CHECKSUM else None
        )
        self.skip_compared: Compared | None = _skip_compared(config)
        """How the skips of ``known_skips`` were compared: the same for all of a run's."""
        self._listed: dict[str, anyio.Event] = {}
        """Top-level folder ("" for the files directly under the source) -> set when its listing is in."""
        self._recursive: dict[str, bool] = {}
        self._looked_up: dict[str, tuple[Listed | None, Remembered | None]] = {}
        """What ``known_skips`` looked up for the files it handed on, until their workers take it: as many as the
        queue holds. Every SQLite call releases and retakes the GIL, which hashing and reading threads hold, so a
        query per file on the loop costs far more than its own time (docs/design.md)."""
        self._decided: dict[str, Decision] = {}
        """Files ``content_skips`` found changed, until their workers upload them."""
        self._unlisted: set[str] = set()
        """Folders whose listing failed: their files are checked one HEAD each."""
        self._complete: set[str] = set()
        """Folders listed to their last page (a listing cut short by the run's end is not)."""
        self._all_listed = anyio.Event()
        self._folders_known = anyio.Event()
        self._blind = False
        """The credentials may not list or read the destination (a publish-only role): upload everything."""
        self._uploads: dict[str, list[IncompleteUpload]] = {}
        self._uploads_listed = anyio.Event()
        self._state_broken = False

    async def load(self, source: Path, path_filter: PathFilter) -> None:
        """List the destination into the state file's table; runs beside the walk and the uploads, in at most
        ``LISTINGS_AT_ONCE + 1`` tasks whatever the number of folders."""
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._list_uploads)
                if self._whole:
                    self._recursive = {WHOLE: True}
                elif self._single_key is not None and self._overwrite is not Overwrite.ALWAYS:
                    self._recursive = {"": False}
                elif self._overwrite is not Overwrite.ALWAYS:
                    self._recursive = await anyio.to_thread.run_sync(listing_units, source, path_filter)
                if self._recursive:
                    names = list(self._recursive)
                    self._listed = {name: anyio.Event() for name in names}
                    self._folders_known.set()
                    queue = iter(names)
                    for _ in range(min(LISTINGS_AT_ONCE, len(names))):
                        group.start_soon(self._list_folders, queue)
        finally:
            self._folders_known.set()
            self._all_listed.set()
            self._uploads_listed.set()

    async def listing_problem(self) -> str | None:
        """Once the listing is over: why it does not hold every key under the prefix (a folder's listing failed,
        the credentials may not list), or ``None`` when it does. ``--delete`` deletes nothing without all of it."""
        await self._all_listed.wait()
        if self._blind:
            return "the destination could not be listed (access denied)"
        if self._unlisted or not self._listed or self._complete != self._listed.keys():
            return "the listing of the destination failed"
        return None

    async def _list_folders(self, queue: Iterator[str]) -> None:
        for name in queue:  # shared by the listing tasks: each takes the next folder when it is free
            await self._list_folder(name)

    async def _retried(self, listing: Callable[[], Awaitable[None]]) -> None:
        """A listing, tried again from its start on a transient failure under the run's retry policy (backoff,
        the deadline, a throttled store lowering the concurrency), like any other request: one failed page of a
        large tree must not turn a re-run into a HEAD per file. Rows listed twice are stored once."""
        retry = self._limits.retry
        await retry.call(listing, deadline=retry.deadline(), on_retry=self._limits.note_retries(_note_listing_retry))

    async def _list_folder(self, name: str) -> None:
        prefix = f"{self._prefix}{name}/" if name and name != WHOLE else self._prefix
        if self._single_key is not None:
            prefix = self._single_key  # that key, and the few beside it that start with it

        async def listing() -> None:
            page: list[tuple[str, int, str, str]] = []
            async for info in self._store.list_objects(prefix, recursive=self._recursive[name]):
                page.append((info.key, info.size, info.etag, info.content_md5 or ""))
                if len(page) >= 1000:
                    self._state.add_listed(page)
                    page = []
            self._state.add_listed(page)

        try:
            await self._retried(listing)
            self._complete.add(name)
        except FileError as exc:
            if isinstance(exc, StoreError) and exc.denied:
                self._go_blind(exc)
            else:
                log.warning("could not list %s (%s): its files are checked one request each", prefix, exc)
            self._unlisted.add(name)
        except UnicodeEncodeError:
            self._unlisted.add(name)  # a folder name that is not UTF-8: its files fail as invalid keys anyway
        finally:
            self._listed[name].set()

    async def _list_uploads(self) -> None:
        async def listing() -> None:
            self._uploads.clear()
            prefix = self._prefix if self._single_key is None else self._single_key
            async for upload in self._store.incomplete_uploads(prefix):
                self._uploads.setdefault(upload.key, []).append(upload)

        try:
            await self._retried(listing)
        except FileError as exc:  # some stores cannot list uploads: then nothing is resumed
            log.info("could not list incomplete multipart uploads (%s): none will be resumed", exc)
        finally:
            self._uploads_listed.set()

    def _go_blind(self, exc: StoreError) -> None:
        """The credentials may not list or read the destination (a write-only role): every file is uploaded, said
        once; ``--overwrite never`` cannot keep its promise blind, so it ends the run instead."""
        if self._overwrite is Overwrite.NEVER:
            raise ReadDeniedError(f"--overwrite never needs to see what the destination holds: {exc}")
        if not self._blind:
            log.warning(
                "cannot list the destination (%s): every file is uploaded (--overwrite changed cannot skip)", exc
            )
        self._blind = True

    async def _folder_ready(self, rel: str) -> str:
        if not self._folders_known.is_set():
            await self._folders_known.wait()
        folder = _folder_of(rel, self._listed)
        event = self._listed.get(folder)
        if event is None:  # a folder that appeared after the listing started: its listing is the whole one
            event = self._all_listed
        if not event.is_set():  # once listed, no await at all: this runs for every file
            await event.wait()
        return folder

    def skips_known_now(self) -> bool:
        """Whether ``known_skips`` could pass over any file now: not while the listing has shown nothing (a first
        upload), so the walk need not even name its files' keys."""
        if self._overwrite is Overwrite.ALWAYS or self._blind or not self._folders_known.is_set():
            return False
        return self._state.listed_rows > 0

    def known_skips(self, entries: Sequence[tuple[FileEntry, str]]) -> list[str | None]:
        """Why each of a batch of the walk's files need not be uploaded, where that is known at once (its folder
        is listed and the listing and the state file settle it); ``None`` otherwise. Lets the walk pass over
        unchanged files without handing each to a worker: most of a no-op re-run's per-file cost."""
        reasons: list[str | None] = [None] * len(entries)
        if not self.skips_known_now():
            return reasons
        settled = [i for i, (entry, _) in enumerate(entries) if self._listed_now(entry.rel)]
        found = self._state.lookup_many([entries[i][1] for i in settled])
        for i in settled:
            entry, key = entries[i]
            listed, remembered = found.get(key, (None, None))
            verdict = compare_with_destination(
                entry.size, entry.mtime_ns, self._overwrite, listed, remembered, self._compare
            )
            if verdict is Verdict.SKIP:
                reasons[i] = self._skip_word()
            else:  # its worker needs what was just looked up: one query a batch, not one on the loop a file
                self._looked_up[key] = (listed, remembered)
        return reasons

    @property
    def hashes_in_walk(self) -> bool:
        """Whether the walk hashes its small files (``content_skips``): ``--compare checksum`` with a listing."""
        return self._content is not None and not self._blind

    async def content_skips(self, entries: Sequence[tuple[FileEntry, str]]) -> list[Decision | None]:
        """``--compare checksum``: for a batch of the walk's files that ``known_skips`` handed on, hash the small
        ones the listing can judge (``HASH_IN_WALK_BYTES`` or less) a batch at a time; the reason to skip each
        unchanged one, ``None`` otherwise. A changed file's worker then uploads it with no second hash."""
        reasons: list[Decision | None] = [None] * len(entries)
        if self._content is None or self._blind:
            return reasons
        todo: list[tuple[int, FileEntry, str, Listed, Remembered | None]] = []
        for i, (entry, key) in enumerate(entries):
            listed, remembered = self._looked_up.get(key, (None, None))
            if listed is None or entry.size > HASH_IN_WALK_BYTES:
                continue
            verdict = compare_with_destination(
                entry.size, entry.mtime_ns, self._overwrite, listed, remembered, self._compare
            )
            if verdict is Verdict.HASH:
                todo.append((i, entry, key, listed, remembered))
        if not todo:
            return reasons
        found = await self._content.compare_many(
            [(entry, listed, remembered) for _, entry, _, listed, remembered in todo]
        )
        for (i, entry, key, listed, _), content in zip(todo, found, strict=True):
            if content is None:
                continue  # a HEAD decides, or the file could not be read: its worker sees to it
            del self._looked_up[key]
            if content.same:
                self.remember(key, entry, listed.etag, content.checksum)
                reasons[i] = Decision(SKIP_UNCHANGED, content.compared)
            else:
                self._decided[key] = _decision(None, content.compared)
        return reasons

    def _listed_now(self, rel: str) -> bool:
        folder = _folder_of(rel, self._listed)
        event = self._listed.get(folder)
        return event is not None and event.is_set() and folder not in self._unlisted

    def _skip_word(self) -> str:
        return SKIP_UNCHANGED if self._overwrite is Overwrite.CHANGED else SKIP_EXISTS

    async def skip_reason(self, entry: FileEntry, key: str, *, on_retry: Callable[[FileError], None]) -> Decision:
        """Whether ``entry`` need not be uploaded (``Decision.skip``, the reason), and how that was decided."""
        if self._overwrite is Overwrite.ALWAYS or self._blind:
            return UPLOAD
        decided = self._decided.pop(key, None)
        if decided is not None:
            return decided
        folder = await self._folder_ready(entry.rel)
        if self._blind:
            return UPLOAD
        listed = remembered = None
        if folder in self._unlisted or folder not in self._listed:
            verdict = Verdict.HASH if self._content is not None else Verdict.ASK
        else:
            found = self._looked_up.pop(key, None)
            listed, remembered = found if found is not None else self._state.lookup(key)
            verdict = compare_with_destination(
                entry.size, entry.mtime_ns, self._overwrite, listed, remembered, self._compare
            )
        if verdict is Verdict.UPLOAD:
            if listed is None:
                return UPLOAD
            return _decision(None, "size" if listed.size != entry.size else "mtime")
        if verdict is Verdict.SKIP:
            return _decision(self._skip_word(), self.skip_compared)
        if verdict is Verdict.HASH:
            return await self._compare_content(entry, key, listed, remembered, on_retry)
        return await self._ask(entry, key, on_retry)

    async def _compare_content(
        self,
        entry: FileEntry,
        key: str,
        listed: Listed | None,
        remembered: Remembered | None,
        on_retry: Callable[[FileError], None],
    ) -> Decision:
        assert self._content is not None
        if listed is None:  # a folder the listing missed: its files' ETags come from a HEAD each
            try:
                info = await self._limits.request(
                    lambda: self._store.head_object(key, headers=self._head_headers),
                    deadline=self._limits.retry.deadline(),
                    on_retry=on_retry,
                )
            except StoreError as exc:
                if not exc.denied:
                    raise
                self._go_blind(exc)
                return UPLOAD
            if info is None:
                return UPLOAD
            if info.size != entry.size:
                return _decision(None, "size")
            listed = Listed(info.size, info.etag.strip('"'), info.content_md5 or "")
        try:
            found = await self._content.compare(entry, key, listed, remembered, on_retry=on_retry)
        except StoreError as exc:
            if not exc.denied:
                raise
            self._go_blind(exc)
            return UPLOAD
        if not found.same:
            return _decision(None, found.compared)
        self._guard(lambda: self._state.remember(key, entry.size, entry.mtime_ns, listed.etag, found.checksum))
        return Decision(SKIP_UNCHANGED, found.compared)

    async def _ask(self, entry: FileEntry, key: str, on_retry: Callable[[FileError], None]) -> Decision:
        """One HEAD: the object's size and the mtime in its metadata decide."""
        deadline = self._limits.retry.deadline()
        try:
            info = await self._limits.request(
                lambda: self._store.head_object(key, headers=self._head_headers), deadline=deadline, on_retry=on_retry
            )
        except StoreError as exc:
            if not exc.denied:
                raise
            self._go_blind(exc)
            return UPLOAD
        if info is None:
            return UPLOAD
        if self._overwrite is Overwrite.NEVER:
            return _decision(SKIP_EXISTS, None)
        compared: Compared = "size" if self._compare is Compare.SIZE or info.size != entry.size else "mtime"
        if unchanged_by_metadata(entry.size, entry.mtime_ns, info.size, info.metadata, self._compare):
            self.remember(key, entry, info.etag)
            return _decision(SKIP_UNCHANGED, compared)
        return _decision(None, compared)

    def note_seen(self, keys: Sequence[str]) -> None:
        """``--delete``: keys the walk mapped source paths to, which it keeps."""
        self._state.add_seen(keys)

    def remember(self, key: str, entry: FileEntry, etag: str, checksum: str = "") -> None:
        """Note what ``key`` now holds (``checksum``: the whole-object checksum the upload sent, ``crc32:BASE64``,
        or ``""``). The state file only saves requests: if it fails, say so once, go on."""
        self._guard(lambda: self._state.remember(key, entry.size, entry.mtime_ns, etag, checksum))

    async def open_uploads(self, key: str) -> list[tuple[IncompleteUpload, OpenUpload | None]]:
        """The uploads open for ``key``, each with what this machine remembers of it (``None``: not ours)."""
        await self._uploads_listed.wait()
        found = self._uploads.pop(key, [])
        return [(upload, self._state.open_upload(key, upload.upload_id)) for upload in found]

    def upload_opened(self, key: str, upload: OpenUpload) -> None:
        self._guard(lambda: self._state.remember_upload(key, upload))

    def upload_closed(self, key: str, upload_id: str) -> None:
        self._guard(lambda: self._state.forget_upload(key, upload_id))

    def _guard(self, write: Callable[[], None]) -> None:
        if self._state_broken:
            return
        try:
            write()
        except sqlite3.Error as exc:
            self._state_broken = True
            log.warning("cannot write the state file (%s): this run's uploads will not be remembered", exc)
