"""The S3 store on aiobotocore's clients: every request through botocore (``--lean off``), and the fallback where
the direct path cannot be set up.

This module imports botocore's exceptions only; aiobotocore itself (``clients``) is imported when the first request
needs a client, by the factory the connection hands ``BotoClients``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from io import BytesIO
from typing import Any, NoReturn

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from ...errors import CredentialsError, EndpointError, StoreError
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
    NO_CREDENTIALS_HINT,
    bucket_refusal,
    checked_part,
    delete_failure,
    detail,
    full_object_refused,
    head_refused_but_listing_works,
    object_error,
    wrong_region,
)
from .wire import (
    CHECKSUM_FIELDS,
    S3_HEADER_FIELDS,
    checksum_param,
    create_params,
    object_params,
    request_params,
    returned_checksum,
    stored_part,
    whole_checksum,
)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _message(exc: ClientError) -> str | None:
    message = exc.response.get("Error", {}).get("Message")
    return str(message) if message else None


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _bucket_region(exc: ClientError) -> str | None:
    """Where an answer says the bucket is, when botocore could not follow it there."""
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    region = headers.get("x-amz-bucket-region") or exc.response.get("Error", {}).get("Region")
    return str(region) if region else None


def _retried(response: Mapping[str, Any]) -> bool:
    """Whether botocore tried the request again: its first attempt's answer was lost, not necessarily its effect."""
    return bool(response.get("ResponseMetadata", {}).get("RetryAttempts", 0))


class BotoClients:
    """aiobotocore's two clients, created when first asked for, or handed over ready-made (the application's).

    The run's client carries the requests; the preflight's makes two attempts at most, so that a wrong endpoint
    fails in seconds, not after the retry schedule an upload deserves.
    """

    def __init__(
        self, make: Callable[[], Awaitable[tuple[Any, Any]]] | None, ready: tuple[Any, Any] | None = None
    ) -> None:
        self._make = make
        self.ready = ready
        self._lock = asyncio.Lock()

    async def get(self) -> tuple[Any, Any]:
        """``(client, preflight_client)``."""
        if self.ready is None:
            async with self._lock:
                if self.ready is None:
                    assert self._make is not None
                    self.ready = await self._make()
        return self.ready

    async def client(self) -> Any:
        ready = self.ready
        return (ready if ready is not None else await self.get())[0]

    async def preflight(self) -> Any:
        ready = self.ready
        return (ready if ready is not None else await self.get())[1]


