"""Azure Blob Storage, on ``azure-storage-blob``'s asyncio client. The only module that imports the Azure SDK.

Installed by the ``azure`` extra (``pip install 'async-uploader[azure]'``); without it an ``az://`` destination
is a one-line ``ConfigError``. The engine's operations map onto block blobs:

- a single put is Put Blob (``upload_blob``, overwriting), with ``size``, ``mtime`` and ``mode`` as blob metadata;
- a multipart upload is Put Block (``stage_block``) per part, then Put Block List (``commit_block_list``). The
  "upload id" is a random token plus the metadata to commit with; every block id embeds the token and the part
  number (``{token}-{part:05d}``, all the same length, as Azure requires), so uploads of one blob never mix;
- an abort deletes nothing: uncommitted blocks cost storage until the service discards them, seven days after
  they were staged (or at the blob's next commit). Deleting the blob would destroy the object a re-upload was
  replacing, so it is never done.

Integrity: Azure cannot check the CRC32/CRC32C/SHA-256 the engine computes, so every body (unless the user chose
``--checksum none``) carries its MD5 as ``Content-MD5``, computed in a worker thread, which the service verifies
for that request: a body damaged in transit is refused (``VerificationError``, retried). A committed block list
has no whole-object checksum; the engine's HEAD after the commit confirms the size (the file is reported as checked
by size only). ``StoredObject.checksum`` is always ``None`` because the service answers no checksum in the engine's
algorithm; a single put's is ``body_verified``.

Resuming is not supported (``lists_incomplete_uploads`` is false): uncommitted blocks can only be listed blob by
blob, a request per object on every run; a killed run's large files are uploaded again, and their stale blocks
expire by themselves.

Credentials: ``AZURE_STORAGE_CONNECTION_STRING`` (with an account key or a SAS), or an account URL with a SAS
(in the URL's query or ``AZURE_STORAGE_SAS_TOKEN``) or else ``DefaultAzureCredential`` (azure-identity: the
environment, a managed identity, the Azure CLI login, ...). Never anonymous; a container that allows public
access is refused.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO
from typing import Any, Final, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio

from ..errors import (
    BucketError,
    ConfigError,
    CredentialsError,
    EndpointError,
    VerificationError,
)
from ..source.checksum import Algorithm, Checksum
from ._errors import ErrorCodes, Redactor, answer_error, credentials_rejected, request_failed
from .base import (
    CONTENT_HEADER_FIELDS,
    NO_HEADERS,
    DeleteFailure,
    IncompleteUpload,
    ObjectHeaders,
    ObjectInfo,
    StoredObject,
    StoredPart,
    UploadedPart,
)
from .registry import ConnectOptions

try:
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )
    from azure.storage.blob import BlobBlock, BlobProperties, ContentSettings, StandardBlobTier
    from azure.storage.blob.aio import BlobServiceClient, ContainerClient, LinearRetry
except ImportError as _missing:
    raise ConfigError(
        f"az:// destinations need the Azure SDK ({_missing.name} is missing): pip install 'async-uploader[azure]'"
    ) from _missing

log = logging.getLogger(__name__)

# Put Blob takes up to 5000 MiB in one request; below it the SDK must never split a single put into blocks of
# its own (the engine decides what is a multipart upload).
MAX_SINGLE_PUT_BYTES: Final = 5000 * 1024 * 1024
# Hashing a small body costs less than a thread hop.
MD5_INLINE_MAX_BYTES: Final = 64 * 1024
# The SDK makes one quick second attempt (a stale pooled connection); the engine's retry layer does the rest.
RETRY_BACKOFF_S: Final = 1
BATCH_DELETE_BLOBS: Final = 256
"""Blobs per blob batch request: the service's limit."""
PROBE_BLOCK_ID: Final = "async-uploader-write-probe"
CONNECTION_STRING_ENV: Final = "AZURE_STORAGE_CONNECTION_STRING"
SAS_TOKEN_ENV: Final = "AZURE_STORAGE_SAS_TOKEN"

