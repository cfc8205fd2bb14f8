"""``--compare checksum``: whether a file's content is what its object holds, with no request where the listing can
tell.

The routes, cheapest first (``plan.compare_with_destination`` has already skipped, without reading the file, a file
whose size and mtime are what the state file remembers for the listed ETag):

- ``md5``: a single put's ETag is the MD5 of its bytes (on S3 and its compatibles, without SSE-KMS or SSE-C);
- ``multipart-md5``: a multipart upload's ETag is the MD5 of its parts' MD5s, ``-N``; the part sizes that give N
  parts for this size (ours first, then other tools' defaults) are all hashed in the same read;
- ``state-checksum``: where the ETag cannot be an MD5, the whole-object checksum this machine's upload sent, which
  the state file remembers with the ETag it got;
- ``stored-checksum``: otherwise one HEAD in checksum mode: the CRC the upload sent, which the store keeps.

A multipart ETag that matches none of the part sizes giving its N is taken as a change, with no request: an object
written in parts of another size that happens to give the same N is uploaded once more, in our layout.

The file is read once, in one block of at most ``HASH_BLOCK_BYTES`` drawn from the run's byte budget, in a worker
thread: never on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import anyio
import anyio.to_thread

from ..config import UploadConfig
from ..errors import FileError
from ..events import Compared
from ..header_options import run_headers
from ..providers.base import ObjectHeaders, ObjectInfo, ObjectStore, head_object_checksum
from ..source.checksum import Algorithm, Checksum
from ..source.content_hash import HASH_BLOCK_BYTES, ContentHashes, hash_file
from ..source.scan import FileEntry
from .limits import Limits
from .plan import Listed, Remembered, etag_part_sizes, is_md5_etag, multipart_etag_parts


def remembered_checksum(text: str) -> Checksum | None:
    """A state file's ``crc32:BASE64`` as a ``Checksum``; ``None`` for ``""`` or what this version cannot compute."""
    name, _, value = text.partition(":")
    try:
        return Checksum(Algorithm(name), value) if value else None
    except ValueError:
        return None


def checksum_text(checksum: Checksum | None) -> str:
    """How the state file keeps a whole-object checksum (``""``: none, or only a composite one)."""
    if checksum is None or "-" in checksum.value:
        return ""
    return f"{checksum.algorithm.value}:{checksum.value}"


@dataclass(frozen=True, slots=True)
class ContentVerdict:
    """What the content comparison found: the same content or not, which route said so, and the whole-object
    checksum to remember for the key if it is the same (``""``: none known)."""

    same: bool
    compared: Compared
    checksum: str = ""


HASHING_THREADS: Final = 4
"""Threads a batch of small files is hashed in: hashlib releases the GIL, so two keep two cores busy."""


@dataclass(frozen=True, slots=True)
class _Route:
    """How one file's content is compared with no request: the ETag (or listed MD5) and what to hash."""

    etag: str
    md5_form: bool
    part_sizes: list[int]
    ours: Checksum | None

    @property
    def algorithm(self) -> Algorithm | None:
        return self.ours.algorithm if self.ours is not None else None


