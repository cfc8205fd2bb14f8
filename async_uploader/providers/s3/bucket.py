"""One bucket's REST API as signed HTTP/1.1 requests, without botocore: the direct path's requests.

botocore spends ~1.5-2 ms of CPU per request on machinery an upload does not need (event hooks, user-agent
assembly, endpoint rules, its signer, response parsing); where client and server share the cores, that CPU *is*
the upload speed for small files. Here a request is: the URL (``BucketEndpoint``), headers, a SigV4 signature over
them (``sigv4``), one request on the connection's keep-alive pools (``http``).

Bodies are sent as they are, with ``UNSIGNED-PAYLOAD`` and a signed ``x-amz-checksum-*`` header the server
verifies (none with ``--checksum none``); no ``Expect: 100-continue``; an ACL header only where the run asks for one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from io import BytesIO
from typing import Final

from ...source.checksum import Algorithm, Checksum, checksum_of
from ..base import ObjectInfo, StoredObject
from .credentials import CredentialSource
from .http import HttpClient, Response, TransportError
from .sigv4 import SigV4Signer, amz_timestamp, canonical_query, quote_key
from .wire import (
    CHECKSUM_HEADERS,
    CHECKSUM_MODE_HEADERS,
    BucketEndpoint,
    ErrorResponse,
    delete_body,
    error_response,
    metadata_headers,
    parse_completion,
    parse_delete_errors,
    parse_listing,
    parse_parts,
    parse_upload_id,
    parse_uploads,
    redirect_region,
    user_metadata,
    whole_checksum,
)

log = logging.getLogger(__name__)

# Attempts at a request that got no answer, as botocore's client here makes (``clients.MAX_REQUEST_ATTEMPTS``). A
# pooled connection found dead is not one of them: the pool sends the request again on a new connection itself
# (``http``). Everything else is the engine's retry layer's to decide.
STALE_CONNECTION_ATTEMPTS: Final = 2
USER_AGENT: Final = "async-uploader (lean data path)"
REQUEST_PAYER_HEADER: Final = "x-amz-request-payer"


class BucketClient:
    """Signed requests to one bucket. Each raises ``ErrorResponse`` for an error answer and ``TransportError``
    for none; those that parse an answer, ``ElementTree.ParseError`` or ``ValueError`` for one that makes no
    sense."""

    def __init__(
        self,
        http: HttpClient,
        endpoint: BucketEndpoint,
        credentials: CredentialSource,
        *,
        request_payer: str | None = None,
    ) -> None:
        self._http = http
        self._endpoint = endpoint
        self._credentials = credentials
        self._signer = SigV4Signer(endpoint.region)
        self._stamped_second = -1
        self._stamp = ""
        # Headers every request carries, signed (as botocore signs ``RequestPayer``'s): on a requester-pays bucket
        # the preflight's and the listings' too.
        self._always: dict[str, str] = {REQUEST_PAYER_HEADER: request_payer} if request_payer else {}

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
        extra: Mapping[str, str] | None = None,
    ) -> StoredObject:
        """PUT ``body`` at ``key`` (with ``query`` for a part, ``extra`` headers: ``wire.object_headers``): the
        store's ETag, and its checksum in the algorithm of the one sent (``x-amz-checksum-...``) if it says."""
        path = self._endpoint.bucket_path + quote_key(key)
        headers = metadata_headers(metadata)
        if extra:
            headers.update(extra)
        checksum_header = f"x-amz-checksum-{checksum.algorithm.value}" if checksum is not None else None
        if checksum is not None and checksum_header is not None:
            headers[checksum_header] = checksum.value
        data = body.getvalue()  # the BytesIO's own bytes, without a copy (see source/reader.py)
        response = await self._request("PUT", path, canonical_query(query) if query else "", headers, data)
        returned = response.headers.get(checksum_header) if checksum_header is not None else None
        return StoredObject(response.headers.get("etag", ""), returned)

    async def head(
        self, key: str, extra: Mapping[str, str] | None = None, *, checksums: bool = False
    ) -> ObjectInfo | None:
        """``HeadObject``: the object's size, ETag and user metadata; ``None`` if there is no such key. What a
        re-run without a state file asks of every object the listing shows (~0.3 ms of CPU here, ~2 in botocore).
        With ``checksums``, in checksum mode (``ChecksumMode="ENABLED"``): the whole object's stored checksum too."""
        try:
            path = self._endpoint.bucket_path + quote_key(key)
            sent = {**(extra or {}), **CHECKSUM_MODE_HEADERS} if checksums else extra or {}
            response = await self._request("HEAD", path, "", sent, b"")
        except ErrorResponse as exc:
            if exc.status == HTTPStatus.NOT_FOUND:
                return None
            raise
        headers = response.headers
        size, etag = int(headers.get("content-length", "0")), headers.get("etag", "")
        if not checksums:
            return ObjectInfo(key, size, etag, user_metadata(headers))
        found = whole_checksum(headers, names=CHECKSUM_HEADERS, type_name="x-amz-checksum-type")
        return ObjectInfo(key, size, etag, user_metadata(headers), checksum=found)

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

    async def list_parts_page(
        self, key: str, upload_id: str, marker: int, extra: Mapping[str, str] | None = None
    ) -> tuple[list[dict[str, str]], int | None]:
        """One ListParts page of an open upload, after part ``marker``: each part's fields by name, as botocore
        gives them (``PartNumber``, ``Size``, ``ETag``, ``ChecksumCRC32``...), and the next page's marker."""
        query = [("uploadId", upload_id)] + ([("part-number-marker", str(marker))] if marker else [])
        path = self._endpoint.bucket_path + quote_key(key)
        response = await self._request("GET", path, canonical_query(query), extra or {}, b"")
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
        return parse_upload_id(response.body), retried

    async def complete_upload(
        self, key: str, upload_id: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """CompleteMultipartUpload with ``body`` (``wire.complete_body``): the result's fields by name (``ETag``,
        ``ChecksumCRC32``...). One attempt: the engine decides whether a completion whose answer was lost is
        tried again."""
        path, query = self._endpoint.bucket_path + quote_key(key), canonical_query([("uploadId", upload_id)])
        response = await self._request("POST", path, query, headers or {}, body, attempts=1)
        return parse_completion(response.body)

    async def abort_upload(self, key: str, upload_id: str) -> None:
        """AbortMultipartUpload."""
        query = canonical_query([("uploadId", upload_id)])
        await self._request("DELETE", self._endpoint.bucket_path + quote_key(key), query, {}, b"")

    async def delete_keys(self, keys: Sequence[str]) -> list[tuple[str, str, str]]:
        """DeleteObjects of ``keys`` (at most 1,000), quiet: ``(key, code, message)`` for each not deleted. S3
        requires a checksum of the body: a CRC32 in ``x-amz-checksum-crc32``, as botocore sends by default."""
        body = delete_body(keys)
        headers = {
            "x-amz-checksum-crc32": checksum_of(Algorithm.CRC32, body).value,
            "x-amz-sdk-checksum-algorithm": "CRC32",
        }
        response = await self._request("POST", self._bucket_target(), canonical_query([("delete", "")]), headers, body)
        return parse_delete_errors(response.body)

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
        """One signed request; the response if its status is 2xx, else ``ErrorResponse``; ``TransportError``.

        An answer saying the bucket is in another region is followed at once, as botocore follows it: signed
        again for that region (at that region's endpoint on AWS itself), once, and every later request of this
        bucket client goes there directly.
        """
        target = f"{path}?{query}" if query else path
        tries = 0
        redirected = False
        while True:
            endpoint = self._endpoint
            signed = {"host": endpoint.host, **self._always, **headers}
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
            tries += 1
            try:
                response = await self._http.request(endpoint.origin, method, target, signed, data)
            except TransportError:
                if tries >= attempts:
                    raise
                continue
            if response.status // 100 == 2:
                return response
            error = error_response(response.status, response.body, response.headers)
            region = None if redirected else redirect_region(method, error, endpoint.region)
            if region is None:
                raise error
            self._follow(region)
            redirected = True

    def _follow(self, region: str) -> None:
        """Sign for ``region`` from now on (a request in flight signed for the old one is redirected too)."""
        if self._endpoint.region != region:
            log.info(
                "bucket in region %s, not %s: its requests are signed for %s", region, self._endpoint.region, region
            )
            self._endpoint = self._endpoint.in_region(region)
            self._signer = SigV4Signer(region)
