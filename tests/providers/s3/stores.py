"""Stores for the provider's tests: opened as a run opens them (``connect``), or over an HTTP client that answers
what the test says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from botocore.credentials import ReadOnlyCredentials

from async_uploader.config import DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_READ_TIMEOUT_S
from async_uploader.providers._errors import Redactor
from async_uploader.providers.base import ObjectStore
from async_uploader.providers.registry import ConnectOptions
from async_uploader.providers.s3 import connect
from async_uploader.providers.s3.bucket import BucketClient
from async_uploader.providers.s3.http import Response
from async_uploader.providers.s3.store import DirectStore
from async_uploader.providers.s3.wire import BucketEndpoint


@asynccontextmanager
async def open_store(bucket: str, *, endpoint_url: str | None, **options: Any) -> AsyncIterator[ObjectStore]:
    """The store of ``bucket`` over a connection of its own (``options`` as ``ConnectOptions``'), closed on exit."""
    options.setdefault("max_connections", 64)
    options.setdefault("connect_timeout_s", DEFAULT_CONNECT_TIMEOUT_S)
    options.setdefault("read_timeout_s", DEFAULT_READ_TIMEOUT_S)
    async with connect(ConnectOptions(endpoint_url=endpoint_url, **options)) as connection:
        yield connection.store(bucket)


class Answering:
    """An HTTP client that answers every request with one canned response, and remembers the requests."""

    def __init__(self, status: int, body: bytes) -> None:
        self.response = Response(status, {}, body)
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []

    async def request(self, origin: str, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        self.requests.append((method, target, headers, body))
        return self.response


class Keys:
    """Static credentials, as the direct path asks for them before every request."""

    async def get_frozen_credentials(self) -> ReadOnlyCredentials:
        return ReadOnlyCredentials("AKID", "secret", None)


def bucket_on(http: Answering) -> BucketClient:
    """Bucket ``b`` of a path-style endpoint, its requests answered by ``http``."""
    return BucketClient(http, BucketEndpoint.path_style("http://127.0.0.1:9", "b", "us-east-1"), Keys())  # type: ignore[arg-type]


def direct_store_on(http: Answering) -> DirectStore:
    """A ``DirectStore`` of bucket ``b`` whose requests ``http`` answers: it has no botocore client to turn to."""
    return DirectStore(bucket_on(http), "b", "http://127.0.0.1:9", Redactor())
