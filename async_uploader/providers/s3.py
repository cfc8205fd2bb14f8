"""Amazon S3 and S3-compatible stores: every request of an upload on the lean path (``s3_lean``); aiobotocore's
clients (``s3_boto``, imported only when a request needs them) for ``--lean off`` and where the lean path cannot
be set up, and to learn a bucket's endpoint on AWS itself.

Credentials come from botocore's standard chain (environment, shared config and profiles, SSO, container and
instance roles). No ACL is ever sent: objects inherit the bucket's (private) policy.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from io import BytesIO
from typing import Any, Final, NoReturn
from xml.etree import ElementTree

import anyio
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)

from ..config import DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_READ_TIMEOUT_S
from ..errors import (
    BucketError,
    ConfigError,
    CredentialsError,
    EndpointError,
    FileError,
    StoreError,
    UploaderError,
    VerificationError,
)
from ..source.checksum import Algorithm, Checksum
from .base import IncompleteUpload, ObjectInfo, StoredObject, StoredPart, UploadedPart, sweep_stale_uploads
from .http1 import TransportError
from .registry import ConnectOptions, StoreOptions
from .s3_lean import (
    PROBE_KEY,
    BucketEndpoint,
    ErrorResponse,
    FrozenCredentials,
    LeanPool,
    LeanS3,
    complete_body,
    metadata_headers,
)
from .sigv4 import quote_key

# botocore makes one quick second attempt (a stale pooled connection); the engine's own retry layer, which can
# re-read bodies from disk and lower the concurrency when throttled, does the rest.
MAX_REQUEST_ATTEMPTS: Final = 2

_CREDENTIAL_CODES: Final = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"}
)
log = logging.getLogger(__name__)

_THROTTLE_CODES: Final = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests", "ServiceUnavailable"}
)
_TRANSIENT_CODES: Final = frozenset({"RequestTimeout", "InternalError", "RequestTimeTooSkewed", "OperationAborted"})
# aiohttp's own chunk size: as many writes per body as before, each a slice of the body instead of a copy.
SEND_SLICE_BYTES: Final = 256 * 1024
# What botocore signs S3 requests to a custom endpoint with when no region is configured.
DEFAULT_SIGNING_REGION: Final = "us-east-1"
_URL_USERINFO: Final = re.compile(r"(\w+://)[^/@\s]+@")
_NO_CREDENTIALS_HINT: Final = (
    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE / --profile"
)


_PARAMS: Final = {
    Algorithm.CRC32: "ChecksumCRC32",
    Algorithm.CRC32C: "ChecksumCRC32C",
    Algorithm.SHA256: "ChecksumSHA256",
}
# How a store that predates full-object checksums (2025) refuses ChecksumType.
_UNSUPPORTED_CODES: Final = frozenset({"InvalidArgument", "InvalidRequest", "NotImplemented"})


# The request headers of CreateMultipartUpload's checksum parameters.
_HEADERS: Final = {"ChecksumAlgorithm": "x-amz-checksum-algorithm", "ChecksumType": "x-amz-checksum-type"}


def _stored_part(item: Mapping[str, Any]) -> StoredPart:
    """A part as ListParts lists it (botocore's page or the lean path's fields, named alike)."""
    listed = next((Checksum(a, str(item[_PARAMS[a]])) for a in Algorithm if item.get(_PARAMS[a])), None)
    return StoredPart(int(item["PartNumber"]), int(item["Size"]), str(item["ETag"]), listed)


def _checksum_element(checksum: Checksum | None) -> tuple[str | None, str | None]:
    return (_PARAMS[checksum.algorithm], checksum.value) if checksum is not None else (None, None)


def _checksum_param(checksum: Checksum | None) -> dict[str, str]:
    return {_PARAMS[checksum.algorithm]: checksum.value} if checksum is not None else {}


def _returned(response: Mapping[str, Any], sent: Checksum | None) -> str | None:
    """The store's checksum, in the algorithm of the one sent, if it answered one."""
    return response.get(_PARAMS[sent.algorithm]) if sent is not None else None


def _error_code(exc: ClientError | ErrorResponse) -> str:
    if isinstance(exc, ErrorResponse):
        return exc.code
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _error_message(exc: ClientError | ErrorResponse) -> str:
    message = exc.message if isinstance(exc, ErrorResponse) else exc.response.get("Error", {}).get("Message")
    return f"{_error_code(exc)}: {message}" if message else _error_code(exc)


def _error_status(exc: ClientError | ErrorResponse) -> int:
    if isinstance(exc, ErrorResponse):
        return exc.status
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