class BotoStore:
    """``ObjectStore`` for one S3 bucket over aiobotocore's clients."""

    def __init__(self, clients: BotoClients, bucket: str, endpoint: str, redact: Redactor) -> None:
        self.clients = clients
        self.bucket = bucket
        self.endpoint = endpoint
        self.redact = redact
        self.location = f"{endpoint.rstrip('/')}/{bucket}"
        self.full_object_checksums = True
        self.lists_incomplete_uploads = True
        self.header_fields = S3_HEADER_FIELDS

    def guard_secrets(self, headers: ObjectHeaders) -> None:
        """Scrub the run's SSE-C key from every message of this store (``base.guard_secrets``)."""
        if headers.sse_c_key is not None:
            self.redact = self.redact.with_keys(headers.sse_c_key)

    def _object_error(self, operation: str, exc: Exception) -> NoReturn:
        """Turn a per-object failure into a one-line ``StoreError`` (or ``VerificationError`` for a bad digest)."""
        with self.redact.scrubbing():
            if isinstance(exc, ClientError):
                raise object_error(operation, _status(exc), _code(exc), _message(exc)) from exc
            if isinstance(exc, NoCredentialsError | PartialCredentialsError):
                raise StoreError(f"{operation}: {NO_CREDENTIALS_HINT}") from exc
            # Connection refused or reset, timeouts, a body cut short: botocore's own errors, worth another try.
            raise request_failed(operation, str(exc), retryable=isinstance(exc, BotoCoreError)) from exc

    async def check_readable(self) -> None:
        with self.redact.scrubbing():
            try:
                preflight = await self.clients.preflight()
                await preflight.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                await self._explain_refusal(exc)
            except (NoCredentialsError, PartialCredentialsError) as exc:
                raise CredentialsError(NO_CREDENTIALS_HINT) from exc
            except (EndpointConnectionError, ConnectTimeoutError) as exc:
                raise EndpointError(f"cannot reach {self.endpoint}: {exc}") from exc
            except BotoCoreError as exc:
                raise EndpointError(f"cannot talk to {self.endpoint}: {exc}") from exc

    async def _explain_refusal(self, head_error: ClientError) -> NoReturn:
        """A HEAD answer has no body, so no error code; a one-key listing says why (and whether this is S3)."""
        try:
            preflight = await self.clients.preflight()
            await preflight.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
        except ClientError as exc:
            if region := _bucket_region(exc) or _bucket_region(head_error):
                raise wrong_region(self.bucket, region, detail(_code(exc), _message(exc))) from exc
            raise bucket_refusal(self.bucket, self.endpoint, _code(exc), _message(exc)) from exc
        raise head_refused_but_listing_works(self.bucket, _code(head_error)) from head_error

    async def check_writable(self, probe_key: str, *, headers: ObjectHeaders = NO_HEADERS) -> None:
        """No request: the run's first write is the check (see ``DirectStore.check_writable``)."""

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
            client = await self.clients.client()
            response = await client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                Metadata=dict(metadata),
                **checksum_param(checksum),
                **object_params(headers),
            )
        except (ClientError, BotoCoreError) as exc:
            self._object_error("PutObject", exc)
        return StoredObject(etag=response.get("ETag", ""), checksum=returned_checksum(response, checksum))

    async def create_multipart(
        self,
        key: str,
        *,
        metadata: Mapping[str, str],
        checksum: Algorithm | None,
        full_object: bool,
        headers: ObjectHeaders = NO_HEADERS,
    ) -> str:
        async def create() -> tuple[str, bool]:
            try:
                client = await self.clients.client()
                response = await client.create_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    Metadata=dict(metadata),
                    **create_params(checksum, full_object),
                    **object_params(headers),
                )
            except ClientError as exc:
                refused = full_object_refused(_code(exc), _message(exc)) if full_object else None
                if refused is None:
                    self._object_error("CreateMultipartUpload", exc)
                self.full_object_checksums = False
                raise refused from exc
            except BotoCoreError as exc:
                self._object_error("CreateMultipartUpload", exc)
            return str(response["UploadId"]), _retried(response)

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
        try:
            client = await self.clients.client()
            response = await client.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
                **checksum_param(checksum),
                **request_params(headers),
            )
        except (ClientError, BotoCoreError) as exc:
            self._object_error(f"UploadPart {number}", exc)
        return checked_part(number, response.get("ETag"), returned_checksum(response, checksum), checksum)

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
        listing = [{"PartNumber": p.number, "ETag": p.etag, **checksum_param(p.checksum)} for p in parts]
        options: dict[str, Any] = dict(request_params(headers))
        if full_checksum is not None:
            options |= {**checksum_param(full_checksum), "ChecksumType": "FULL_OBJECT"}
        try:
            client = await self.clients.client()
            response = await client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listing}, **options
            )
        except (ClientError, BotoCoreError) as exc:
            self._object_error("CompleteMultipartUpload", exc)
        return StoredObject(etag=response.get("ETag", ""), checksum=returned_checksum(response, algorithm))

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            client = await self.clients.client()
            await client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _code(exc) in {"NoSuchUpload", "404"}:
                return  # already gone: what we wanted
            self._object_error("AbortMultipartUpload", exc)
        except BotoCoreError as exc:
            self._object_error("AbortMultipartUpload", exc)

    async def incomplete_uploads(self, prefix: str) -> AsyncIterator[IncompleteUpload]:
        paginator = (await self.clients.client()).get_paginator("list_multipart_uploads")
        try:
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Uploads", ()):
                    initiated = item.get("Initiated")
                    stamp = initiated.timestamp() if initiated is not None else 0.0
                    yield IncompleteUpload(item["Key"], str(item["UploadId"]), stamp)
        except (ClientError, BotoCoreError) as exc:
            self._object_error("ListMultipartUploads", exc)

    async def list_parts(self, key: str, upload_id: str, *, headers: ObjectHeaders = NO_HEADERS) -> list[StoredPart]:
        found: list[StoredPart] = []
        paginator = (await self.clients.client()).get_paginator("list_parts")
        try:
            pages = paginator.paginate(Bucket=self.bucket, Key=key, UploadId=upload_id, **request_params(headers))
            async for page in pages:
                found.extend(stored_part(item) for item in page.get("Parts", ()))
        except (ClientError, BotoCoreError) as exc:
            self._object_error("ListParts", exc)
        return found

    async def head_object(self, key: str, *, headers: ObjectHeaders = NO_HEADERS) -> ObjectInfo | None:
        return await self._head(key, headers, {})

    async def head_object_checksum(self, key: str, *, headers: ObjectHeaders = NO_HEADERS) -> ObjectInfo | None:
        """``head_object`` in checksum mode (the ``head_object_checksum`` capability)."""
        return await self._head(key, headers, {"ChecksumMode": "ENABLED"})

    async def _head(self, key: str, headers: ObjectHeaders, mode: dict[str, str]) -> ObjectInfo | None:
        try:
            client = await self.clients.client()
            response = await client.head_object(Bucket=self.bucket, Key=key, **request_params(headers), **mode)
        except ClientError as exc:
            if _code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return None
            self._object_error("HeadObject", exc)
        except BotoCoreError as exc:
            self._object_error("HeadObject", exc)
        checksum = whole_checksum(response, names=CHECKSUM_FIELDS, type_name="ChecksumType") if mode else None
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            etag=response.get("ETag", ""),
            metadata=response.get("Metadata", {}),
            checksum=checksum,
        )

    async def delete_objects(self, keys: Sequence[str]) -> list[DeleteFailure]:
        try:
            client = await self.clients.client()
            objects = [{"Key": key} for key in keys]
            response = await client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
        except (ClientError, BotoCoreError) as exc:
            self._object_error("DeleteObjects", exc)
        return [
            delete_failure(str(item.get("Key", "")), str(item.get("Code", "")), item.get("Message"))
            for item in response.get("Errors", ())
        ]

    async def list_objects(self, prefix: str, *, recursive: bool = True) -> AsyncIterator[ObjectInfo]:
        paginator = (await self.clients.client()).get_paginator("list_objects_v2")
        shape = {} if recursive else {"Delimiter": "/"}
        try:
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, **shape):
                for item in page.get("Contents", ()):
                    yield ObjectInfo(key=item["Key"], size=int(item["Size"]), etag=item["ETag"], metadata={})
        except (ClientError, BotoCoreError) as exc:
            self._object_error("ListObjectsV2", exc)
