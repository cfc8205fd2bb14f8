"""The provider seam: the handful of async calls the engine makes on an object store.

The engine, the planner and the display know nothing of S3; a new cloud is a new module implementing
``ObjectStore``, not an edit of the pipeline. Providers raise the errors of ``async_uploader.errors``:
``CredentialsError``, ``EndpointError`` and ``BucketError`` for the run, ``StoreError`` and
``VerificationError`` for one object.

Costs worth knowing: every multipart upload that is created and neither completed nor aborted keeps its parts
stored, and billed, until it is aborted or a lifecycle rule removes it; the engine aborts on every failure path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from typing import Final, Protocol, runtime_checkable

from ..errors import FileError
from ..source.checksum import Algorithm, Checksum

log = logging.getLogger(__name__)


class Body(BytesIO):
    """A file's or a part's bytes, read within the memory budget into a buffer this ``BytesIO`` owns.

    A type of its own so that a provider can recognise it and send it straight from that buffer, in slices,
    instead of copying it chunk by chunk as it would any stream; any other ``BytesIO`` is still accepted.
    """


@dataclass(frozen=True, slots=True)
class ObjectHeaders:
    """How an object is stored beyond its bytes and user metadata: its content headers, encryption, storage class,
    tags, ACL (S3) or tier and encryption scope (Azure). ``None`` everywhere: the store's defaults.

    One value per file (its Content-Type and the header rules that match it), the same instance for files that
    share them, so a store can cache what it makes of one. A store honours the fields its ``header_fields`` names;
    the run refuses any other before the first upload. Requests other than the object's creation (a part, the
    completion, a HEAD, a part listing) carry only what S3 requires of them: the SSE-C key.
    """

    content_type: str | None = None
    cache_control: str | None = None
    content_encoding: str | None = None
    content_disposition: str | None = None
    content_language: str | None = None
    expires: str | None = None
    """An HTTP date (``Wed, 21 Oct 2015 07:28:00 GMT``), as botocore writes its ``Expires`` parameter."""
    sse: str | None = None
    """``AES256``, ``aws:kms`` or ``aws:kms:dsse``."""
    sse_kms_key_id: str | None = None
    sse_kms_context: str | None = None
    """The KMS encryption context: base64 of its JSON, as S3 takes it."""
    sse_c_key: bytes | None = field(default=None, repr=False)
    """The raw 256-bit SSE-C key: sent on every request of the object, never shown."""
    storage_class: str | None = None
    tagging: str | None = None
    """Tags as a URL query (``k=v&k2=v2``), as S3's ``x-amz-tagging`` takes them."""
    acl: str | None = None
    access_tier: str | None = None
    encryption_scope: str | None = None

    @property
    def etags_are_md5(self) -> bool:
        """Whether the store's ETag of a part is its MD5: not under SSE-KMS or SSE-C."""
        return self.sse_c_key is None and self.sse not in ("aws:kms", "aws:kms:dsse")

    def fields_set(self) -> list[str]:
        """The names of the fields that are not ``None``."""
        return [name for name in self.__slots__ if getattr(self, name) is not None]


NO_HEADERS: Final = ObjectHeaders()
"""The store's defaults for everything: what a caller that asks for nothing passes."""

CONTENT_HEADER_FIELDS: Final = frozenset(
    {"content_type", "cache_control", "content_encoding", "content_disposition", "content_language"}
)
"""The content settings both S3 and Azure Blob honour: what a store that does not say (``header_fields``) is taken to
honour."""


def header_fields(store: object) -> frozenset[str]:
    """Capability (an optional attribute, so that stores written before it still pass for an ``ObjectStore``): the
    ``ObjectHeaders`` fields ``store`` honours. A run that asks for another is refused before it uploads anything,
    never stored without it."""
    fields = getattr(store, "header_fields", None)
    return fields if isinstance(fields, frozenset) else CONTENT_HEADER_FIELDS


def guard_secrets(store: object, headers: ObjectHeaders) -> None:
    """Capability (optional, like ``header_fields``): hand ``store`` a run's headers before its first request, so
    that no message it makes carries their secrets (the SSE-C key), even one a server echoes back. A store whose
    headers hold no secret has nothing to do."""
    guard = getattr(store, "guard_secrets", None)
    if guard is not None:
        guard(headers)