class ContentComparer:
    """Decides ``--compare checksum`` for one file at a time (any number at once: it holds no per-file state)."""

    def __init__(self, store: ObjectStore, config: UploadConfig, limits: Limits, head_headers: ObjectHeaders) -> None:
        self._store = store
        self._limits = limits
        self._head_headers = head_headers
        self._etags_are_md5 = run_headers(config).etags_are_md5
        self._part_size = config.part_size
        self._threshold = config.multipart_threshold

    def _route(self, entry: FileEntry, listed: Listed, remembered: Remembered | None) -> _Route | None:
        """What the listing and the state file let a hash decide, with no request; ``None``: only a HEAD can."""
        etag = listed.etag.lower()
        md5_form = self._etags_are_md5 and is_md5_etag(etag)
        if listed.md5:  # the listing has the content's MD5 apart from the ETag (Azure): it answers alone
            etag, md5_form = listed.md5.lower(), True
        part_sizes: list[int] = []
        if self._etags_are_md5 and not md5_form and (parts := multipart_etag_parts(etag)) is not None:
            part_sizes = etag_part_sizes(
                entry.size, parts, part_size=self._part_size, multipart_threshold=self._threshold
            )
        ours = None
        if remembered is not None and remembered.etag == listed.etag and remembered.size == entry.size:
            ours = remembered_checksum(remembered.checksum)
        if md5_form or part_sizes or ours is not None:
            return _Route(etag, md5_form, part_sizes, ours)
        return None

    async def compare(
        self,
        entry: FileEntry,
        key: str,
        listed: Listed,
        remembered: Remembered | None,
        *,
        on_retry: Callable[[FileError], None],
    ) -> ContentVerdict:
        """Whether ``entry`` holds what ``key`` holds (as listed, same size). May raise the HEAD's ``StoreError``."""
        route = self._route(entry, listed, remembered)
        if route is not None:
            hashes = await self._hash(entry, route.part_sizes, route.algorithm, md5=route.md5_form)
            return _verdict(hashes, route)
        info = await self._head(key, on_retry)
        if info is None or info.size != entry.size:
            return ContentVerdict(False, "size")
        stored = info.checksum
        if stored is None and info.content_md5:
            hashes = await self._hash(entry, [], None)
            return ContentVerdict(hashes.md5 == info.content_md5.lower(), "md5")
        if stored is None:
            return ContentVerdict(False, "no-checksum")
        hashes = await self._hash(entry, [], stored.algorithm, md5=False)
        return ContentVerdict(hashes.checksum == stored, "stored-checksum", checksum_text(stored))

    async def compare_many(
        self, files: Sequence[tuple[FileEntry, Listed, Remembered | None]]
    ) -> list[ContentVerdict | None]:
        """``compare`` for a batch of the walk's small files, where no request is needed, in ``HASHING_THREADS``
        thread calls for the whole batch rather than one a file: handing each small file to a thread costs more
        than hashing it (docs/benchmarks.md). ``None`` for a file a HEAD must decide, or that could not be read
        as the walk saw it (its worker then tries, and reports what goes wrong)."""
        verdicts: list[ContentVerdict | None] = [None] * len(files)
        todo = [(i, entry, route) for i, (entry, listed, remembered) in enumerate(files)
                if (route := self._route(entry, listed, remembered)) is not None]  # fmt: skip
        if not todo:
            return verdicts
        block_bytes = min(HASH_BLOCK_BYTES, max(entry.size for _, entry, _ in todo) or 1)

        async def hash_share(share: list[tuple[int, FileEntry, _Route]]) -> None:
            taken = await self._limits.budget.acquire(block_bytes)
            try:
                block = bytearray(taken)
                for i, verdict in await anyio.to_thread.run_sync(_hash_all, share, block):
                    verdicts[i] = verdict
            finally:
                self._limits.budget.release(taken)

        async with anyio.create_task_group() as group:
            for n in range(HASHING_THREADS):
                if share := todo[n::HASHING_THREADS]:
                    group.start_soon(hash_share, share)
        return verdicts

    async def _head(self, key: str, on_retry: Callable[[FileError], None]) -> ObjectInfo | None:
        return await self._limits.request(
            lambda: head_object_checksum(self._store, key, headers=self._head_headers),
            deadline=self._limits.retry.deadline(),
            on_retry=on_retry,
        )

    async def _hash(
        self, entry: FileEntry, part_sizes: list[int], algorithm: Algorithm | None, *, md5: bool = True
    ) -> ContentHashes:
        budget = self._limits.budget
        taken = await budget.acquire(min(HASH_BLOCK_BYTES, max(entry.size, 1)))
        try:
            block = bytearray(taken)
            return await anyio.to_thread.run_sync(
                lambda: hash_file(
                    entry.path,
                    size=entry.size,
                    mtime_ns=entry.mtime_ns,
                    part_sizes=part_sizes,
                    algorithm=algorithm,
                    block=block,
                    md5=md5,
                )
            )
        finally:
            budget.release(taken)


def _verdict(hashes: ContentHashes, route: _Route) -> ContentVerdict:
    etag, md5_form, ours = route.etag, route.md5_form, route.ours
    remember = checksum_text(ours)
    if md5_form and hashes.md5 == etag:
        return ContentVerdict(True, "md5", remember)
    if etag in hashes.multipart_etags.values():
        return ContentVerdict(True, "multipart-md5", remember)
    if ours is not None and hashes.checksum == ours:
        # Also where the ETag looked like an MD5 and was not one (a bucket's default SSE-KMS): ours decides.
        return ContentVerdict(True, "state-checksum", remember)
    if md5_form:
        return ContentVerdict(False, "md5")
    return ContentVerdict(False, "multipart-md5" if hashes.multipart_etags else "state-checksum")


def _hash_all(share: list[tuple[int, FileEntry, _Route]], block: bytearray) -> list[tuple[int, ContentVerdict]]:
    """Hash a share of a batch in this thread, through one block; a file that fails to read is left out."""
    verdicts: list[tuple[int, ContentVerdict]] = []
    for i, entry, route in share:
        try:
            hashes = hash_file(
                entry.path,
                size=entry.size,
                mtime_ns=entry.mtime_ns,
                part_sizes=route.part_sizes,
                algorithm=route.algorithm,
                block=block,
                md5=route.md5_form,
            )
        except (OSError, FileError):
            continue
        verdicts.append((i, _verdict(hashes, route)))
    return verdicts
