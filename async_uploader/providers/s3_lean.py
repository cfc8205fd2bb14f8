"""The lean data path: ``PutObject`` and ``UploadPart`` as one signed HTTP request each, without botocore.

botocore spends ~1.5-2 ms of CPU per request on machinery a body upload does not need (event hooks, user-agent
assembly, endpoint rules, its signer, response parsing); on a machine where client and server share the cores,
that CPU *is* the upload speed for small files. Here a request is: the URL (learned once from the aiobotocore
client), headers, a SigV4 signature over them (``sigv4``), one request on a keep-alive pool shared by the run
(``http1``).

Everything else (credentials, including refreshable ones; the control plane; the mapping of errors to the
uploader's) stays with ``s3.py`` and aiobotocore. Bodies are sent as they are, with ``UNSIGNED-PAYLOAD`` and a
signed ``x-amz-checksum-*`` header the server verifies (none with ``--checksum none``); no ``Expect:
100-continue``, no ACL header, ever.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from io import BytesIO
from typing import Final, Protocol
from urllib.parse import urlsplit
from xml.etree import ElementTree

from ..checksum import Checksum
from .http1 import Http1Pool, Response, TransportError
from .sigv4 import SigV4Signer, amz_timestamp, canonical_query, host_header, quote_key

# A pooled connection the server closed while it sat idle fails at once on reuse; one more try, on a fresh
# connection, is what botocore does too. Everything else is the engine's retry layer's to decide.
STALE_CONNECTION_ATTEMPTS: Final = 2
PROBE_KEY: Final = "async-uploader-probe"
USER_AGENT: Final = "async-uploader (lean data path)"


class FrozenCredentials(Protocol):
    access_key: str
    secret_key: str
    token: str | None


class CredentialSource(Protocol):
    """botocore's (refreshable) credentials: asked before every request, so a rotation is picked up."""

    async def get_frozen_credentials(self) -> FrozenCredentials: ...


class ErrorResponse(Exception):
    """The store answered with an error status; ``code`` and ``message`` from its XML error document."""

    def __init__(self, status: int, code: str, message: str | None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class BucketEndpoint:
    """Where a bucket's objects are: ``{origin}{bucket_path}{quoted key}``, signed for ``region``.

    Learned from a request botocore signed, so it follows botocore's endpoint rules (path style for custom
    endpoints, virtual-hosted buckets on AWS, FIPS and dual-stack settings) without reimplementing them. (A
    presigned URL would not do: botocore presigns with SigV2 in us-east-1 and with the global endpoint
    elsewhere.)
    """

    origin: str
    host: str
    bucket_path: str
    region: str

    @classmethod
    def from_signed_request(cls, url: str, authorization: str, probe_key: str = PROBE_KEY) -> BucketEndpoint | None:
        """The endpoint of a request botocore signed (SigV4, header-signed) for ``probe_key``; ``None`` if it
        is not one this path can follow."""
        parts = urlsplit(url)
        quoted = quote_key(probe_key)
        algorithm, _, fields = authorization.partition(" ")
        credential = fields.partition("Credential=")[2].partition(",")[0].split("/")
        if (
            algorithm != "AWS4-HMAC-SHA256"
            or not parts.path.endswith(f"/{quoted}")
            or len(credential) != 5
            or credential[3] != "s3"
        ):
            return None
        return cls(
            origin=f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}",
            host=host_header(parts),
            bucket_path=parts.path[: -len(quoted)],
            region=credential[2],
        )