_CODES: Final = ErrorCodes(
    verification=frozenset({"Md5Mismatch", "InvalidMd5", "Crc64Mismatch", "InvalidCrc64"}),
    checksum_name="MD5",
    throttle=frozenset({"ServerBusy", "OperationTimedOut"}),
    retryable_statuses=frozenset({408}),
)
_DENIED_CODES: Final = frozenset(
    {"AuthorizationFailure", "AuthorizationPermissionMismatch", "AuthorizationResourceTypeMismatch"}
)
_NO_CREDENTIALS_HINT: Final = (
    f"az:// needs credentials: set {CONNECTION_STRING_ENV}, or give --account-url "
    "https://ACCOUNT.blob.core.windows.net with a SAS token or an Azure login"
)


def _code(exc: HttpResponseError) -> str:
    code = getattr(exc, "error_code", None)  # set by the storage SDK on its errors
    return str(getattr(code, "value", code) or "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _etag(value: object) -> str:
    """Quoted, as S3 and Put Blob answer it: listings give it bare, and the state file compares the two."""
    return f'"{str(value or "").strip(chr(34))}"'


def _md5(body: BytesIO) -> bytes:
    with body.getbuffer() as view:
        return hashlib.md5(view, usedforsecurity=False).digest()


async def _content_md5(body: BytesIO, checksum: Checksum | None) -> dict[str, Any]:
    """The transactional MD5 for the service to verify, unless the user asked for no checksum at all."""
    if checksum is None:
        return {}
    size = body.getbuffer().nbytes
    digest = _md5(body) if size <= MD5_INLINE_MAX_BYTES else await anyio.to_thread.run_sync(_md5, body)
    return {"transactional_content_md5": digest}


def _block_id(token: str, number: int) -> str:
    return f"{token}-{number:05d}"


def _split_upload_id(upload_id: str) -> tuple[str, dict[str, str]]:
    token, _, query = upload_id.partition("?")
    return token, dict(parse_qsl(query, keep_blank_values=True))


@dataclass(frozen=True, slots=True)
class AzureConnection:
    """The clients of one account, shared by every upload of an ``Uploader``.

    ``service`` carries the data; ``preflight`` is the same account for the checks before a run. ``secrets``
    (the account key, the SAS) are scrubbed from every message.
    """

    service: BlobServiceClient
    preflight: BlobServiceClient
    account_url: str
    secrets: tuple[str, ...] = ()

    def store(self, container: str) -> AzureStore:
        return AzureStore(self, container)


AZURE_HEADER_FIELDS: Final = CONTENT_HEADER_FIELDS | {"access_tier", "encryption_scope", "tagging"}
"""What Azure honours of ``ObjectHeaders``: content settings, the access tier, the encryption scope, index tags."""


@lru_cache(maxsize=256)
def _blob_options(headers: ObjectHeaders) -> Mapping[str, Any]:
    """The SDK's keywords for Put Blob and Put Block List that ``headers`` asks for (read-only: cached)."""
    options: dict[str, Any] = {}
    settings = {name: getattr(headers, name) for name in CONTENT_HEADER_FIELDS if getattr(headers, name)}
    if settings:
        options["content_settings"] = ContentSettings(**settings)
    if headers.access_tier is not None:
        options["standard_blob_tier"] = StandardBlobTier(headers.access_tier)
    if headers.encryption_scope is not None:
        options["encryption_scope"] = headers.encryption_scope
    if headers.tagging is not None:
        options["tags"] = dict(parse_qsl(headers.tagging, keep_blank_values=True))
    return options


def _block_options(headers: ObjectHeaders) -> dict[str, Any]:
    """Put Block's: a block is written with the encryption scope its commit names."""
    return {"encryption_scope": headers.encryption_scope} if headers.encryption_scope is not None else {}


class AzureStore:
    """``ObjectStore`` for one Azure Blob Storage container over an ``AzureConnection``."""

    def __init__(self, connection: AzureConnection, container: str) -> None:
        self.container = container
        self._client: ContainerClient = connection.service.get_container_client(container)
        self._preflight: ContainerClient = connection.preflight.get_container_client(container)
        self._account_url = connection.account_url
        self._redact = Redactor(connection.secrets)
        self.location = f"{connection.account_url.rstrip('/')}/{container}"
        self.full_object_checksums = False
        self.lists_incomplete_uploads = False
        self.header_fields = AZURE_HEADER_FIELDS

    def _object_error(self, operation: str, exc: Exception) -> NoReturn:
        with self._redact.scrubbing():
            if isinstance(exc, ClientAuthenticationError):  # a token or SAS expiring mid-run
                raise credentials_rejected(operation, _first_line(exc)) from exc
            if isinstance(exc, HttpResponseError) and exc.status_code is not None:
                code, status = _code(exc), int(exc.status_code)
                if status == 400 and code not in _CODES.verification and "md5" in str(exc).lower():
                    raise VerificationError(f"{operation}: the store refused the body's MD5 ({code})") from exc
                raise answer_error(operation, status, code, f"{code or status}: {_first_line(exc)}", _CODES) from exc
            # Connection refused or reset, timeouts, a body cut short: all worth another try.
            retryable = isinstance(exc, ServiceRequestError | ServiceResponseError)
            raise request_failed(operation, _first_line(exc), retryable=retryable) from exc

    async def check_readable(self) -> None:
        with self._redact.scrubbing():
            await self._check_container()

    async def _check_container(self) -> None:
        try:
            properties = await self._preflight.get_container_properties()
        except ResourceNotFoundError as exc:
            raise BucketError(f"container {self.container!r} does not exist at {self._account_url}") from exc
        except ClientAuthenticationError as exc:
            code = _code(exc) if isinstance(exc, HttpResponseError) and exc.status_code else ""
            if not code:  # no answer from the service: no credential could be obtained at all
                raise CredentialsError(f"{_NO_CREDENTIALS_HINT} ({_first_line(exc)})") from exc
            raise CredentialsError(
                f"the credentials were rejected ({code}): check the account key, SAS token or Azure login"
            ) from exc
        except ServiceRequestError as exc:
            raise EndpointError(f"cannot reach {self._account_url}: {_first_line(exc)}") from exc
        except HttpResponseError as exc:
            code = _code(exc)
            if code in _DENIED_CODES or exc.status_code == 403:
                raise CredentialsError(
                    f"access to container {self.container!r} denied ({code or 403}): the credentials lack permission"
                ) from exc
            if not code:  # no storage error document: a proxy, an HTML page, another service
                raise EndpointError(f"{self._account_url} does not answer like Azure Blob Storage") from exc
            raise BucketError(f"cannot use container {self.container!r}: {code}: {_first_line(exc)}") from exc
        except AzureError as exc:
            raise EndpointError(f"cannot talk to {self._account_url}: {_first_line(exc)}") from exc
        if properties.public_access:
            raise BucketError(
                f"container {self.container!r} allows anonymous read access ({properties.public_access}); "
                "async-uploader only uploads to private containers"
            )

    async def check_writable(self, probe_key: str, *, headers: ObjectHeaders = NO_HEADERS) -> None:
        # Writing is proven without an object: one byte staged as a block that is never committed (it expires
        # with the uncommitted blocks). Shielded, like S3's probe, so a cancellation cannot cut it in half.
        try:
            with anyio.CancelScope(shield=True):
                await self._preflight.get_blob_client(probe_key).stage_block(
                    PROBE_BLOCK_ID, b"\0", length=1, **_block_options(headers)
                )
        except ClientAuthenticationError as exc:
            message = f"these credentials cannot write to container {self.container!r}: {_first_line(exc)}"
            raise BucketError(self._redact(message)) from exc
        except HttpResponseError as exc:
            message = f"these credentials cannot write to container {self.container!r}: {_code(exc) or exc.status_code}"
            raise BucketError(self._redact(message)) from exc
        except AzureError as exc:
            raise EndpointError(self._redact(f"cannot talk to {self._account_url}: {_first_line(exc)}")) from exc

    async def put_object(
        self,
        key: str,
        body: BytesIO,
        *,
        checksum: Checksum | None,
        metadata: Mapping[str, str],
        headers: ObjectHeaders = NO_HEADERS,
    ) -> StoredObject:
        size = body.getbuffer().nbytes
        md5 = await _content_md5(body, checksum)
        try:
            response = await self._client.get_blob_client(key).upload_blob(
                body, length=size, overwrite=True, metadata=dict(metadata), **md5, **_blob_options(headers)
            )
        except AzureError as exc:
            self._object_error("PutBlob", exc)
        # The service refuses a body whose MD5 is not the one sent: the whole object was checked.
        return StoredObject(etag=_etag(response.get("etag")), checksum=None, body_verified=bool(md5))

    async def create_multipart(
        self,
        key: str,
        *,
        metadata: Mapping[str, str],
        checksum: Algorithm | None,
        full_object: bool,
        headers: ObjectHeaders = NO_HEADERS,
    ) -> str:
        # Nothing exists on the service until a block is staged; the metadata travels in the id to the commit
        # (the headers come again with the completion).
        token = uuid.uuid4().hex[:16]
        return f"{token}?{urlencode(dict(metadata))}"

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
        token, _ = _split_upload_id(upload_id)
        block_id = _block_id(token, number)
        md5 = await _content_md5(body, checksum)
        size = body.getbuffer().nbytes
        try:
            await self._client.get_blob_client(key).stage_block(
                block_id, body, length=size, **md5, **_block_options(headers)
            )
        except AzureError as exc:
            self._object_error(f"PutBlock {number}", exc)
        return UploadedPart(number=number, etag=block_id, checksum=checksum)

    async def complete_multipart(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[UploadedPart],
        *,
        full_checksum: Checksum | None,
        headers: ObjectHeaders = NO_HEADERS,
    ) -> StoredObject:
        _, metadata = _split_upload_id(upload_id)
        blocks = [BlobBlock(block_id=part.etag) for part in sorted(parts, key=lambda p: p.number)]
        try:
            response = await self._client.get_blob_client(key).commit_block_list(
                blocks, metadata=metadata, **_blob_options(headers)
            )
        except AzureError as exc:
            self._object_error("PutBlockList", exc)
        return StoredObject(etag=_etag(response.get("etag")), checksum=None)

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        """Nothing to delete: the staged blocks expire seven days after staging (or at the blob's next commit),
        and deleting the blob would destroy the object already there."""

    async def incomplete_uploads(self, prefix: str) -> AsyncIterator[IncompleteUpload]:
        """None: uncommitted blocks are listed blob by blob only (see ``lists_incomplete_uploads``)."""
        none: tuple[IncompleteUpload, ...] = ()
        for upload in none:
            yield upload

    async def list_parts(self, key: str, upload_id: str, *, headers: ObjectHeaders = NO_HEADERS) -> list[StoredPart]:
        """The upload's staged blocks (from the blob's uncommitted block list)."""
        token, _ = _split_upload_id(upload_id)
        try:
            _, uncommitted = await self._client.get_blob_client(key).get_block_list("uncommitted")
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            self._object_error("GetBlockList", exc)
        found: list[StoredPart] = []
        for block in uncommitted:
            name, _, number = str(block.id).rpartition("-")
            if name == token and number.isdigit():
                found.append(StoredPart(int(number), int(block.size), str(block.id), None))
        return found

    async def head_object(self, key: str, *, headers: ObjectHeaders = NO_HEADERS) -> ObjectInfo | None:
        try:
            properties = await self._client.get_blob_client(key).get_blob_properties()
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            self._object_error("GetBlobProperties", exc)
        md5 = _hex(properties.content_settings.content_md5)
        return ObjectInfo(
            key, int(properties.size), _etag(properties.etag), dict(properties.metadata or {}), content_md5=md5
        )

    async def delete_objects(self, keys: Sequence[str]) -> list[DeleteFailure]:
        """Blob batch requests of ``BATCH_DELETE_BLOBS`` each, with the blobs' snapshots (a blob that has some
        cannot be deleted alone); a blob already gone counts as deleted."""
        failures: list[DeleteFailure] = []
        for start in range(0, len(keys), BATCH_DELETE_BLOBS):
            batch = keys[start : start + BATCH_DELETE_BLOBS]
            try:
                answers = await self._client.delete_blobs(
                    *batch, delete_snapshots="include", raise_on_any_failure=False
                )
                # One answer a blob, in order: its status and, for a refusal, the service's error code.
                statuses = [(int(a.status_code), a.headers.get("x-ms-error-code") or "") async for a in answers]
            except AzureError as exc:
                self._object_error("BlobBatch", exc)
            if len(statuses) != len(batch):  # the whole batch refused (an emulator that cannot read it): none gone
                statuses = [statuses[0] if statuses else (500, "")] * len(batch)
            for key, (status, code) in zip(batch, statuses, strict=True):
                if status // 100 != 2 and status != 404:
                    reason = f"{code or 'HTTP'} ({status})"
                    failures.append(DeleteFailure(key, reason, retryable=status >= 500 or status == 429))
        return failures

    async def list_objects(self, prefix: str, *, recursive: bool = True) -> AsyncIterator[ObjectInfo]:
        listing = (
            self._client.list_blobs(name_starts_with=prefix)
            if recursive
            else self._client.walk_blobs(name_starts_with=prefix, delimiter="/")
        )
        try:
            async for item in listing:
                if isinstance(item, BlobProperties):  # not a BlobPrefix (a "folder" of a walk)
                    md5 = item.content_settings.content_md5  # a blob stored by one put has it
                    yield ObjectInfo(item.name, int(item.size), _etag(item.etag), {}, content_md5=_hex(md5))
        except AzureError as exc:
            self._object_error("ListBlobs", exc)


def _hex(md5: bytes | bytearray | None) -> str | None:
    """A blob's ``Content-MD5`` (raw bytes, as the SDK gives it) in hex, as S3 ETags are; ``None`` if it has none."""
    return bytes(md5).hex() if md5 else None


def _without_query(url: str) -> tuple[str, str]:
    """``url`` without its query string (a SAS), and that query."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="", fragment="")), parts.query


def _connection_string_secrets(text: str) -> tuple[str, dict[str, str]]:
    fields = {
        name.strip().lower(): value.strip()
        for name, sep, value in (part.partition("=") for part in text.split(";"))
        if sep
    }
    if not (fields.get("accountkey") or fields.get("sharedaccesssignature")):
        raise ConfigError(
            f"{CONNECTION_STRING_ENV} has neither an AccountKey nor a SharedAccessSignature: "
            "anonymous access is never used"
        )
    return fields.get("accountkey") or fields.get("sharedaccesssignature") or "", fields


def _client_options(options: ConnectOptions) -> dict[str, Any]:
    return {
        "connection_timeout": options.connect_timeout_s,
        "read_timeout": options.read_timeout_s,
        "retry_policy": LinearRetry(backoff=RETRY_BACKOFF_S, random_jitter_range=1, retry_total=1),
        "max_single_put_size": MAX_SINGLE_PUT_BYTES,
    }


async def _identity_credential(stack: AsyncExitStack) -> Any:
    try:
        from azure.identity.aio import DefaultAzureCredential
    except ImportError as exc:
        raise ConfigError(
            "--account-url without a SAS token signs in with azure-identity, which is missing: "
            "pip install 'async-uploader[azure]', or give a SAS token"
        ) from exc
    return await stack.enter_async_context(DefaultAzureCredential())


@asynccontextmanager
async def connect(options: ConnectOptions) -> AsyncIterator[AzureConnection]:
    """The ``az://`` provider: clients for the account of ``options.endpoint_url`` (a SAS in its query or in
    ``AZURE_STORAGE_SAS_TOKEN``, else ``DefaultAzureCredential``), or of ``AZURE_STORAGE_CONNECTION_STRING``."""
    if options.request_payer is not None:  # refused before any request: never a run that silently goes without
        raise ConfigError("--request-payer: not supported for az:// destinations (Azure has no requester pays)")
    async with AsyncExitStack() as stack:
        clients: list[BlobServiceClient] = []
        try:
            if options.endpoint_url:
                account_url, sas = _without_query(options.endpoint_url)
                sas = sas or os.environ.get(SAS_TOKEN_ENV, "").lstrip("?")
                secrets = tuple(value for name, value in parse_qsl(sas) if name == "sig")
                credential = sas or await _identity_credential(stack)
                for _ in range(2):
                    clients.append(BlobServiceClient(account_url, credential=credential, **_client_options(options)))
            else:
                text = os.environ.get(CONNECTION_STRING_ENV)
                if not text:
                    raise ConfigError(_NO_CREDENTIALS_HINT)
                secret, _ = _connection_string_secrets(text)
                secrets = (secret,)
                for _ in range(2):
                    clients.append(BlobServiceClient.from_connection_string(text, **_client_options(options)))
                account_url, _ = _without_query(clients[0].url)
        except ValueError as exc:  # the SDK's complaint about a malformed URL or connection string
            raise ConfigError(f"invalid Azure account URL or connection string: {exc}") from exc
        for client in clients:
            await stack.enter_async_context(client)
        yield AzureConnection(clients[0], clients[1], account_url.rstrip("/"), secrets)