@dataclass(frozen=True, slots=True)
class S3Connection:
    """The clients of one session, shared by every upload an ``Uploader`` runs.

    ``clients`` carry the control plane, and the data when there is no lean path; the preflight's client makes
    two attempts at most, so a wrong endpoint fails in seconds. ``lean_pool`` is the connection pool of the lean
    data path (``s3_lean``); with ``direct``, that path needs no client at all. ``secrets`` are scrubbed from
    every message.
    """

    clients: _Clients
    endpoint: str
    secrets: tuple[str, ...] = ()
    lean_pool: LeanPool | None = None
    direct: DirectAccess | None = None

    @classmethod
    def from_client(cls, client: Any, lean_pool: LeanPool | None = None) -> S3Connection:
        """Wrap an aiobotocore S3 client the application already has (and keeps owning)."""
        from . import s3_boto  # noqa: F401  (registers how aiohttp sends our bodies)

        endpoint = str(getattr(getattr(client, "meta", None), "endpoint_url", None) or "the S3 endpoint")
        return cls(_Clients(None, (client, client)), _URL_USERINFO.sub(r"\1***@", endpoint), lean_pool=lean_pool)

    def store(self, container: str, options: StoreOptions | None = None) -> S3Store:
        """The store of one bucket over these clients (bodies on the lean path unless ``options.lean`` is off)."""
        return S3Store(self, container, lean=options.lean if options is not None else True)


def _url_and_authorization(request: Any) -> tuple[str, str]:
    authorization = request.headers.get("Authorization", b"")
    if isinstance(authorization, bytes):
        authorization = authorization.decode("ascii", "replace")
    return str(request.url), str(authorization)


def client_tls_verify(client: Any) -> bool | str:
    """The client's certificate verification: a CA bundle path, ``True`` (the default bundle) or ``False``.

    Read from aiobotocore's HTTP session (a private attribute, so with a safe default), so that the lean path
    trusts exactly what the control plane trusts (``AWS_CA_BUNDLE``, ``ca_bundle`` in a profile).
    """
    verify = getattr(getattr(getattr(client, "_endpoint", None), "http_session", None), "_verify", True)
    return verify if isinstance(verify, bool | str) else True


