"""Amazon S3 and S3-compatible stores, on aiobotocore. The only module that imports it.

Credentials come from botocore's standard chain (environment, shared config and profiles, SSO, container and
instance roles). No ACL is ever sent: objects inherit the bucket's (private) policy.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from typing import Any, Final, NoReturn

import aiobotocore.session
import anyio
from aiobotocore.config import AioConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.utils import parse_timestamp

from ..checksum import Algorithm, Checksum
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
from .base import IncompleteUpload, ObjectInfo, StoredObject, StoredPart, UploadedPart, sweep_stale_uploads
from .registry import ConnectOptions

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


def _checksum_param(checksum: Checksum | None) -> dict[str, str]:
    return {_PARAMS[checksum.algorithm]: checksum.value} if checksum is not None else {}


def _returned(response: Mapping[str, Any], sent: Checksum | None) -> str | None:
    """The store's checksum, in the algorithm of the one sent, if it answered one."""
    return response.get(_PARAMS[sent.algorithm]) if sent is not None else None


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _error_message(exc: ClientError) -> str:
    message = exc.response.get("Error", {}).get("Message")
    return f"{_error_code(exc)}: {message}" if message else _error_code(exc)


@dataclass(frozen=True, slots=True)
class S3Connection:
    """The clients of one session, shared by every upload an ``Uploader`` runs.

    ``client`` carries the data (its pool sized to the concurrency); ``preflight_client`` makes two attempts
    at most, so a wrong endpoint fails in seconds. ``secrets`` are scrubbed from every message.
    """

    client: Any
    preflight_client: Any
    endpoint: str
    secrets: tuple[str, ...] = ()

    @classmethod
    def from_client(cls, client: Any) -> S3Connection:
        """Wrap an aiobotocore S3 client the application already has (and keeps owning)."""
        endpoint = str(getattr(getattr(client, "meta", None), "endpoint_url", None) or "the S3 endpoint")
        return cls(client, client, _URL_USERINFO.sub(r"\1***@", endpoint))

    def store(self, container: str) -> S3Store:
        """The store of one bucket over these clients."""
        return S3Store(self, container)


