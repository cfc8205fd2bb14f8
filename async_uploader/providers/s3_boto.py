"""aiobotocore's clients for the S3 provider: the only module that imports aiobotocore (and with it aiohttp).

Importing them costs ~0.3 s of CPU and creating the clients ~0.1 s more (botocore's S3 model, its endpoint
rules, a CA bundle per client), a quarter of a no-op re-run. So ``s3.py`` imports this module only when it needs
a client: for the control plane of multipart uploads, a HEAD, or a store whose endpoint or credentials only
botocore can work out. A re-run that finds nothing to send never does.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any

import aiobotocore.session
from aiobotocore.config import AioConfig
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import BytesIOPayload, Order, register_payload
from botocore.exceptions import BotoCoreError, ClientError
from botocore.utils import parse_timestamp

from .base import Body
from .s3 import MAX_REQUEST_ATTEMPTS, SEND_SLICE_BYTES, client_options
from .s3_data import use_trimmed_endpoint_data


def fast_timestamp(text: str) -> datetime:
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


class BodyPayload(BytesIOPayload):
    """How aiohttp sends a ``Body``: slices of the buffer the memory budget already counts, no copies.

    aiohttp sends a ``BytesIO`` by reading it 256 KiB at a time, each read a new ``bytes``; a socket that cannot
    take one at once holds it, and the transport a copy of what is left, until it drains. With 16 parts in
    flight that was 2.5-4 MiB beyond the budget (a 3 GiB file peaked at 191.6 MiB, now 189.2). A slice is sent
    from the body's own buffer; the transport copies only what the socket did not take, as before.
    """

    def __init__(self, value: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(value, *args, **kwargs)
        self._start = value.tell()  # where every send starts: botocore rewinds a body there before a retry

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        with self._value.getbuffer() as buffer:
            end = len(buffer) if content_length is None else min(len(buffer), self._start + content_length)
            for offset in range(self._start, end, SEND_SLICE_BYTES):
                if offset > self._start:
                    await asyncio.sleep(0)  # as aiohttp does between chunks: other requests get the loop too
                await writer.write(buffer[offset : min(offset + SEND_SLICE_BYTES, end)])
        self._value.seek(end)


# Only for our own body type: any other BytesIO an application sends through aiohttp is left to aiohttp.
# try_first, because aiobotocore hands aiohttp a proxy of the body, which only an isinstance test sees through.
register_payload(BodyPayload, Body, order=Order.try_first)


def new_session(profile: str | None) -> Any:
    """An ``AioSession`` that keeps only the endpoint data it uses and parses timestamps fast."""
    session = aiobotocore.session.AioSession(profile=profile)
    use_trimmed_endpoint_data(session)
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=fast_timestamp)
    return session


async def open_clients(
    stack: AsyncExitStack,
    session: Any,
    *,
    endpoint_url: str | None,
    region: str | None,
    max_connections: int,
    connect_timeout_s: float,
    read_timeout_s: float,
) -> tuple[Any, Any]:
    """The run's client (its pool sized to the concurrency) and the preflight's, closed with ``stack``.

    The preflight answers "can this work at all?": a typo in the endpoint should fail in seconds, not after the
    full retry schedule that the upload itself deserves, so its client makes two attempts at most.
    """
    options = client_options(endpoint_url, connect_timeout_s, read_timeout_s)
    config = AioConfig(
        max_pool_connections=max_connections,
        retries={"mode": "standard", "total_max_attempts": MAX_REQUEST_ATTEMPTS},
        **options,
    )
    preflight_config = AioConfig(
        max_pool_connections=1, retries={"mode": "standard", "total_max_attempts": 2}, **options
    )
    clients = [
        await stack.enter_async_context(
            session.create_client("s3", region_name=region, endpoint_url=endpoint_url, config=cfg)
        )
        for cfg in (config, preflight_config)
    ]
    return clients[0], clients[1]


async def known_secrets(session: Any) -> list[str]:
    """The resolved secret key and session token, so error messages can be scrubbed of them."""
    try:
        credentials = await session.get_credentials()
        if credentials is None:
            return []
        frozen = await credentials.get_frozen_credentials()
    except (BotoCoreError, ClientError):
        return []  # the preflight will report the credentials problem properly
    return [value for value in (frozen.secret_key, frozen.token) if value]