class S3Store:
    """``ObjectStore`` for one S3 bucket over an ``S3Connection``.

    With ``lean`` (and a connection that has a lean pool), requests go over the lean path (``s3_lean``); without
    it, or when the lean path cannot be set up, over aiobotocore.
    """

    def __init__(self, connection: S3Connection, bucket: str, *, lean: bool = True) -> None:
        self._clients = connection.clients
        self._secrets = tuple(s for s in connection.secrets if s and len(s) >= 8)
        self.bucket = bucket
        self._endpoint = connection.endpoint
        self.location = f"{connection.endpoint.rstrip('/')}/{bucket}"
        self.full_object_checksums = True
        self.lists_incomplete_uploads = True
        self._lean_pool = connection.lean_pool if lean else None
        self._lean: LeanS3 | None = None
        self._lean_ready = self._lean_pool is None
        self._lean_setup = asyncio.Lock()
        self._learned: BucketEndpoint | None = None
        self._direct = connection.direct if self._lean_pool is not None else None

    async def _client(self) -> Any:
        """The run's aiobotocore client, created now if this is the first request that needs it."""
        ready = self._clients.ready
        return (ready if ready is not None else await self._clients.get())[0]

    async def _preflight_client(self) -> Any:
        ready = self._clients.ready
        return (ready if ready is not None else await self._clients.get())[1]

    @property
    def sends_lean(self) -> bool:
        """Whether bodies go over the lean data path; known once the first body was sent."""
        return self._lean is not None

    async def _lean_path(self) -> LeanS3 | None:
        """The lean data path, set up on first use; ``None`` when it is off or this store cannot use it."""
        if self._lean_ready:
            return self._lean
        async with self._lean_setup:
            if not self._lean_ready:
                self._lean = await self._set_up_lean()
                self._lean_ready = True
        return self._lean

    async def _learn_endpoint(self) -> BucketEndpoint | None:
        """Where and how the client sends this bucket's object requests: one ``HeadObject`` of a probe key,
        seen just before it is sent (its answer, a 404 most likely, does not matter)."""
        seen: list[tuple[str, str]] = []

        def capture(request: Any, **_: Any) -> None:
            if request.url.partition("?")[0].endswith(f"/{quote_key(PROBE_KEY)}"):
                seen.append(_url_and_authorization(request))

        events = (await self._client()).meta.events
        events.register_first("before-send.s3.HeadObject", capture)
        try:
            client = await self._client()
            await client.head_object(Bucket=self.bucket, Key=PROBE_KEY)
        except (ClientError, BotoCoreError):
            pass  # not there, as expected; or the first body will say what is wrong
        finally:
            events.unregister("before-send.s3.HeadObject", capture)
        return BucketEndpoint.from_signed_request(*seen[0]) if seen else None

    async def _set_up_lean(self) -> LeanS3 | None:
        assert self._lean_pool is not None
        if self._direct is not None:
            return LeanS3(self._lean_pool, self._direct.bucket_endpoint(self.bucket), self._direct.credentials)
        # botocore's request signer holds the credentials every request is signed with (refreshable ones
        # included); there is no public accessor.
        credentials = getattr(getattr(await self._client(), "_request_signer", None), "_credentials", None)
        if credentials is None:
            return None  # the aiobotocore path raises the proper "no credentials" error
        endpoint = self._learned or await self._learn_endpoint()
        if endpoint is None:
            log.warning("the lean data path is off for this run: the endpoint does not use SigV4 header signing")
            return None
        return LeanS3(self._lean_pool, endpoint, credentials)

    def _redact(self, text: str) -> str:
        """No secret leaves this module in a message: credentials' secret and token, and passwords in URLs."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _URL_USERINFO.sub(r"\1***@", text)

    def _object_error(self, operation: str, key: str, exc: Exception) -> NoReturn:
        """Turn a per-object failure into a one-line ``StoreError`` (or ``VerificationError`` for a bad digest)."""
        try:
            self._raise_object_error(operation, exc)
        except FileError as error:
            error.args = (self._redact(str(error)),)
            raise

    def _raise_object_error(self, operation: str, exc: Exception) -> NoReturn:
        if isinstance(exc, ClientError | ErrorResponse):
            code = _error_code(exc)
            if code in {"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch"}:
                raise VerificationError(f"{operation}: the store refused the body's checksum ({code})") from exc
            if code in _CREDENTIAL_CODES:
                # The preflight proved the credentials good: a rejection now is most likely a rotation racing
                # a request signed just before it, and a retry signs again with the refreshed credentials.
                raise StoreError(f"{operation}: credentials rejected ({_error_message(exc)})", retryable=True) from exc
            status = _error_status(exc)
            throttled = code in _THROTTLE_CODES or status in {429, 503}
            retryable = code in _TRANSIENT_CODES or status >= 500
            denied = code in {"AccessDenied", "403"} or status == 403
            raise StoreError(
                f"{operation} failed: {_error_message(exc)}", retryable=retryable, throttled=throttled, denied=denied
            ) from exc
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            raise StoreError(f"{operation}: {_NO_CREDENTIALS_HINT}") from exc
        # Connection refused or reset, timeouts, a body cut short: botocore's own errors (or the lean path's),
        # all worth another try.
        retryable = isinstance(exc, BotoCoreError | TransportError)
        raise StoreError(f"{operation} failed: {exc}", retryable=retryable) from exc

    def _refusal(self, exc: ClientError | ErrorResponse) -> UploaderError:
        """Why a listing of the bucket was refused, as the one-line error the preflight raises."""
        code = _error_code(exc)
        if code in {"NoSuchBucket", "NotFound"}:
            return BucketError(f"bucket {self.bucket!r} does not exist at {self._endpoint}")
        if code in _CREDENTIAL_CODES:
            return CredentialsError(
                f"the credentials were rejected ({code}): check the access key and secret, or --profile"
            )
        if code in {"AccessDenied", "AllAccessDisabled", "AccountProblem"}:
            return CredentialsError(
                f"access to bucket {self.bucket!r} denied ({code}): the credentials lack permission"
            )
        if not code or code.isdigit():  # no S3 error document: an HTML page, a proxy, another service
            return EndpointError(f"{self._endpoint} does not answer like an S3 endpoint")
        return BucketError(f"cannot use bucket {self.bucket!r}: {_error_message(exc)}")

    async def _explain_refusal(self, head_error: ClientError | ErrorResponse, lean: LeanS3 | None = None) -> NoReturn:
        """A HEAD answer has no body, so no error code; a one-key listing says why (and whether this is S3)."""
        try:
            if lean is not None:
                await lean.list_page("", delimiter=False, token=None, max_keys=1)
            else:
                preflight = await self._preflight_client()
                await preflight.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
        except (ClientError, ErrorResponse) as exc:
            raise self._refusal(exc) from exc
        except ElementTree.ParseError as exc:  # a 2xx answer that is not a listing
            raise EndpointError(f"{self._endpoint} does not answer like an S3 endpoint") from exc
        except TransportError as exc:
            raise EndpointError(f"cannot reach {self._endpoint}: {exc}") from exc
        raise BucketError(
            f"cannot use bucket {self.bucket!r}: HEAD answered {_error_code(head_error)} but listing works"
        ) from head_error

    async def check_readable(self) -> None:
        try:
            await self._check_bucket()
        except UploaderError as error:
            error.args = (self._redact(str(error)),)
            raise

    async def _check_bucket(self) -> None:
        if self._direct is not None:
            await self._check_bucket_directly()
            return
        seen: list[tuple[str, str]] = []

        def capture(request: Any, **_: Any) -> None:
            seen.append(_url_and_authorization(request))

        events = (await self._preflight_client()).meta.events
        events.register_first("before-send.s3.HeadBucket", capture)
        try:
            preflight = await self._preflight_client()
            await preflight.head_bucket(Bucket=self.bucket)
            if seen and self._lean_pool is not None and not self._lean_ready:
                # The lean path learns where the bucket is from this request: no probe of its own.
                self._learned = BucketEndpoint.from_bucket_request(*seen[-1], self.bucket)
        except ClientError as exc:
            # A HEAD answer has no body, so no error code; a GET says why (and whether this is S3 at all).
            await self._explain_refusal(exc)
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise CredentialsError(_NO_CREDENTIALS_HINT) from exc
        except (EndpointConnectionError, ConnectTimeoutError) as exc:
            raise EndpointError(f"cannot reach {self._endpoint}: {exc}") from exc
        except BotoCoreError as exc:
            raise EndpointError(f"cannot talk to {self._endpoint}: {exc}") from exc
        finally:
            events.unregister("before-send.s3.HeadBucket", capture)

    async def _check_bucket_directly(self) -> None:
        """The preflight's ``HeadBucket`` on the lean path: no botocore client needed to start."""
        lean = await self._lean_path()
        assert lean is not None  # always set up for direct access
        try:
            await lean.head_bucket()
        except ErrorResponse as exc:
            await self._explain_refusal(exc, lean)
        except TransportError as exc:
            raise EndpointError(f"cannot reach {self._endpoint}: {exc}") from exc

    async def check_writable(self, probe_key: str) -> None:
        # Writing is proven without leaving an object behind: start a multipart upload and abort it. The probe
        # happens mid-run, before the first upload, so it is shielded from a cancellation that would otherwise
        # leave its upload behind (created, but its id never heard of); its preflight client gives up in seconds.
        if self._direct is not None:
            await self._check_writable_directly(probe_key)
            return
        try:
            with anyio.CancelScope(shield=True):
                preflight = await self._preflight_client()
                created = await preflight.create_multipart_upload(Bucket=self.bucket, Key=probe_key)
                await self._abort_probe(probe_key, created)
        except ClientError as exc:
            message = f"these credentials cannot write to bucket {self.bucket!r}: {_error_message(exc)}"
            raise BucketError(self._redact(message)) from exc
        except BotoCoreError as exc:
            raise EndpointError(self._redact(f"cannot talk to {self._endpoint}: {exc}")) from exc

    async def _check_writable_directly(self, probe_key: str) -> None:
        """The write probe on the lean path, so an upload of small files alone never needs a botocore client."""
        lean = await self._lean_path()
        assert lean is not None  # always set up for direct access
        started = time.time()
        try:
            with anyio.CancelScope(shield=True):
                upload_id, retried = await lean.create_upload(probe_key)
                await lean.abort_upload(probe_key, upload_id)
                if retried:  # the first try's answer was lost: it may have created a probe upload too
                    await sweep_stale_uploads(self, probe_key, keep=upload_id, since=started)
        except ErrorResponse as exc:
            message = f"these credentials cannot write to bucket {self.bucket!r}: {_error_message(exc)}"
            raise BucketError(self._redact(message)) from exc
        except (TransportError, ElementTree.ParseError, ValueError) as exc:
            raise EndpointError(self._redact(f"cannot talk to {self._endpoint}: {exc}")) from exc

    async def _abort_probe(self, probe_key: str, created: Mapping[str, Any]) -> None:
        preflight = await self._preflight_client()
        await preflight.abort_multipart_upload(Bucket=self.bucket, Key=probe_key, UploadId=created["UploadId"])
        if created.get("ResponseMetadata", {}).get("RetryAttempts", 0):
            # A first try whose answer was lost may have created a probe upload too: the key is ours alone.
            listed = await preflight.list_multipart_uploads(Bucket=self.bucket, Prefix=probe_key)
            for upload in listed.get("Uploads", ()):
                await preflight.abort_multipart_upload(
                    Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )

    async def put_object(
        self, key: str, body: BytesIO, *, checksum: Checksum | None, metadata: Mapping[str, str]
    ) -> StoredObject:
        lean = self._lean if self._lean_ready else await self._lean_path()
        if lean is not None:
            try:
                answer = await lean.put(key, body, checksum=checksum, metadata=metadata)
            except (ErrorResponse, TransportError) as exc:
                self._object_error("PutObject", key, exc)
            return StoredObject(etag=answer.etag or "", checksum=answer.checksum)
        try:
            client = await self._client()
            response = await client.put_object(
                Bucket=self.bucket, Key=key, Body=body, Metadata=dict(metadata), **_checksum_param(checksum)
            )
        except (ClientError, BotoCoreError) as exc:
            self._object_error("PutObject", key, exc)
        return StoredObject(etag=response.get("ETag", ""), checksum=_returned(response, checksum))

    async def create_multipart(
        self, key: str, *, metadata: Mapping[str, str], checksum: Algorithm | None, full_object: bool
    ) -> str:
        started = time.time()
        options: dict[str, str] = {}
        if checksum is not None:
            options["ChecksumAlgorithm"] = checksum.name
            if full_object:
                options["ChecksumType"] = "FULL_OBJECT"
        lean = self._lean if self._lean_ready else await self._lean_path()
        if lean is not None:
            headers = metadata_headers(metadata)
            headers.update({_HEADERS[name]: value for name, value in options.items()})
            try:
                upload_id, retried = await lean.create_upload(key, headers)
            except ErrorResponse as exc:
                self._refuse_creation(key, exc, full_object)
            except (TransportError, ElementTree.ParseError, ValueError) as exc:
                self._object_error("CreateMultipartUpload", key, exc)
        else:
            try:
                client = await self._client()
                response = await client.create_multipart_upload(
                    Bucket=self.bucket, Key=key, Metadata=dict(metadata), **options
                )
            except ClientError as exc:
                self._refuse_creation(key, exc, full_object)
            except BotoCoreError as exc:
                self._object_error("CreateMultipartUpload", key, exc)
            upload_id = str(response["UploadId"])
            # botocore tried again: its first attempt may have created an upload whose answer was lost.
            retried = bool(response.get("ResponseMetadata", {}).get("RetryAttempts", 0))
        if retried:
            await sweep_stale_uploads(self, key, keep=upload_id, since=started)
        return upload_id

    def _refuse_creation(self, key: str, exc: ClientError | ErrorResponse, full_object: bool) -> NoReturn:
        if full_object and _error_code(exc) in _UNSUPPORTED_CODES:
            # An older S3 compatible: from now on, ask for composite checksums (the engine tries again).
            self.full_object_checksums = False
            raise StoreError(
                f"CreateMultipartUpload: {_error_message(exc)}; trying again without a full-object checksum",
                retryable=True,
            ) from exc
        self._object_error("CreateMultipartUpload", key, exc)

    async def incomplete_uploads(self, prefix: str) -> AsyncIterator[IncompleteUpload]:
        lean = self._lean if self._lean_ready else await self._lean_path()
        if lean is not None:
            markers: tuple[str, str] | None = ("", "")
            while markers is not None:
                try:
                    rows, markers = await lean.list_uploads_page(prefix, *markers)
                except (ErrorResponse, TransportError, ElementTree.ParseError, ValueError) as exc:
                    self._object_error("ListMultipartUploads", prefix, exc)
                for key, upload_id, initiated in rows:
                    yield IncompleteUpload(key, upload_id, initiated)
            return
        paginator = (await self._client()).get_paginator("list_multipart_uploads")
        try:
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Uploads", ()):
                    initiated = item.get("Initiated")
                    stamp = initiated.timestamp() if initiated is not None else 0.0
                    yield IncompleteUpload(item["Key"], str(item["UploadId"]), stamp)
        except (ClientError, BotoCoreError) as exc:
            self._object_error("ListMultipartUploads", prefix, exc)

    async def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        found: list[StoredPart] = []
        lean = self._lean if self._lean_ready else await self._lean_path()
        if lean is not None:
            marker: int | None = 0
            while marker is not None:
                try:
                    page, marker = await lean.list_parts_page(key, upload_id, marker)
                except (ErrorResponse, TransportError, ElementTree.ParseError) as exc:
                    self._object_error("ListParts", key, exc)
                found.extend(_stored_part(item) for item in page)
            return found
        paginator = (await self._client()).get_paginator("list_parts")
        try:
            async for page in paginator.paginate(Bucket=self.bucket, Key=key, UploadId=upload_id):
                found.extend(_stored_part(item) for item in page.get("Parts", ()))
        except (ClientError, BotoCoreError) as exc:
            self._object_error("ListParts", key, exc)
        return found

    async def upload_part(
        self, key: str, upload_id: str, number: int, body: BytesIO, *, checksum: Checksum | None
    ) -> UploadedPart:
        lean = self._lean if self._lean_ready else await self._lean_path()
        if lean is not None:
            query = (("partNumber", str(number)), ("uploadId", upload_id))
            try:
                answer = await lean.put(key, body, checksum=checksum, query=query)
            except (ErrorResponse, TransportError) as exc:
                self._object_error(f"UploadPart {number}", key, exc)
            etag, returned = answer.etag, answer.checksum
        else:
            try:
                client = await self._client()
                response = await client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body,
                    **_checksum_param(checksum),
                )
            except (ClientError, BotoCoreError) as exc:
                self._object_error(f"UploadPart {number}", key, exc)
            etag, returned = response.get("ETag"), _returned(response, checksum)
        if checksum is not None and returned is not None and returned != checksum.value:
            raise VerificationError(
                f"part {number}: store computed {checksum.algorithm.name} {returned}, expected {checksum.value}"
            )
        if not etag:
            raise StoreError(f"UploadPart {number}: the store's answer has no ETag", retryable=True)
        return UploadedPart(number=number, etag=etag, checksum=checksum)

    async def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[UploadedPart], *, full_checksum: Checksum | None
    ) -> StoredObject:
        algorithm = parts[0].checksum if parts and parts[0].checksum is not None else full_checksum
        lean = self._lean if self._lean_ready else await self._lean_path()
        if lean is not None:
            rows = [(p.number, p.etag, *_checksum_element(p.checksum)) for p in parts]
            headers: dict[str, str] = {}
            if full_checksum is not None:
                headers = {f"x-amz-checksum-{full_checksum.algorithm.value}": full_checksum.value}
                headers["x-amz-checksum-type"] = "FULL_OBJECT"
            try:
                result = await lean.complete_upload(key, upload_id, complete_body(rows), headers)
            except (ErrorResponse, TransportError, ElementTree.ParseError) as exc:
                self._object_error("CompleteMultipartUpload", key, exc)
            return StoredObject(etag=result.get("ETag", ""), checksum=_returned(result, algorithm))
        listing = [{"PartNumber": p.number, "ETag": p.etag, **_checksum_param(p.checksum)} for p in parts]
        options: dict[str, str] = {}
        if full_checksum is not None:
            options = {**_checksum_param(full_checksum), "ChecksumType": "FULL_OBJECT"}
        try:
            client = await self._client()
            response = await client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listing}, **options
            )
        except (ClientError, BotoCoreError) as exc:
            self._object_error("CompleteMultipartUpload", key, exc)
        return StoredObject(etag=response.get("ETag", ""), checksum=_returned(response, algorithm))

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        lean = self._lean if self._lean_ready else await self._lean_path()
        if lean is not None:
            try:
                await lean.abort_upload(key, upload_id)
            except ErrorResponse as exc:
                if exc.code == "NoSuchUpload" or exc.status == HTTPStatus.NOT_FOUND:
                    return  # already gone: what we wanted
                self._object_error("AbortMultipartUpload", key, exc)
            except TransportError as exc:
                self._object_error("AbortMultipartUpload", key, exc)
            return
        try:
            client = await self._client()
            await client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _error_code(exc) in {"NoSuchUpload", "404"}:
                return  # already gone: what we wanted
            self._object_error("AbortMultipartUpload", key, exc)
        except BotoCoreError as exc:
            self._object_error("AbortMultipartUpload", key, exc)

    async def head_object(self, key: str) -> ObjectInfo | None:
        lean = self._lean if self._lean_ready else await self._lean_path()
        if lean is not None:
            try:
                return await lean.head(key)
            except (ErrorResponse, TransportError, ValueError) as exc:
                self._object_error("HeadObject", key, exc)
        try:
            client = await self._client()
            response = await client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return None
            self._object_error("HeadObject", key, exc)
        except BotoCoreError as exc:
            self._object_error("HeadObject", key, exc)
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            etag=response.get("ETag", ""),
            metadata=response.get("Metadata", {}),
        )

    async def list_objects(self, prefix: str, *, recursive: bool = True) -> AsyncIterator[ObjectInfo]:
        lean = self._lean if self._lean_ready else await self._lean_path()
        if lean is not None:
            token: str | None = None
            while True:
                try:
                    rows, token = await lean.list_page(prefix, delimiter=not recursive, token=token)
                except (ErrorResponse, TransportError, ElementTree.ParseError) as exc:
                    self._object_error("ListObjectsV2", prefix, exc)
                for key, size, etag in rows:
                    yield ObjectInfo(key=key, size=size, etag=etag, metadata={})
                if token is None:
                    return
        paginator = (await self._client()).get_paginator("list_objects_v2")
        shape = {} if recursive else {"Delimiter": "/"}
        try:
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, **shape):
                for item in page.get("Contents", ()):
                    yield ObjectInfo(key=item["Key"], size=int(item["Size"]), etag=item["ETag"], metadata={})
        except (ClientError, BotoCoreError) as exc:
            self._object_error("ListObjectsV2", prefix, exc)


