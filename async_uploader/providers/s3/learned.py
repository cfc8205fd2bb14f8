"""The S3 store of a bucket only botocore knows how to reach, whose requests move to the direct path once botocore
has shown the way.

That is a bucket on AWS itself (no endpoint given: botocore's endpoint rules decide, virtual-hosted or not, FIPS,
dual-stack), one reached with the application's client or session, or one whose credentials the connection could
not resolve (the client then says what is wrong). The preflight runs on the client, and its ``HeadBucket`` shows
where the client sends the bucket's requests and how it signs them; the first request after it sets up a
``DirectStore`` at that endpoint, with the client's own credentials (refreshable ones included), or keeps every
request on the client where that cannot be done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from io import BytesIO
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from ...source.checksum import Algorithm, Checksum
from ..base import (
    NO_HEADERS,
    DeleteFailure,
    DeletesObjects,
    IncompleteUpload,
    ObjectHeaders,
    ObjectInfo,
    ObjectStore,
    StoredObject,
    StoredPart,
    UploadedPart,
    guard_secrets,
    head_object_checksum,
)
from .boto import BotoStore
from .bucket import BucketClient
from .http import HttpClient
from .sigv4 import quote_key
from .store import DirectStore
from .wire import PROBE_KEY, S3_HEADER_FIELDS, BucketEndpoint

log = logging.getLogger(__name__)

# Once chosen, the chosen store's own bound methods replace these on the instance: a request then costs no call
# more than on the chosen store itself.
_CHOSEN_METHODS: Final = (
    "put_object",
    "create_multipart",
    "upload_part",
    "complete_multipart",
    "abort_multipart",
    "incomplete_uploads",
    "list_parts",
    "head_object",
    "head_object_checksum",
    "list_objects",
    "delete_objects",
)


def _url_and_authorization(request: Any) -> tuple[str, str]:
    """A request botocore is about to send: its URL and ``Authorization`` header."""
    authorization = request.headers.get("Authorization", b"")
    if isinstance(authorization, bytes):
        authorization = authorization.decode("ascii", "replace")
    return str(request.url), str(authorization)


class LearningStore:
    """``ObjectStore`` for one S3 bucket through ``boto`` until the direct path is learned from it.

    The preflight is ``boto``'s. Every other method chooses, at the first call, the store that serves the bucket
    from then on: a ``DirectStore`` when the client shows a SigV4 header-signed endpoint and has credentials, else
    ``boto`` itself (whose errors then say what is wrong).
    """

    def __init__(self, boto: BotoStore, http: HttpClient, *, request_payer: str | None = None) -> None:
        self._boto = boto
        self._http = http
        self._request_payer = request_payer
        self.location = boto.location
        self.lists_incomplete_uploads = True
        self.header_fields = S3_HEADER_FIELDS
        self._learned: BucketEndpoint | None = None
        self._chosen: ObjectStore | None = None
        self._choosing = asyncio.Lock()

    @property
    def full_object_checksums(self) -> bool:
        """The chosen store's: it is the one that finds out when the bucket's store refuses them."""
        return (self._chosen or self._boto).full_object_checksums

    @full_object_checksums.setter
    def full_object_checksums(self, value: bool) -> None:
        (self._chosen or self._boto).full_object_checksums = value

    async def check_readable(self) -> None:
        seen: list[tuple[str, str]] = []

        def capture(request: Any, **_: Any) -> None:
            seen.append(_url_and_authorization(request))

        with self._boto.redact.scrubbing():
            events = (await self._boto.clients.preflight()).meta.events
        events.register_first("before-send.s3.HeadBucket", capture)
        try:
            await self._boto.check_readable()
        finally:
            events.unregister("before-send.s3.HeadBucket", capture)
        if seen and self._chosen is None:
            # The direct path learns where the bucket is from this request: no probe of its own.
            self._learned = BucketEndpoint.from_bucket_request(*seen[-1], self._boto.bucket)

    def guard_secrets(self, headers: ObjectHeaders) -> None:
        """Both stores' (a direct store made later takes ``boto``'s redactor, the key included)."""
        self._boto.guard_secrets(headers)
        if self._chosen is not None and self._chosen is not self._boto:
            guard_secrets(self._chosen, headers)

    async def check_writable(self, probe_key: str, *, headers: ObjectHeaders = NO_HEADERS) -> None:
        await self._boto.check_writable(probe_key, headers=headers)

    async def _choose(self) -> ObjectStore:
        async with self._choosing:
            if self._chosen is None:
                chosen = await self._direct_store() or self._boto
                for name in _CHOSEN_METHODS:
                    setattr(self, name, getattr(chosen, name))
                self._chosen = chosen
        return self._chosen

    async def _direct_store(self) -> DirectStore | None:
        client = await self._boto.clients.client()
        # botocore's request signer holds the credentials every request is signed with (refreshable ones
        # included); there is no public accessor.
        credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
        if credentials is None:
            return None  # the client raises the proper "no credentials" error
        endpoint = self._learned or await self._learn_endpoint(client)
        if endpoint is None:
            log.warning("the lean data path is off for this run: the endpoint does not use SigV4 header signing")
            return None
        boto = self._boto
        bucket = BucketClient(self._http, endpoint, credentials, request_payer=self._request_payer)
        return DirectStore(bucket, boto.bucket, boto.endpoint, boto.redact)

    async def _learn_endpoint(self, client: Any) -> BucketEndpoint | None:
        """Where and how the client sends this bucket's object requests: one ``HeadObject`` of a probe key,
        seen just before it is sent (its answer, a 404 most likely, does not matter)."""
        seen: list[tuple[str, str]] = []

        def capture(request: Any, **_: Any) -> None:
            if request.url.partition("?")[0].endswith(f"/{quote_key(PROBE_KEY)}"):
                seen.append(_url_and_authorization(request))

        client.meta.events.register_first("before-send.s3.HeadObject", capture)
        try:
            await client.head_object(Bucket=self._boto.bucket, Key=PROBE_KEY)
        except (ClientError, BotoCoreError):
            pass  # not there, as expected; or the first request will say what is wrong
        finally:
            client.meta.events.unregister("before-send.s3.HeadObject", capture)
        return BucketEndpoint.from_signed_request(*seen[0]) if seen else None

    # Until the first call has chosen: each of these chooses, then is replaced by the chosen store's own (a caller
    # that kept one of these from before pays one attribute test and one call more, never the lock again).

    async def put_object(
        self,
        key: str,
        body: BytesIO,
        *,
        checksum: Checksum | None,
        metadata: Mapping[str, str],
        headers: ObjectHeaders = NO_HEADERS,
    ) -> StoredObject:
        chosen = self._chosen or await self._choose()
        return await chosen.put_object(key, body, checksum=checksum, metadata=metadata, headers=headers)

    async def create_multipart(
        self,
        key: str,
        *,
        metadata: Mapping[str, str],
        checksum: Algorithm | None,
        full_object: bool,
        headers: ObjectHeaders = NO_HEADERS,
    ) -> str:
        chosen = self._chosen or await self._choose()
        return await chosen.create_multipart(
            key, metadata=metadata, checksum=checksum, full_object=full_object, headers=headers
        )

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
        chosen = self._chosen or await self._choose()
        return await chosen.upload_part(key, upload_id, number, body, checksum=checksum, headers=headers)

    async def complete_multipart(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[UploadedPart],
        *,
        full_checksum: Checksum | None,
        headers: ObjectHeaders = NO_HEADERS,
    ) -> StoredObject:
        chosen = self._chosen or await self._choose()
        return await chosen.complete_multipart(key, upload_id, parts, full_checksum=full_checksum, headers=headers)

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        chosen = self._chosen or await self._choose()
        await chosen.abort_multipart(key, upload_id)

    async def incomplete_uploads(self, prefix: str) -> AsyncIterator[IncompleteUpload]:
        chosen = self._chosen or await self._choose()
        async for upload in chosen.incomplete_uploads(prefix):
            yield upload

    async def list_parts(self, key: str, upload_id: str, *, headers: ObjectHeaders = NO_HEADERS) -> list[StoredPart]:
        chosen = self._chosen or await self._choose()
        return await chosen.list_parts(key, upload_id, headers=headers)

    async def head_object(self, key: str, *, headers: ObjectHeaders = NO_HEADERS) -> ObjectInfo | None:
        chosen = self._chosen or await self._choose()
        return await chosen.head_object(key, headers=headers)

    async def head_object_checksum(self, key: str, *, headers: ObjectHeaders = NO_HEADERS) -> ObjectInfo | None:
        chosen = self._chosen or await self._choose()
        return await head_object_checksum(chosen, key, headers=headers)

    async def delete_objects(self, keys: Sequence[str]) -> list[DeleteFailure]:
        chosen = self._chosen or await self._choose()
        assert isinstance(chosen, DeletesObjects)  # the direct store or the botocore one: both delete
        return await chosen.delete_objects(keys)

    async def list_objects(self, prefix: str, *, recursive: bool = True) -> AsyncIterator[ObjectInfo]:
        chosen = self._chosen or await self._choose()
        async for info in chosen.list_objects(prefix, recursive=recursive):
            yield info
