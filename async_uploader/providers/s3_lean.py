"""The lean data path: ``PutObject`` and ``UploadPart`` as one signed HTTP request each, without botocore.

botocore spends ~1.5-2 ms of CPU per request on machinery a body upload does not need (event hooks, user-agent
assembly, endpoint rules, its signer, response parsing); on a machine where client and server share the cores,
that CPU *is* the upload speed for small files. Here a request is: the URL (learned once from the aiobotocore
client), headers, a SigV4 signature over them (``sigv4``), one aiohttp request on a pool shared by the run.

Everything else (credentials, including refreshable ones; the control plane; the mapping of errors to the
uploader's) stays with ``s3.py`` and aiobotocore. Bodies are sent as they are, with ``UNSIGNED-PAYLOAD`` and a
signed ``x-amz-checksum-crc32`` header the server verifies; no ``Expect: 100-continue``, no ACL header, ever.
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

import aiohttp
import yarl

from .sigv4 import SigV4Signer, amz_timestamp, canonical_query, host_header, quote_key

# A pooled connection the server closed while it sat idle fails at once on reuse; one more try, on a fresh
# connection, is what botocore does too. Everything else is the engine's retry layer's to decide.
STALE_CONNECTION_ATTEMPTS: Final = 2
PROBE_KEY: Final = "async-uploader-probe"
USER_AGENT: Final = "async-uploader (lean data path)"
_SKIPPED_AUTO_HEADERS: Final = ("User-Agent", "Content-Type", "Accept", "Accept-Encoding")


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


class TransportError(Exception):
    """No answer: the connection failed, was reset or timed out. Worth another try."""


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
    """One aiohttp session and connection pool for the data path of a run, opened on first use."""

    def __init__(
        self, *, max_connections: int, connect_timeout_s: float, read_timeout_s: float, verify: bool | str = True
    ) -> None:
        self._max_connections = max_connections
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s)
        self._verify = verify
        self._session: aiohttp.ClientSession | None = None

    def _opened(self, https: bool) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                ssl=ssl_context(self._verify) if https else False,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=False,
                skip_auto_headers=_SKIPPED_AUTO_HEADERS,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def put(self, url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, Mapping[str, str], bytes]:
        """One PUT: status, headers and the whole (small) response body. Raises ``TransportError``."""
        session = self._opened(url.startswith("https:"))
        try:
            async with session.put(yarl.URL(url, encoded=True), data=body, headers=headers) as response:
                return response.status, response.headers, await response.read()
        except TimeoutError as exc:
            raise TransportError(f"no answer within the timeout ({type(exc).__name__})") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


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
        checksum: str,
        metadata: Mapping[str, str] | None = None,
        query: Sequence[tuple[str, str]] = (),
    ) -> Mapping[str, str]:
        """PUT ``body`` at ``key`` (with ``query`` for a part); the response headers, or ``ErrorResponse``."""
        endpoint = self._endpoint
        path = endpoint.bucket_path + quote_key(key)
        canonical = canonical_query(query) if query else ""
        url = f"{endpoint.origin}{path}?{canonical}" if canonical else endpoint.origin + path
        data = body.getvalue()  # the BytesIO's own bytes, without a copy (see chunks.py)
        for attempt in range(1, STALE_CONNECTION_ATTEMPTS + 1):
            headers = {
                "host": endpoint.host,
                "content-length": str(len(data)),
                "x-amz-checksum-crc32": checksum,
            }
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
                status, response_headers, response_body = await self._pool.put(url, headers, data)
            except TransportError:
                if attempt == STALE_CONNECTION_ATTEMPTS:
                    raise
                continue
            if status // 100 == 2:
                return response_headers
            raise _error_response(status, response_body)
        raise AssertionError("unreachable")