@dataclass(frozen=True, slots=True)
class StoredObject:
    """The store's answer to a put or a completed multipart upload."""

    etag: str
    checksum: str | None
    """The store's checksum of what it received, in the algorithm the request named (base64, ``-N`` suffixed
    when composite), if it says."""
    body_verified: bool = False
    """The store checked the whole body against a checksum sent with it, though it answers none in the engine's
    algorithm (Azure's ``Content-MD5`` on a single put): as good as a ``checksum`` that matches."""


@dataclass(frozen=True, slots=True)
class UploadedPart:
    number: int
    etag: str
    checksum: Checksum | None


@dataclass(frozen=True, slots=True)
class StoredPart:
    """A part already uploaded to an open multipart upload, as the store lists it."""

    number: int
    size: int
    etag: str
    checksum: Checksum | None
    """Its checksum, where the store lists one (S3 does for uploads created with an algorithm)."""


@dataclass(frozen=True, slots=True)
class IncompleteUpload:
    """A multipart upload that was created and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: float
    """Seconds since the epoch, by the store's clock."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    metadata: Mapping[str, str]
    checksum: Checksum | None = None
    """The whole object's checksum the store keeps (a single put's, or a multipart upload's FULL_OBJECT CRC), where
    it was asked for (``head_object_checksum``) and the store has one; never a composite (``-N``) one."""
    content_md5: str | None = None
    """The MD5 of the whole content (hex) where the store lists it apart from the ETag (Azure's ``Content-MD5``)."""


@runtime_checkable
class ObjectStore(Protocol):
    """An async object store that holds objects of one destination bucket.

    Bodies are in-memory ``BytesIO`` of bounded size (the engine reads them within its memory budget), positioned
    at 0 and owning their buffer so they can be sent without a copy; the store must not keep them after the
    call. Each comes with its checksum (unless the user chose none), which the store must make the server
    check: a body damaged in transit is refused.
    """

    location: str
    """Names the destination bucket across runs and machines (endpoint and bucket): keys the state file."""
    full_object_checksums: bool
    """Capability: multipart uploads can carry a CRC of the whole object (FULL_OBJECT), which the server checks
    on completion, rather than only a checksum of the parts' checksums."""
    lists_incomplete_uploads: bool
    """Capability: ``incomplete_uploads`` finds the multipart uploads left open, so a killed run's large files
    are resumed and ``cleanup`` can abort them. A store without it yields none (nothing is resumed), and must not
    bill for what it cannot list (Azure drops uncommitted blocks by itself after seven days)."""

    async def check_readable(self) -> None:
        """Fail fast, before any walk: the bucket exists and these credentials may use it."""

    async def check_writable(self, probe_key: str, *, headers: ObjectHeaders = NO_HEADERS) -> None:
        """These credentials may write to the bucket (asked before the first upload, and only if there is one:
        a re-run with nothing to upload needs no write access), with ``headers``: a bucket policy may deny a
        write without encryption."""

    async def put_object(
        self,
        key: str,
        body: BytesIO,
        *,
        checksum: Checksum | None,
        metadata: Mapping[str, str],
        headers: ObjectHeaders = NO_HEADERS,
    ) -> StoredObject: ...

    async def create_multipart(
        self,
        key: str,
        *,
        metadata: Mapping[str, str],
        checksum: Algorithm | None,
        full_object: bool,
        headers: ObjectHeaders = NO_HEADERS,
    ) -> str:
        """Start a multipart upload whose parts carry ``checksum`` checksums (and, with ``full_object``, whose
        completion carries the whole object's CRC) and return its id; the caller must complete or abort it."""

    async def upload_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        body: BytesIO,
        *,
        checksum: Checksum | None,
        headers: ObjectHeaders = NO_HEADERS,
    ) -> UploadedPart: ...

    async def complete_multipart(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[UploadedPart],
        *,
        full_checksum: Checksum | None,
        headers: ObjectHeaders = NO_HEADERS,
    ) -> StoredObject:
        """Complete the upload; ``full_checksum`` (for a FULL_OBJECT upload) is checked by the server."""

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        """Stop the upload from costing anything: its parts are deleted, or left to expire where the store
        cannot delete them alone (Azure); never the object already at ``key``."""

    def incomplete_uploads(self, prefix: str) -> AsyncIterator[IncompleteUpload]:
        """The multipart uploads still open for keys under ``prefix`` (to resume, to sweep up after a create
        whose answer was lost, or to clean up)."""
        ...

    async def list_parts(self, key: str, upload_id: str, *, headers: ObjectHeaders = NO_HEADERS) -> list[StoredPart]:
        """The parts an open upload holds (at most 10,000), to resume it."""

    async def head_object(self, key: str, *, headers: ObjectHeaders = NO_HEADERS) -> ObjectInfo | None:
        """The object's size, ETag and user metadata, or ``None`` if there is none."""

    def list_objects(self, prefix: str, *, recursive: bool = True) -> AsyncIterator[ObjectInfo]:
        """Every object under ``prefix`` (only those directly under it, up to the next ``/``, when not
        ``recursive``), streamed page by page. Listings carry no user metadata, and come in no reliable order:
        S3 sorts by UTF-8 bytes, SeaweedFS directory by directory."""
        ...


