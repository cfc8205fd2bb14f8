"""The lean data path: ``PutObject`` and ``UploadPart`` as one signed HTTP request each, without botocore.

botocore spends ~1.5-2 ms of CPU per request on machinery a body upload does not need (event hooks, user-agent
assembly, endpoint rules, its signer, response parsing); on a machine where client and server share the cores,
that CPU *is* the upload speed for small files. Here a request is: the URL (learned once from the aiobotocore
client), headers, a SigV4 signature over them (``sigv4``), one request on a keep-alive pool shared by the run
(``http1``).

So do a multipart upload's create, complete, abort and ListParts: importing aiobotocore and building its client
costs ~0.4 s of CPU before a large file's first part could leave. Credentials (refreshable ones included), the
endpoint rules and the mapping of errors to the uploader's stay with ``s3.py`` and botocore.

Bodies are sent as they are, with ``UNSIGNED-PAYLOAD`` and a signed ``x-amz-checksum-*`` header the server
verifies (none with ``--checksum none``); no ``Expect: 100-continue``, no ACL header, ever.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from io import BytesIO
from typing import Final, Protocol
from urllib.parse import unquote_plus, urlsplit
from xml.etree import ElementTree

from ..source.checksum import Checksum
from .base import ObjectInfo
from .http1 import Http1Pool, Response, TransportError
from .sigv4 import SigV4Signer, amz_timestamp, canonical_query, host_header, quote_key

# A pooled connection the server closed while it sat idle fails at once on reuse; one more try, on a fresh
# connection, is what botocore does too. Everything else is the engine's retry layer's to decide.
STALE_CONNECTION_ATTEMPTS: Final = 2
PROBE_KEY: Final = "async-uploader-probe"
USER_AGENT: Final = "async-uploader (lean data path)"
META: Final = "x-amz-meta-"
S3_XMLNS: Final = "http://s3.amazonaws.com/doc/2006-03-01/"


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

    @classmethod
    def from_bucket_request(cls, url: str, authorization: str, bucket: str) -> BucketEndpoint | None:
        """The endpoint of a bucket-level request botocore signed (the preflight's ``HeadBucket``): a path of
        ``/bucket`` is path style, ``/`` a virtual-hosted bucket. Learning it there costs no request."""
        path = urlsplit(url).path.rstrip("/")
        if path != "" and not path.endswith(f"/{quote_key(bucket)}"):
            return None
        as_object = f"{url.partition('?')[0].rstrip('/')}/{quote_key(PROBE_KEY)}"
        return cls.from_signed_request(as_object, authorization)

    @classmethod
    def path_style(cls, endpoint_url: str, bucket: str, region: str) -> BucketEndpoint:
        """A bucket of a user-given endpoint, addressed as botocore does with ``addressing_style: path``:
        ``{scheme}://{host}{endpoint path}/{bucket}/{key}``, any user info left out."""
        parts = urlsplit(endpoint_url)
        return cls(
            origin=f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}",
            host=host_header(parts),
            bucket_path=f"{parts.path.rstrip('/')}/{quote_key(bucket)}/",
            region=region,
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

    async def request(self, origin: str, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """One request to ``origin`` + ``target`` (encoded path and query). Raises ``TransportError``."""
        return await self._pool(origin).request(method, target, headers, body)

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
    """Signed requests to one bucket: the bodies of ``PutObject`` and ``UploadPart``, and listing pages."""

    def __init__(self, pool: LeanPool, endpoint: BucketEndpoint, credentials: CredentialSource) -> None:
        self._pool = pool
        self._endpoint = endpoint
        self._credentials = credentials
        self._signer = SigV4Signer(endpoint.region)
        self._stamped_second = -1
        self._stamp = ""

    def _timestamp(self) -> str:
        """``x-amz-date`` for now; formatted once a second, not once a request."""
        second = int(time.time())
        if second != self._stamped_second:
            self._stamp = amz_timestamp(second)
            self._stamped_second = second
        return self._stamp

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
        path = self._endpoint.bucket_path + quote_key(key)
        headers = metadata_headers(metadata)
        checksum_header = f"x-amz-checksum-{checksum.algorithm.value}" if checksum is not None else None
        if checksum is not None and checksum_header is not None:
            headers[checksum_header] = checksum.value
        data = body.getvalue()  # the BytesIO's own bytes, without a copy (see source/reader.py)
        response = await self._request("PUT", path, canonical_query(query) if query else "", headers, data)
        returned = response.headers.get(checksum_header) if checksum_header is not None else None
        return PutAnswer(response.headers.get("etag"), returned)

    async def head(self, key: str) -> ObjectInfo | None:
        """``HeadObject``: the object's size, ETag and user metadata (by lower-case name without the
        ``x-amz-meta-`` prefix, as botocore gives it); ``None`` if there is no such key. What a re-run without
        a state file asks of every object the listing shows (~0.3 ms of CPU here, ~2 in botocore)."""
        try:
            response = await self._request("HEAD", self._endpoint.bucket_path + quote_key(key), "", {}, b"")
        except ErrorResponse as exc:
            if exc.status == HTTPStatus.NOT_FOUND:
                return None
            raise
        headers = response.headers
        metadata = {name[len(META) :]: value for name, value in headers.items() if name.startswith(META)}
        return ObjectInfo(key, int(headers.get("content-length", "0")), headers.get("etag", ""), metadata)

    async def head_bucket(self) -> None:
        """``HeadBucket``: the preflight's proof that the bucket is there and these credentials may use it."""
        await self._request("HEAD", self._bucket_target(), "", {}, b"")

    async def list_uploads_page(
        self, prefix: str, key_marker: str, upload_id_marker: str
    ) -> tuple[list[tuple[str, str, float]], tuple[str, str] | None]:
        """One ListMultipartUploads page under ``prefix``: ``(key, upload id, initiated)`` rows, and the markers
        of the next page if there is one."""
        query = [("uploads", ""), ("prefix", prefix), ("encoding-type", "url")]
        if key_marker:
            query += [("key-marker", key_marker), ("upload-id-marker", upload_id_marker)]
        response = await self._request("GET", self._bucket_target(), canonical_query(query), {}, b"")
        return parse_uploads(response.body)

    async def list_parts_page(self, key: str, upload_id: str, marker: int) -> tuple[list[dict[str, str]], int | None]:
        """One ListParts page of an open upload, after part ``marker``: each part's fields by name, as botocore
        gives them (``PartNumber``, ``Size``, ``ETag``, ``ChecksumCRC32``...), and the next page's marker."""
        query = [("uploadId", upload_id)] + ([("part-number-marker", str(marker))] if marker else [])
        path = self._endpoint.bucket_path + quote_key(key)
        response = await self._request("GET", path, canonical_query(query), {}, b"")
        return parse_parts(response.body)

    def _bucket_target(self) -> str:
        return self._endpoint.bucket_path.rstrip("/") or "/"

    async def list_page(
        self, prefix: str, *, delimiter: bool, token: str | None, max_keys: int | None = None
    ) -> tuple[list[tuple[str, int, str]], str | None]:
        """One ListObjectsV2 page under ``prefix``: ``(key, size, etag)`` rows and the next page's token.

        botocore's parser spends ~70 us per key on a listing (its generic XML shape walk); here a page of 1,000
        keys is one ElementTree parse. Keys come URL-encoded (``encoding-type=url``, as botocore asks too, so a
        key with control characters survives the XML) and are decoded as botocore decodes them.
        """
        query = [("list-type", "2"), ("prefix", prefix), ("encoding-type", "url")]
        if delimiter:
            query.append(("delimiter", "/"))
        if token is not None:
            query.append(("continuation-token", token))
        if max_keys is not None:
            query.append(("max-keys", str(max_keys)))
        response = await self._request("GET", self._bucket_target(), canonical_query(query), {}, b"")
        return parse_listing(response.body)

    async def create_upload(self, key: str, headers: Mapping[str, str] | None = None) -> tuple[str, bool]:
        """CreateMultipartUpload of ``key`` with ``headers`` (user metadata as ``x-amz-meta-*``, the checksum
        algorithm and type): the upload id, and whether it took a second attempt, whose first may have created
        an upload too."""
        path, query = self._endpoint.bucket_path + quote_key(key), canonical_query([("uploads", "")])
        sent = headers or {}
        retried = False
        try:
            response = await self._request("POST", path, query, sent, b"", attempts=1)
        except TransportError:
            retried = True
            response = await self._request("POST", path, query, sent, b"", attempts=1)
        root = ElementTree.fromstring(response.body)
        upload_id = root.findtext(f"{_namespace(root)}UploadId")
        if not upload_id:
            raise ValueError("CreateMultipartUpload answered without an UploadId")
        return upload_id, retried

    async def complete_upload(
        self, key: str, upload_id: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """CompleteMultipartUpload with ``body`` (``complete_body``): the result's fields by name (``ETag``,
        ``ChecksumCRC32``...). One attempt: the engine decides whether a completion whose answer was lost is
        tried again. An error document in a 200 answer (S3 sends one when it fails after answering has begun)
        is an ``ErrorResponse`` with status 500, as botocore treats it: worth another try."""
        path, query = self._endpoint.bucket_path + quote_key(key), canonical_query([("uploadId", upload_id)])
        response = await self._request("POST", path, query, headers or {}, body, attempts=1)
        root = ElementTree.fromstring(response.body)
        ns = _namespace(root)
        if root.tag == f"{ns}Error":
            raise _error_response(HTTPStatus.INTERNAL_SERVER_ERROR, response.body)
        return _fields(root, ns)

    async def abort_upload(self, key: str, upload_id: str) -> None:
        """AbortMultipartUpload."""
        query = canonical_query([("uploadId", upload_id)])
        await self._request("DELETE", self._endpoint.bucket_path + quote_key(key), query, {}, b"")

    async def _request(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        data: bytes,
        *,
        attempts: int = STALE_CONNECTION_ATTEMPTS,
    ) -> Response:
        """One signed request; the response if its status is 2xx, else ``ErrorResponse``; ``TransportError``."""
        endpoint = self._endpoint
        target = f"{path}?{query}" if query else path
        for attempt in range(1, attempts + 1):
            signed = {"host": endpoint.host, **headers}
            if data or method in ("PUT", "POST"):
                signed["content-length"] = str(len(data))
            credentials = await self._credentials.get_frozen_credentials()  # refreshed here when due
            self._signer.sign(
                method,
                path,
                query,
                signed,
                access_key=credentials.access_key,
                secret_key=credentials.secret_key,
                token=credentials.token,
                timestamp=self._timestamp(),
            )
            signed["user-agent"] = USER_AGENT
            try:
                response = await self._pool.request(endpoint.origin, method, target, signed, data)
            except TransportError:
                if attempt == attempts:
                    raise
                continue
            if response.status // 100 == 2:
                return response
            raise _error_response(response.status, response.body)
        raise AssertionError("unreachable")


def metadata_headers(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """User metadata as the ``x-amz-meta-*`` headers botocore would send (names lower-cased, as S3 keeps them)."""
    return {f"{META}{name.lower()}": value for name, value in (metadata or {}).items()}


def _escape_text(text: str) -> str:
    """XML character data as ElementTree (botocore's serializer) writes it; ``xml.sax.saxutils.escape`` would do
    the same but imports ``urllib.request`` and ``http.client`` (~10 ms of every run's start-up)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def complete_body(parts: Sequence[tuple[int, str, str | None, str | None]]) -> bytes:
    """The CompleteMultipartUpload document for ``(number, etag, checksum element, checksum value)`` rows,
    byte for byte as botocore serializes the aiobotocore path's (``ChecksumCRC32``...; none for ``None``)."""
    rows = []
    for number, etag, element, value in parts:
        checksum = f"<{element}>{_escape_text(value)}</{element}>" if element is not None and value is not None else ""
        rows.append(f"<Part><PartNumber>{number}</PartNumber><ETag>{_escape_text(etag)}</ETag>{checksum}</Part>")
    return f'<CompleteMultipartUpload xmlns="{S3_XMLNS}">{"".join(rows)}</CompleteMultipartUpload>'.encode()


def _url_decoder(root: ElementTree.Element, ns: str) -> Callable[[str], str]:
    """Keys are URL-encoded only where the answer says so (``EncodingType``), as botocore decodes them: a store
    that ignores ``encoding-type=url`` sends them as they are, ``+`` and ``%`` included."""
    return unquote_plus if (root.findtext(f"{ns}EncodingType") or "").strip().lower() == "url" else str


def _fields(element: ElementTree.Element, ns: str) -> dict[str, str]:
    """An element's children's texts by local name, as botocore's parser names a shape's members."""
    return {child.tag[len(ns) :]: child.text or "" for child in element}


def _namespace(root: ElementTree.Element) -> str:
    return root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""


def parse_uploads(body: bytes) -> tuple[list[tuple[str, str, float]], tuple[str, str] | None]:
    """A ListMultipartUploads answer: its uploads, and the next page's key and upload id markers if truncated."""
    root = ElementTree.fromstring(body)
    ns = _namespace(root)
    decode = _url_decoder(root, ns)
    rows = []
    for item in root.iterfind(f"{ns}Upload"):
        initiated = item.findtext(f"{ns}Initiated")
        stamp = datetime.fromisoformat(initiated).timestamp() if initiated else 0.0
        rows.append((decode(item.findtext(f"{ns}Key") or ""), item.findtext(f"{ns}UploadId") or "", stamp))
    if (root.findtext(f"{ns}IsTruncated") or "").strip().lower() != "true":
        return rows, None
    key_marker = decode(root.findtext(f"{ns}NextKeyMarker") or "")
    upload_marker = root.findtext(f"{ns}NextUploadIdMarker") or ""
    if not key_marker and not rows:
        return rows, None  # truncated, yet nothing to go on from: stop rather than ask for the same page forever
    return rows, (key_marker or rows[-1][0], upload_marker or rows[-1][1])


def parse_parts(body: bytes) -> tuple[list[dict[str, str]], int | None]:
    """A ListParts answer: its parts' fields, and the next page's part number marker if truncated."""
    root = ElementTree.fromstring(body)
    ns = _namespace(root)
    parts = [_fields(item, ns) for item in root.iterfind(f"{ns}Part")]
    if (root.findtext(f"{ns}IsTruncated") or "").strip().lower() != "true" or not parts:
        return parts, None  # truncated with no parts: nothing to go on from, so stop rather than loop
    marker = (root.findtext(f"{ns}NextPartNumberMarker") or "").strip() or parts[-1].get("PartNumber", "")
    return parts, int(marker) if marker.isdigit() else None


def parse_listing(body: bytes) -> tuple[list[tuple[str, int, str]], str | None]:
    """A ListObjectsV2 answer (``encoding-type=url``): its objects and the continuation token, if truncated."""
    root = ElementTree.fromstring(body)
    ns = _namespace(root)
    decode = _url_decoder(root, ns)
    rows = [
        (
            decode(item.findtext(f"{ns}Key") or ""),
            int(item.findtext(f"{ns}Size") or 0),
            item.findtext(f"{ns}ETag") or "",
        )
        for item in root.iterfind(f"{ns}Contents")
    ]
    truncated = (root.findtext(f"{ns}IsTruncated") or "").strip().lower() == "true"
    return rows, (root.findtext(f"{ns}NextContinuationToken") if truncated else None)