def client_options(endpoint_url: str | None, connect_timeout_s: float, read_timeout_s: float) -> dict[str, Any]:
    """The options both aiobotocore clients share (``s3_boto.open_clients``)."""
    return {
        "connect_timeout": connect_timeout_s,
        "read_timeout": read_timeout_s,
        "tcp_keepalive": True,
        "s3": {
            # Custom endpoints (MinIO, SeaweedFS, Ceph...) rarely have wildcard DNS for virtual-hosted buckets.
            "addressing_style": "path" if _configured_endpoint(endpoint_url) else "auto",
            # Bodies carry a CRC32 header that is signed and that the server verifies, so a SHA-256 of every
            # byte (botocore's default over plain http) would add CPU, and stall the event loop, for nothing.
            "payload_signing_enabled": False,
        },
        # The engine computes every checksum itself as it reads (or none, with --checksum none): botocore must not
        # add a CRC32 of its own to a body that has none.
        "request_checksum_calculation": "when_required",
    }


class BotocoreCredentials:
    """botocore's own credentials (the standard chain, resolved without aiobotocore) for the lean path.

    Static credentials are read as they are. Refreshable ones (assumed roles, SSO, container and instance
    roles) refresh themselves when read close to their expiry, with a blocking request: that read, and only
    that one, goes to a worker thread.
    """

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials
        self._refresh_needed: Callable[[], bool] | None = getattr(credentials, "refresh_needed", None)

    async def get_frozen_credentials(self) -> FrozenCredentials:
        if self._refresh_needed is not None and self._refresh_needed():
            refreshed: FrozenCredentials = await anyio.to_thread.run_sync(self._credentials.get_frozen_credentials)
            return refreshed
        frozen: FrozenCredentials = self._credentials.get_frozen_credentials()
        return frozen