async def head_object_checksum(
    store: ObjectStore, key: str, *, headers: ObjectHeaders = NO_HEADERS
) -> ObjectInfo | None:
    """Capability (an optional ``head_object_checksum`` method, like ``header_fields``): ``head_object``, asking the
    store for the whole-object checksum it keeps (S3's checksum mode), in ``ObjectInfo.checksum``. A store without
    it answers a plain HEAD: no checksum, so nothing to compare."""
    head = getattr(store, "head_object_checksum", None)
    if head is None:
        return await store.head_object(key, headers=headers)
    info: ObjectInfo | None = await head(key, headers=headers)
    return info


@dataclass(frozen=True, slots=True)
class DeleteFailure:
    """A key a batch delete did not delete, and why (the store's code and message)."""

    key: str
    reason: str
    retryable: bool = False
    """Trying again may succeed (the store's ``InternalError``, ``SlowDown``...)."""


@runtime_checkable
class DeletesObjects(Protocol):
    """Capability (a protocol of its own, so that stores written before it still pass for an ``ObjectStore``):
    delete keys in batches, as ``--delete`` does. A store without it refuses ``--delete`` before the run."""

    async def delete_objects(self, keys: Sequence[str]) -> list[DeleteFailure]:
        """Delete ``keys`` (at most ``MAX_DELETE_BATCH_KEYS``), in as few requests as the store allows: the keys
        it could not delete, each with its reason. A key that is already gone counts as deleted. Raises
        ``StoreError`` when the request itself failed (then nothing or only some keys may be gone: a retry is
        safe, deleting is idempotent). Only objects are deleted: multipart uploads in progress are not keys."""
        ...


MAX_DELETE_BATCH_KEYS: Final = 1000
"""S3's limit of keys per DeleteObjects request; the engine never hands a store more at once."""


CLOCK_SKEW_S: Final = 300.0


async def sweep_stale_uploads(store: ObjectStore, key: str, *, keep: str, since: float) -> None:
    """Abort the uploads of ``key`` created since ``since`` (give or take clock skew) other than ``keep``:
    those a retried create left behind. Best effort: a failure here leaves what a lifecycle rule would clean."""
    try:
        stale = [
            upload
            async for upload in store.incomplete_uploads(key)
            if upload.key == key and upload.upload_id != keep and upload.initiated >= since - CLOCK_SKEW_S
        ]
        for upload in stale:
            await store.abort_multipart(key, upload.upload_id)
    except FileError as exc:
        log.warning("could not sweep the uploads a retried create left for %s: %s", key, exc)


async def sweep_after_create(store: ObjectStore, key: str, create: Callable[[], Awaitable[tuple[str, bool]]]) -> str:
    """The upload id ``create`` answers, after sweeping up (``sweep_stale_uploads``) what its earlier attempts may
    have left when it says it took more than one: a create whose answer was lost may still have created an upload,
    billed until aborted, whose id nobody heard of. ``create`` answers the id and whether it was retried."""
    started = time.time()
    upload_id, retried = await create()
    if retried:
        await sweep_stale_uploads(store, key, keep=upload_id, since=started)
    return upload_id