class S3Store:
    """``ObjectStore`` for one S3 bucket over an ``S3Connection``."""

    def __init__(self, connection: S3Connection, bucket: str) -> None:
        self._client = connection.client
        self._preflight_client = connection.preflight_client
        self._secrets = tuple(s for s in connection.secrets if s and len(s) >= 8)
        self.bucket = bucket
        self._endpoint = connection.endpoint
        self.location = f"{connection.endpoint.rstrip('/')}/{bucket}"
        self.full_object_checksums = True
        self.lists_incomplete_uploads = True

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
        if isinstance(exc, ClientError):
            code = _error_code(exc)
            if code in {"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch"}:
                raise VerificationError(f"{operation}: the store refused the body's checksum ({code})") from exc
            if code in _CREDENTIAL_CODES:
                # The preflight proved the credentials good: a rejection now is most likely a rotation racing
                # a request signed just before it, and a retry signs again with the refreshed credentials.
                raise StoreError(f"{operation}: credentials rejected ({_error_message(exc)})", retryable=True) from exc
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            throttled = code in _THROTTLE_CODES or status in {429, 503}
            retryable = code in _TRANSIENT_CODES or status >= 500
            raise StoreError(
                f"{operation} failed: {_error_message(exc)}", retryable=retryable, throttled=throttled
            ) from exc
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            raise StoreError(f"{operation}: {_NO_CREDENTIALS_HINT}") from exc
        # Connection refused or reset, timeouts, a body cut short: botocore's own errors, all worth another try.
        raise StoreError(f"{operation} failed: {exc}", retryable=isinstance(exc, BotoCoreError)) from exc

    async def _explain_refusal(self, head_error: ClientError) -> NoReturn:
        try:
            await self._preflight_client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
        except ClientError as exc:
            code = _error_code(exc)
            if code in {"NoSuchBucket", "NotFound"}:
                raise BucketError(f"bucket {self.bucket!r} does not exist at {self._endpoint}") from exc
            if code in _CREDENTIAL_CODES:
                raise CredentialsError(
                    f"the credentials were rejected ({code}): check the access key and secret, or --profile"
                ) from exc
            if code in {"AccessDenied", "AllAccessDisabled", "AccountProblem"}:
                raise CredentialsError(
                    f"access to bucket {self.bucket!r} denied ({code}): the credentials lack permission"
                ) from exc
            if not code or code.isdigit():  # no S3 error document: an HTML page, a proxy, another service
                raise EndpointError(f"{self._endpoint} does not answer like an S3 endpoint") from exc
            raise BucketError(f"cannot use bucket {self.bucket!r}: {_error_message(exc)}") from exc
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
        try:
            await self._preflight_client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            # A HEAD answer has no body, so no error code; a GET says why (and whether this is S3 at all).
            await self._explain_refusal(exc)
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise CredentialsError(_NO_CREDENTIALS_HINT) from exc
        except (EndpointConnectionError, ConnectTimeoutError) as exc:
            raise EndpointError(f"cannot reach {self._endpoint}: {exc}") from exc
        except BotoCoreError as exc:
            raise EndpointError(f"cannot talk to {self._endpoint}: {exc}") from exc

    async def check_writable(self, probe_key: str) -> None:
        # Writing is proven without leaving an object behind: start a multipart upload and abort it. The probe
        # happens mid-run, before the first upload, so it is shielded from a cancellation that would otherwise
        # leave its upload behind (created, but its id never heard of); its preflight client gives up in seconds.
        try:
            with anyio.CancelScope(shield=True):
                created = await self._preflight_client.create_multipart_upload(Bucket=self.bucket, Key=probe_key)
                await self._abort_probe(probe_key, created)
        except ClientError as exc:
            message = f"these credentials cannot write to bucket {self.bucket!r}: {_error_message(exc)}"
            raise BucketError(self._redact(message)) from exc
        except BotoCoreError as exc:
            raise EndpointError(self._redact(f"cannot talk to {self._endpoint}: {exc}")) from exc

    async def _abort_probe(self, probe_key: str, created: Mapping[str, Any]) -> None:
        await self._preflight_client.abort_multipart_upload(
            Bucket=self.bucket, Key=probe_key, UploadId=created["UploadId"]
        )
        if created.get("ResponseMetadata", {}).get("RetryAttempts", 0):
            # A first try whose answer was lost may have created a probe upload too: the key is ours alone.
            listed = await self._preflight_client.list_multipart_uploads(Bucket=self.bucket, Prefix=probe_key)
            for upload in listed.get("Uploads", ()):
                await self._preflight_client.abort_multipart_upload(
                    Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )

    async def put_object(
        self, key: str, body: BytesIO, *, checksum: Checksum | None, metadata: Mapping[str, str]
    ) -> StoredObject:
        try:
            response = await self._client.put_object(
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
        try:
            response = await self._client.create_multipart_upload(
                Bucket=self.bucket, Key=key, Metadata=dict(metadata), **options
            )
        except ClientError as exc:
            if full_object and _error_code(exc) in _UNSUPPORTED_CODES:
                # An older S3 compatible: from now on, ask for composite checksums (the engine tries again).
                self.full_object_checksums = False
                raise StoreError(
                    f"CreateMultipartUpload: {_error_message(exc)}; trying again without a full-object checksum",
                    retryable=True,
                ) from exc
            self._object_error("CreateMultipartUpload", key, exc)
        except BotoCoreError as exc:
            self._object_error("CreateMultipartUpload", key, exc)
        upload_id = str(response["UploadId"])
        if response.get("ResponseMetadata", {}).get("RetryAttempts", 0):
            # botocore tried again: its first attempt may have created an upload whose answer was lost.
            await sweep_stale_uploads(self, key, keep=upload_id, since=started)
        return upload_id

    async def incomplete_uploads(self, prefix: str) -> AsyncIterator[IncompleteUpload]:
        paginator = self._client.get_paginator("list_multipart_uploads")
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
        paginator = self._client.get_paginator("list_parts")
        try:
            async for page in paginator.paginate(Bucket=self.bucket, Key=key, UploadId=upload_id):
                for item in page.get("Parts", ()):
                    listed = next((Checksum(a, item[_PARAMS[a]]) for a in Algorithm if item.get(_PARAMS[a])), None)
                    found.append(StoredPart(int(item["PartNumber"]), int(item["Size"]), item["ETag"], listed))
        except (ClientError, BotoCoreError) as exc:
            self._object_error("ListParts", key, exc)
        return found

    async def upload_part(
        self, key: str, upload_id: str, number: int, body: BytesIO, *, checksum: Checksum | None
    ) -> UploadedPart:
        try:
            response = await self._client.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
                **_checksum_param(checksum),
            )
        except (ClientError, BotoCoreError) as exc:
            self._object_error(f"UploadPart {number}", key, exc)
        returned = _returned(response, checksum)
        if checksum is not None and returned is not None and returned != checksum.value:
            raise VerificationError(
                f"part {number}: store computed {checksum.algorithm.name} {returned}, expected {checksum.value}"
            )
        return UploadedPart(number=number, etag=response["ETag"], checksum=checksum)

    async def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[UploadedPart], *, full_checksum: Checksum | None
    ) -> StoredObject:
        listing = [{"PartNumber": p.number, "ETag": p.etag, **_checksum_param(p.checksum)} for p in parts]
        options: dict[str, str] = {}
        if full_checksum is not None:
            options = {**_checksum_param(full_checksum), "ChecksumType": "FULL_OBJECT"}
        try:
            response = await self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listing}, **options
            )
        except (ClientError, BotoCoreError) as exc:
            self._object_error("CompleteMultipartUpload", key, exc)
        algorithm = parts[0].checksum if parts and parts[0].checksum is not None else full_checksum
        return StoredObject(etag=response.get("ETag", ""), checksum=_returned(response, algorithm))

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            await self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _error_code(exc) in {"NoSuchUpload", "404"}:
                return  # already gone: what we wanted
            self._object_error("AbortMultipartUpload", key, exc)
        except BotoCoreError as exc:
            self._object_error("AbortMultipartUpload", key, exc)

    async def head_object(self, key: str) -> ObjectInfo | None:
        try:
            response = await self._client.head_object(Bucket=self.bucket, Key=key)
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
        paginator = self._client.get_paginator("list_objects_v2")
        shape = {} if recursive else {"Delimiter": "/"}
        try:
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, **shape):
                for item in page.get("Contents", ()):
                    yield ObjectInfo(key=item["Key"], size=int(item["Size"]), etag=item["ETag"], metadata={})
        except (ClientError, BotoCoreError) as exc:
            self._object_error("ListObjectsV2", prefix, exc)


