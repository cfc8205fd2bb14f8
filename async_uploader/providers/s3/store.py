"""The S3 store on the direct path: every request of an upload as one signed HTTP request (``BucketClient``).

Bodies, and the control plane too (the preflight, multipart create, complete and abort, listings, HEAD): importing
aiobotocore and building its clients costs ~0.4 s of CPU, before a large file's first part could leave or a
re-run could list anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from http import HTTPStatus
from io import BytesIO
from typing import NoReturn
from xml.etree import ElementTree

from ...errors import EndpointError
from ...source.checksum import Algorithm, Checksum
from .._errors import Redactor, request_failed
from ..base import (
    NO_HEADERS,
    DeleteFailure,
    IncompleteUpload,
    ObjectHeaders,
    ObjectInfo,
    StoredObject,
    StoredPart,
    UploadedPart,
    sweep_after_create,
)
from .answers import (
    bucket_refusal,
    checked_part,
    delete_failure,
    detail,
    full_object_refused,
    head_refused_but_listing_works,
    not_s3,
    object_error,
    wrong_region,
)
from .bucket import BucketClient
from .http import TransportError
from .wire import (
    CREATE_HEADERS,
    S3_HEADER_FIELDS,
    ErrorResponse,
    checksum_element,
    complete_body,
    create_params,
    metadata_headers,
    object_headers,
    request_headers,
    returned_checksum,
    stored_part,
)


class DirectStore:
    """``ObjectStore`` for one S3 bucket over signed requests: no botocore client is needed, or ever created."""

    def __init__(self, bucket_client: BucketClient, bucket: str, endpoint: str, redact: Redactor) -> None:
        self.bucket = bucket
        self.location = f"{endpoint.rstrip('/')}/{bucket}"
        self.full_object_checksums = True
        self.lists_incomplete_uploads = True
        self.header_fields = S3_HEADER_FIELDS
        self._bucket = bucket_client
        self._endpoint = endpoint
        self._redact = redact

    def guard_secrets(self, headers: ObjectHeaders) -> None:
        """Scrub the run's SSE-C key from every message of this store (``base.guard_secrets``)."""
        if headers.sse_c_key is not None:
            self._redact = self._redact.with_keys(headers.sse_c_key)

    def _object_error(self, operation: str, exc: Exception) -> NoReturn:
        """Turn a per-object failure into a one-line ``StoreError`` (or ``VerificationError`` for a bad digest)."""
        with self._redact.scrubbing():
            if isinstance(exc, ErrorResponse):
                raise object_error(operation, exc.status, exc.code, exc.message) from exc
            # No answer (a connection refused or reset, a timeout, a body cut short) is worth another try; an
            # answer that makes no sense is not.
            raise request_failed(operation, str(exc), retryable=isinstance(exc, TransportError)) from exc

    async def check_readable(self) -> None:
        with self._redact.scrubbing():
            try:
                await self._bucket.head_bucket()
            except ErrorResponse as exc:
                await self._explain_refusal(exc)
            except TransportError as exc:
                raise EndpointError(f"cannot reach {self._endpoint}: {exc}") from exc

    async def _explain_refusal(self, head_error: ErrorResponse) -> NoReturn:
        """A HEAD answer has no body, so no error code; a one-key listing says why (and whether this is S3)."""
        try:
            await self._bucket.list_page("", delimiter=False, token=None, max_keys=1)
        except ErrorResponse as exc:
            if region := exc.region or head_error.region:
                raise wrong_region(self.bucket, region, detail(exc.code, exc.message)) from exc
            raise bucket_refusal(self.bucket, self._endpoint, exc.code, exc.message) from exc
        except ElementTree.ParseError as exc:  # a 2xx answer that is not a listing
            raise not_s3(self._endpoint) from exc
        except TransportError as exc:
            raise EndpointError(f"cannot reach {self._endpoint}: {exc}") from exc
        raise head_refused_but_listing_works(self.bucket, head_error.code) from head_error

    async def check_writable(self, probe_key: str, *, headers: ObjectHeaders = NO_HEADERS) -> None:
        """No request: the run's first write (a PutObject or a CreateMultipartUpload) is the check, and the engine
        ends the run when it is refused. Any probe S3 offers would leave something behind for a role without
        s3:AbortMultipartUpload or s3:DeleteObject (a multipart upload, billed until aborted; an object)."""

    async def put_object(
        self,
        key: str,
        body: BytesIO,
        *,
        checksum: Checksum | None,
        metadata: Mapping[str, str],
        headers: ObjectHeaders = NO_HEADERS,
    ) -> StoredObject:
        try:
            return await self._bucket.put(
                key, body, checksum=checksum, metadata=metadata, extra=object_headers(headers)
            )
        except (ErrorResponse, TransportError) as exc:
            self._object_error("PutObject", exc)

    async def create_multipart(
        self,
        key: str,
        *,
        metadata: Mapping[str, str],
        checksum: Algorithm | None,
        full_object: bool,
        headers: ObjectHeaders = NO_HEADERS,
    ) -> str:
        sent = metadata_headers(metadata)
        sent.update(object_headers(headers))
        sent.update({CREATE_HEADERS[name]: value for name, value in create_params(checksum, full_object).items()})

        async def create() -> tuple[str, bool]:
            try:
                return await self._bucket.create_upload(key, sent)
            except ErrorResponse as exc:
                refused = full_object_refused(exc.code, exc.message) if full_object else None
                if refused is None:
                    self._object_error("CreateMultipartUpload", exc)
                self.full_object_checksums = False
                raise refused from exc
            except (TransportError, ElementTree.ParseError, ValueError) as exc:
                self._object_error("CreateMultipartUpload", exc)

        return await sweep_after_create(self, key, create)

    async def upload_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        body: BytesIO,
        *,
        checksum: Checksum | None,
        headers: ObjectHeaders = NO_HEADERS,
    ) -> UploadedPart:
        query = (("partNumber", str(number)), ("uploadId", upload_id))
        try:
            answer = await self._bucket.put(key, body, checksum=checksum, query=query, extra=request_headers(headers))
        except (ErrorResponse, TransportError) as exc:
            self._object_error(f"UploadPart {number}", exc)
        return checked_part(number, answer.etag, answer.checksum, checksum)

    async def complete_multipart(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[UploadedPart],
        *,
        full_checksum: Checksum | None,
        headers: ObjectHeaders = NO_HEADERS,
    ) -> StoredObject:
        algorithm = parts[0].checksum if parts and parts[0].checksum is not None else full_checksum
        rows = [(p.number, p.etag, *checksum_element(p.checksum)) for p in parts]
        sent = dict(request_headers(headers))
        if full_checksum is not None:
            sent[f"x-amz-checksum-{full_checksum.algorithm.value}"] = full_checksum.value
            sent["x-amz-checksum-type"] = "FULL_OBJECT"
        try:
            result = await self._bucket.complete_upload(key, upload_id, complete_body(rows), sent)
        except (ErrorResponse, TransportError, ElementTree.ParseError) as exc:
            self._object_error("CompleteMultipartUpload", exc)
        return StoredObject(etag=result.get("ETag", ""), checksum=returned_checksum(result, algorithm))

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            await self._bucket.abort_upload(key, upload_id)
        except ErrorResponse as exc:
            if exc.code == "NoSuchUpload" or exc.status == HTTPStatus.NOT_FOUND:
                return  # already gone: what we wanted
            self._object_error("AbortMultipartUpload", exc)
        except TransportError as exc:
            self._object_error("AbortMultipartUpload", exc)

    async def incomplete_uploads(self, prefix: str) -> AsyncIterator[IncompleteUpload]:
        markers: tuple[str, str] | None = ("", "")
        while markers is not None:
            try:
                rows, markers = await self._bucket.list_uploads_page(prefix, *markers)
            except (ErrorResponse, TransportError, ElementTree.ParseError, ValueError) as exc:
                self._object_error("ListMultipartUploads", exc)
            for key, upload_id, initiated in rows:
                yield IncompleteUpload(key, upload_id, initiated)

    async def list_parts(self, key: str, upload_id: str, *, headers: ObjectHeaders = NO_HEADERS) -> list[StoredPart]:
        found: list[StoredPart] = []
        marker: int | None = 0
        while marker is not None:
            try:
                page, marker = await self._bucket.list_parts_page(key, upload_id, marker, request_headers(headers))
            except (ErrorResponse, TransportError, ElementTree.ParseError) as exc:
                self._object_error("ListParts", exc)
            found.extend(stored_part(item) for item in page)
        return found

    async def head_object(self, key: str, *, headers: ObjectHeaders = NO_HEADERS) -> ObjectInfo | None:
        try:
            return await self._bucket.head(key, request_headers(headers))
        except (ErrorResponse, TransportError, ValueError) as exc:
            self._object_error("HeadObject", exc)

    async def head_object_checksum(self, key: str, *, headers: ObjectHeaders = NO_HEADERS) -> ObjectInfo | None:
        """``head_object`` in checksum mode (the ``head_object_checksum`` capability)."""
        try:
            return await self._bucket.head(key, request_headers(headers), checksums=True)
        except (ErrorResponse, TransportError, ValueError) as exc:
            self._object_error("HeadObject", exc)

    async def delete_objects(self, keys: Sequence[str]) -> list[DeleteFailure]:
        try:
            errors = await self._bucket.delete_keys(keys)
        except (ErrorResponse, TransportError, ElementTree.ParseError) as exc:
            self._object_error("DeleteObjects", exc)
        return [delete_failure(key, code, message) for key, code, message in errors]

    async def list_objects(self, prefix: str, *, recursive: bool = True) -> AsyncIterator[ObjectInfo]:
        token: str | None = None
        while True:
            try:
                rows, token = await self._bucket.list_page(prefix, delimiter=not recursive, token=token)
            except (ErrorResponse, TransportError, ElementTree.ParseError) as exc:
                self._object_error("ListObjectsV2", exc)
            for key, size, etag in rows:
                yield ObjectInfo(key=key, size=size, etag=etag, metadata={})
            if token is None:
                return