def ssl_context(verify: bool | str) -> ssl.SSLContext:
    """The TLS settings botocore would use: its CA bundle (a path), or no verification when ``verify`` is false."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)


class LeanPool:
    """The data path's connections for a run: one keep-alive pool per origin, opened on first use."""

    def __init__(
        self, *, max_connections: int, connect_timeout_s: float, read_timeout_s: float, verify: bool | str = True
    ) -> None:
        self._max_connections = max_connections
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._pools: dict[str, Http1Pool] = {}

    def _pool(self, origin: str) -> Http1Pool:
        pool = self._pools.get(origin)
        if pool is None:
            parts = urlsplit(origin)
            https = parts.scheme == "https"
            if https and self._ssl is None:
                self._ssl = ssl_context(self._verify)
            pool = self._pools[origin] = Http1Pool(
                scheme=parts.scheme,
                host=parts.hostname or "",
                port=parts.port or (443 if https else 80),
                max_connections=self._max_connections,
                connect_timeout_s=self._connect_timeout_s,
                read_timeout_s=self._read_timeout_s,
                ssl_context=self._ssl,
            )
        return pool

    async def put(self, origin: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """One PUT of ``body`` to ``origin`` + ``target`` (encoded path and query). Raises ``TransportError``."""
        return await self._pool(origin).request("PUT", target, headers, body)

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


@dataclass(frozen=True, slots=True)
class PutAnswer:
    etag: str | None
    checksum: str | None
    """The checksum the store computed, in the algorithm of the one sent (``x-amz-checksum-...``), if it says."""


def _error_response(status: int, body: bytes) -> ErrorResponse:
    """The error document's Code and Message; without one, the status (as botocore reports it)."""
    code, message = str(status), None
    try:
        root = ElementTree.fromstring(body) if body else None
    except ElementTree.ParseError:
        root = None
    if root is not None:
        code = root.findtext("Code") or code
        message = root.findtext("Message")
    if message is None:
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = None
    return ErrorResponse(status, code, message)


class LeanS3:
    """Signed PUTs of bodies to one bucket: what ``PutObject`` and ``UploadPart`` need, nothing more."""

    def __init__(self, pool: LeanPool, endpoint: BucketEndpoint, credentials: CredentialSource) -> None:
        self._pool = pool
        self._endpoint = endpoint
        self._credentials = credentials
        self._signer = SigV4Signer(endpoint.region)

    async def put(
        self,
        key: str,
        body: BytesIO,
        *,
        checksum: Checksum | None,
        metadata: Mapping[str, str] | None = None,
        query: Sequence[tuple[str, str]] = (),
    ) -> PutAnswer:
        """PUT ``body`` at ``key`` (with ``query`` for a part); the store's ETag and checksum, or ``ErrorResponse``."""
        endpoint = self._endpoint
        path = endpoint.bucket_path + quote_key(key)
        canonical = canonical_query(query) if query else ""
        target = f"{path}?{canonical}" if canonical else path
        data = body.getvalue()  # the BytesIO's own bytes, without a copy (see chunks.py)
        checksum_header = f"x-amz-checksum-{checksum.algorithm.value}" if checksum is not None else None
        for attempt in range(1, STALE_CONNECTION_ATTEMPTS + 1):
            headers = {"host": endpoint.host, "content-length": str(len(data))}
            if checksum is not None and checksum_header is not None:
                headers[checksum_header] = checksum.value
            for name, value in (metadata or {}).items():
                headers[f"x-amz-meta-{name.lower()}"] = value
            credentials = await self._credentials.get_frozen_credentials()  # refreshed here when due
            self._signer.sign(
                "PUT",
                path,
                canonical,
                headers,
                access_key=credentials.access_key,
                secret_key=credentials.secret_key,
                token=credentials.token,
                timestamp=amz_timestamp(time.time()),
            )
            headers["user-agent"] = USER_AGENT
            try:
                response = await self._pool.put(endpoint.origin, target, headers, data)
            except TransportError:
                if attempt == STALE_CONNECTION_ATTEMPTS:
                    raise
                continue
            if response.status // 100 == 2:
                returned = response.headers.get(checksum_header) if checksum_header is not None else None
                return PutAnswer(response.headers.get("etag"), returned)
            raise _error_response(response.status, response.body)
        raise AssertionError("unreachable")