def _fast_timestamp(text: str) -> datetime:
    """S3's ISO 8601 timestamps through the C parser; anything else through botocore's.

    botocore parses every timestamp with dateutil, ~120 us each: a 10,000-object listing spent 1.2 s of its
    3.3 s of CPU there. The values are the same datetimes, so credential providers sharing the session (which
    read expirations) see no difference.
    """
    try:
        fast = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        fast = None
    if fast is not None and fast.tzinfo is not None:
        return fast
    parsed: datetime = parse_timestamp(text)  # RFC 1123 dates, epoch seconds, no time zone: botocore decides
    return parsed


def _parse_timestamps_fast(session: Any) -> None:
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_fast_timestamp)


async def _known_secrets(session: Any) -> list[str]:
    """The resolved secret key and session token, so error messages can be scrubbed of them."""
    try:
        credentials = await session.get_credentials()
        if credentials is None:
            return []
        frozen = await credentials.get_frozen_credentials()
    except (BotoCoreError, ClientError):
        return []  # the preflight will report the credentials problem properly
    return [value for value in (frozen.secret_key, frozen.token) if value]


def _configured_endpoint(endpoint_url: str | None) -> str | None:
    return endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


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
    """A session's clients (a new ``AioSession`` unless one is given), closed on exit."""
    endpoint = _configured_endpoint(endpoint_url)
    options: dict[str, Any] = {
        "connect_timeout": connect_timeout_s,
        "read_timeout": read_timeout_s,
        "tcp_keepalive": True,
        "s3": {
            # Custom endpoints (MinIO, SeaweedFS, Ceph...) rarely have wildcard DNS for virtual-hosted buckets.
            "addressing_style": "path" if endpoint else "auto",
            # Bodies carry a CRC32 header that is signed and that the server verifies, so a SHA-256 of every
            # byte (botocore's default over plain http) would add CPU, and stall the event loop, for nothing.
            "payload_signing_enabled": False,
        },
        # The engine computes every checksum itself as it reads (or none, with --checksum none): botocore must not
        # add a CRC32 of its own to a body that has none.
        "request_checksum_calculation": "when_required",
    }
    config = AioConfig(
        max_pool_connections=max_connections,
        retries={"mode": "standard", "total_max_attempts": MAX_REQUEST_ATTEMPTS},
        **options,
    )
    # The preflight answers "can this work at all?": a typo in the endpoint should fail in seconds, not after
    # the full retry schedule that the upload itself deserves.
    preflight_config = AioConfig(
        max_pool_connections=1, retries={"mode": "standard", "total_max_attempts": 2}, **options
    )
    async with AsyncExitStack() as stack:
        try:
            if session is None:
                session = aiobotocore.session.AioSession(profile=profile)
                _parse_timestamps_fast(session)
            clients = [
                await stack.enter_async_context(
                    session.create_client("s3", region_name=region, endpoint_url=endpoint_url, config=cfg)
                )
                for cfg in (config, preflight_config)
            ]
        except ProfileNotFound as exc:
            raise ConfigError(f"AWS profile {profile!r} not found in the shared config files") from exc
        except ValueError as exc:  # botocore's complaint about a malformed endpoint URL
            raise ConfigError(f"invalid endpoint URL {endpoint_url!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise ConfigError(f"cannot set up the S3 client: {exc}") from exc
        yield S3Connection(
            clients[0],
            clients[1],
            _URL_USERINFO.sub(r"\1***@", endpoint) if endpoint else "AWS S3",
            tuple(await _known_secrets(session)),
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
) -> AsyncIterator[S3Store]:
    """An ``S3Store`` with its own session and connection pool, closed on exit."""
    async with open_s3_connection(
        endpoint_url=endpoint_url, region=region, profile=profile, max_connections=max_connections
    ) as connection:
        yield S3Store(connection, bucket)