@dataclass(frozen=True, slots=True)
class DirectAccess:
    """What the lean path needs to reach a bucket of a user-given endpoint without any botocore client."""

    endpoint_url: str
    region: str
    credentials: BotocoreCredentials

    def bucket_endpoint(self, bucket: str) -> BucketEndpoint:
        """Path style, as botocore addresses buckets of a custom endpoint (``addressing_style: path``)."""
        return BucketEndpoint.path_style(self.endpoint_url, bucket, self.region)


@dataclass(frozen=True, slots=True)
class _Resolved:
    secrets: tuple[str, ...]
    verify: bool | str
    direct: DirectAccess | None


def _resolve(profile: str | None, endpoint_url: str | None, region: str | None) -> _Resolved:
    """The standard credential chain, the region and the CA bundle, as botocore's session resolves them.

    Runs in a worker thread: the chain may read files or ask an instance or container metadata service.
    """
    import botocore.session  # ~0.15 s: imported here, off the event loop

    from . import s3_data

    session = botocore.session.Session(profile=profile)
    s3_data.use_trimmed_endpoint_data(session)
    try:
        credentials = session.get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials is not None else None
        signing_region = region or session.get_config_variable("region") or DEFAULT_SIGNING_REGION
        ca_bundle = session.get_config_variable("ca_bundle")
    except ProfileNotFound as exc:
        raise ConfigError(f"AWS profile {profile!r} not found in the shared config files") from exc
    except BotoCoreError:
        # Left to aiobotocore, which reports the same problem properly, at the preflight.
        return _Resolved((), True, None)
    secrets = tuple(value for value in (frozen.secret_key, frozen.token) if value) if frozen is not None else ()
    endpoint = _configured_endpoint(endpoint_url)
    direct = None
    if endpoint is not None and credentials is not None and frozen is not None and frozen.access_key:
        direct = DirectAccess(endpoint, str(signing_region), BotocoreCredentials(credentials))
    return _Resolved(secrets, ca_bundle if isinstance(ca_bundle, str) else True, direct)


