"""An in-memory ``ObjectStore`` for engine tests: real bytes, injectable failures, and gauges of what was in
flight, so tests can assert what a user cares about (objects, leftovers, bounds) without a server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from hashlib import md5
from io import BytesIO

import anyio
import anyio.lowlevel

from async_uploader.errors import BucketError, StoreError, VerificationError
from async_uploader.providers.base import (
    NO_HEADERS,
    DeleteFailure,
    IncompleteUpload,
    ObjectHeaders,
    ObjectInfo,
    StoredObject,
    StoredPart,
    UploadedPart,
)
from async_uploader.source.checksum import Algorithm, Checksum, checksum_of, composite


@dataclass
class StoredBlob:
    data: bytes
    metadata: dict[str, str]
    parts: int
    headers: ObjectHeaders = NO_HEADERS


@dataclass
class MemoryStore:
    objects: dict[str, StoredBlob] = field(default_factory=dict)
    uploads: dict[str, tuple[str, dict[str, str], dict[int, bytes]]] = field(default_factory=dict)
    upload_headers: dict[str, ObjectHeaders] = field(default_factory=dict)
    part_headers: list[ObjectHeaders] = field(default_factory=list)
    probe_headers: list[ObjectHeaders] = field(default_factory=list)
    header_fields: frozenset[str] = frozenset(ObjectHeaders.__slots__)
    fail_keys: set[str] = field(default_factory=set)
    fail_parts: set[tuple[str, int]] = field(default_factory=set)
    before_request: Callable[[str], None] | None = None
    aborted: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    bytes_in_flight: int = 0
    max_bytes_in_flight: int = 0
    requests: int = 0
    heads: int = 0
    probes: int = 0
    read_only: bool = False
    deny_reads: bool = False
    listings: int = 0
    location: str = "memory://bucket"
    full_object_checksums: bool = True
    lists_incomplete_uploads: bool = True
    completed_checksums: list[Checksum | None] = field(default_factory=list)
    delete_batches: list[int] = field(default_factory=list)
    """The number of keys of each ``delete_objects`` call."""
    undeletable: dict[str, DeleteFailure] = field(default_factory=dict)
    """Keys ``delete_objects`` answers as not deleted (a retryable failure is answered once, then deleted)."""
    _next_id: int = 0

    async def _request(self, key: str, body: bytes = b"") -> None:  # the body's bytes, to gauge memory
        """Count a request as in flight across a few scheduling points, as a network call would be."""
        self.requests += 1
        if self.before_request is not None:
            self.before_request(key)
        self.in_flight += 1
        self.bytes_in_flight += len(body)
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.max_bytes_in_flight = max(self.max_bytes_in_flight, self.bytes_in_flight)
        try:
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
        finally:
            self.in_flight -= 1
            self.bytes_in_flight -= len(body)

    async def check_readable(self) -> None:
        await self._request("")

    async def check_writable(self, probe_key: str, *, headers: ObjectHeaders = NO_HEADERS) -> None:
        await self._request(probe_key)
        self.probe_headers.append(headers)
        self.probes += 1
        if self.read_only:
            raise BucketError("these credentials cannot write to bucket 'memory'")

    @staticmethod
    def _verify(body: bytes, checksum: Checksum | None) -> None:
        if checksum is not None and checksum_of(checksum.algorithm, body) != checksum:
            raise VerificationError("BadDigest")

    async def put_object(
        self,
        key: str,
        stream: BytesIO,
        *,
        checksum: Checksum | None,
        metadata: Mapping[str, str],
        headers: ObjectHeaders = NO_HEADERS,
    ) -> StoredObject:
        body = stream.getvalue()
        await self._request(key, body)
        if key in self.fail_keys:
            raise StoreError(f"PutObject failed: injected failure for {key}")
        self._verify(body, checksum)
        self.objects[key] = StoredBlob(bytes(body), dict(metadata), 1, headers)
        return StoredObject(etag=self._etag(key), checksum=checksum.value if checksum else None)

    async def create_multipart(
        self,
        key: str,
        *,
        metadata: Mapping[str, str],
        checksum: Algorithm | None,
        full_object: bool,
        headers: ObjectHeaders = NO_HEADERS,
    ) -> str:
        await self._request(key)
        if full_object and not self.full_object_checksums:
            raise AssertionError("asked for a full-object checksum the store said it lacks")
        self._next_id += 1
        upload_id = f"upload-{self._next_id}"
        self.uploads[upload_id] = (key, dict(metadata), {})
        self.upload_headers[upload_id] = headers
        return upload_id

    async def upload_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        stream: BytesIO,
        *,
        checksum: Checksum | None,
        headers: ObjectHeaders = NO_HEADERS,
    ) -> UploadedPart:
        self.part_headers.append(headers)
        body = stream.getvalue()
        await self._request(key, body)
        if (key, number) in self.fail_parts:
            raise StoreError(f"UploadPart {number} failed: injected failure")
        self._verify(body, checksum)
        self.uploads[upload_id][2][number] = bytes(body)
        return UploadedPart(number, f'"{md5(body).hexdigest()}"', checksum)

    async def complete_multipart(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[UploadedPart],
        *,
        full_checksum: Checksum | None,
        headers: ObjectHeaders = NO_HEADERS,
    ) -> StoredObject:
        await self._request(key)
        _, metadata, received = self.uploads[upload_id]
        data = b"".join(received[p.number] for p in parts)
        self._verify(data, full_checksum)  # the server checks the whole object's CRC, as S3 does
        del self.uploads[upload_id]
        self.objects[key] = StoredBlob(data, metadata, len(parts), self.upload_headers.get(upload_id, NO_HEADERS))
        self.completed_checksums.append(full_checksum)
        if full_checksum is not None:
            return StoredObject(etag=self._etag(key), checksum=full_checksum.value)
        checksums = [p.checksum for p in parts if p.checksum is not None]
        return StoredObject(etag=self._etag(key), checksum=composite(checksums).value if checksums else None)

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        await self._request(key)
        self.uploads.pop(upload_id, None)
        self.aborted.append(key)

    async def incomplete_uploads(self, prefix: str) -> AsyncIterator[IncompleteUpload]:
        await self._request(prefix)
        for uid, (k, _, _) in list(self.uploads.items()):
            if k.startswith(prefix):
                yield IncompleteUpload(k, uid, float(uid.rpartition("-")[2]))

    async def list_parts(self, key: str, upload_id: str, *, headers: ObjectHeaders = NO_HEADERS) -> list[StoredPart]:
        await self._request(key)
        received = self.uploads[upload_id][2]
        return [StoredPart(n, len(data), f'"{md5(data).hexdigest()}"', None) for n, data in sorted(received.items())]

    def _etag(self, key: str) -> str:
        blob = self.objects[key]
        return f'"{md5(blob.data).hexdigest()}-{blob.parts}"'

    async def head_object(self, key: str, *, headers: ObjectHeaders = NO_HEADERS) -> ObjectInfo | None:
        await self._request(key)
        if self.deny_reads:
            raise StoreError("HeadObject failed: 403", denied=True)
        self.heads += 1
        blob = self.objects.get(key)
        return None if blob is None else ObjectInfo(key, len(blob.data), self._etag(key), blob.metadata)

    async def delete_objects(self, keys: Sequence[str]) -> list[DeleteFailure]:
        await self._request("")
        self.delete_batches.append(len(keys))
        failures = []
        for key in keys:
            failure = self.undeletable.get(key)
            if failure is not None:
                failures.append(failure)
                if failure.retryable:
                    del self.undeletable[key]
            else:
                self.objects.pop(key, None)
        return failures

    async def list_objects(self, prefix: str, *, recursive: bool = True) -> AsyncIterator[ObjectInfo]:
        await self._request(prefix)
        if self.deny_reads:
            raise StoreError("ListObjectsV2 failed: AccessDenied", denied=True)
        self.listings += 1
        for key in sorted(self.objects):
            if key.startswith(prefix) and (recursive or "/" not in key[len(prefix) :]):
                yield ObjectInfo(key, len(self.objects[key].data), self._etag(key), {})