@dataclass(frozen=True, slots=True)
class _EnvironmentCredentials:
    """Static credentials from the environment, as botocore's ``EnvProvider`` reads them."""

    access_key: str
    secret_key: str
    token: str | None

    def get_frozen_credentials(self) -> _EnvironmentCredentials:
        return self


def _resolve_from_environment(profile: str | None, endpoint_url: str | None, region: str | None) -> _Resolved | None:
    """What ``_resolve`` would find, where the environment alone settles it; ``None`` where botocore must look.

    The common CI set-up (keys, a region and an endpoint in the environment or on the command line) needs no
    import of botocore's session (~0.15 s of CPU, a sixth of a no-op re-run). botocore's own rules, which
    ``tests/test_s3_provider.py`` checks this against: without an explicit profile, the environment's keys come
    first in the chain; ``AWS_DEFAULT_REGION`` beats the config file; so does ``AWS_CA_BUNDLE``, and with
    neither a config file nor a CA bundle a TLS endpoint is verified with the default bundle.
    """
    env = os.environ
    endpoint = _configured_endpoint(endpoint_url)
    access_key, secret_key = env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", "")
    signing_region = region or env.get("AWS_DEFAULT_REGION", "")
    if profile is not None or endpoint is None or not access_key or not secret_key or not signing_region:
        return None
    if env.get("AWS_CREDENTIAL_EXPIRATION"):
        return None  # refreshable: botocore's chain reads the environment again when they expire
    ca_bundle = env.get("AWS_CA_BUNDLE") or None
    config_file = os.path.exists(os.path.expanduser(env.get("AWS_CONFIG_FILE") or "~/.aws/config"))
    if config_file and ((ca_bundle is None and endpoint.lower().startswith("https:")) or not endpoint_url):
        return None  # a profile may name a CA bundle, or say to ignore endpoints set in the environment
    token = env.get("AWS_SECURITY_TOKEN") or env.get("AWS_SESSION_TOKEN") or None
    credentials = _EnvironmentCredentials(access_key, secret_key, token)
    secrets = tuple(value for value in (secret_key, token) if value)
    direct = DirectAccess(endpoint, signing_region, BotocoreCredentials(credentials))
    return _Resolved(secrets, ca_bundle or True, direct)


def _configured_endpoint(endpoint_url: str | None) -> str | None:
    """The endpoint the user gave: ``--endpoint-url``, else botocore's environment variables for it."""
    if endpoint_url:
        return endpoint_url
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() == "true":
        return None
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


class _Clients:
    """aiobotocore's two clients, created when first asked for (``s3_boto``), or handed over ready-made."""

    def __init__(self, make: Callable[[], Awaitable[tuple[Any, Any]]] | None, ready: tuple[Any, Any] | None = None):
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


@asynccontextmanager
async def open_s3_connection(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    max_connections: int = 64,
    session: Any | None = None,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
) -> AsyncIterator[S3Connection]:
    """A connection over a session (a new one unless given), its clients closed on exit.

    Without a session of the application's, this process resolves the credentials itself (botocore's chain),
    and with a user-given endpoint the lean path reaches the bucket directly: aiobotocore is imported and its
    clients created only when a request needs them (multipart control, HEAD).
    """
    async with AsyncExitStack() as stack:
        resolved: _Resolved | None = None
        if session is None:
            resolved = _resolve_from_environment(profile, endpoint_url, region) or await anyio.to_thread.run_sync(
                _resolve, profile, endpoint_url, region
            )

        async def make_clients() -> tuple[Any, Any]:
            nonlocal session
            # ~0.3 s of imports: in a worker thread, so that transfers in flight keep the event loop meanwhile.
            s3_boto = await anyio.to_thread.run_sync(importlib.import_module, f"{__package__}.s3_boto")
            try:
                if session is None:
                    session = s3_boto.new_session(profile)
                clients: tuple[Any, Any] = await s3_boto.open_clients(
                    stack,
                    session,
                    endpoint_url=endpoint_url,
                    region=region,
                    max_connections=max_connections,
                    connect_timeout_s=connect_timeout_s,
                    read_timeout_s=read_timeout_s,
                )
            except ProfileNotFound as exc:
                raise ConfigError(f"AWS profile {profile!r} not found in the shared config files") from exc
            except ValueError as exc:  # botocore's complaint about a malformed endpoint URL
                raise ConfigError(f"invalid endpoint URL {endpoint_url!r}: {exc}") from exc
            except BotoCoreError as exc:
                raise ConfigError(f"cannot set up the S3 client: {exc}") from exc
            return clients

        clients = _Clients(make_clients)
        if resolved is None:  # the application's session: its clients and credentials, now
            client, _ = await clients.get()
            from . import s3_boto

            secrets = tuple(await s3_boto.known_secrets(session))
            verify = client_tls_verify(client)
        else:
            secrets, verify = resolved.secrets, resolved.verify
        lean_pool = LeanPool(
            max_connections=max_connections,
            connect_timeout_s=connect_timeout_s,
            read_timeout_s=read_timeout_s,
            verify=verify,
        )
        stack.push_async_callback(lean_pool.close)
        endpoint = _configured_endpoint(endpoint_url)
        yield S3Connection(
            clients,
            _URL_USERINFO.sub(r"\1***@", endpoint) if endpoint else "AWS S3",
            secrets,
            lean_pool,
            resolved.direct if resolved is not None else None,
        )


def connect(options: ConnectOptions) -> AbstractAsyncContextManager[S3Connection]:
    """The ``s3://`` provider: a new session's clients for ``options``, closed on exit."""
    return open_s3_connection(
        endpoint_url=options.endpoint_url,
        region=options.region,
        profile=options.profile,
        max_connections=options.max_connections,
        connect_timeout_s=options.connect_timeout_s,
        read_timeout_s=options.read_timeout_s,
    )


@asynccontextmanager
async def open_s3_store(
    bucket: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    max_connections: int = 64,
    lean: bool = True,
) -> AsyncIterator[S3Store]:
    """An ``S3Store`` with its own session and connection pool, closed on exit."""
    async with open_s3_connection(
        endpoint_url=endpoint_url, region=region, profile=profile, max_connections=max_connections
    ) as connection:
        yield S3Store(connection, bucket, lean=lean)
