"""aiobotocore's clients for the S3 provider: the only module that imports aiobotocore (and with it aiohttp).

Importing them costs ~0.3 s of CPU and creating the clients ~0.1 s more (botocore's S3 model, its endpoint rules,
a CA bundle per client). So the connection imports this module only when a request needs a client (``--lean off``,
a store whose endpoint or credentials only botocore can work out), in a worker thread; an upload on the direct path
never does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any, Final

import aiobotocore.session
from aiobotocore.config import AioConfig
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import BytesIOPayload, Order, register_payload
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound
from botocore.utils import parse_timestamp

from ...errors import ConfigError
from ..base import Body
from ..registry import ConnectOptions
from .bucket import REQUEST_PAYER_HEADER
from .endpoint_data import use_trimmed_endpoint_data

# botocore makes one quick second attempt (a stale pooled connection); the engine's own retry layer, which can
# re-read bodies from disk and lower the concurrency when throttled, does the rest.
MAX_REQUEST_ATTEMPTS: Final = 2
# aiohttp's own chunk size: as many writes per body as aiohttp makes, each a slice of the body instead of a copy.
SEND_SLICE_BYTES: Final = 256 * 1024


def fast_timestamp(text: str) -> datetime:
    """S3's ISO 8601 timestamps through the C parser; anything else through botocore's.

    botocore parses every timestamp with dateutil, ~120 us each, a large share of a listing's CPU. The values are
    the same datetimes, so credential providers sharing the session (which read expirations) see no
    difference.
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
    take one at once holds it, and the transport a copy of what is left, until it drains: with many parts in
    flight, megabytes beyond the memory budget. A slice is sent from the body's own buffer; the transport copies
    only what the socket did not take.
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


def client_options(connect_timeout_s: float, read_timeout_s: float) -> dict[str, Any]:
    """The options both clients share."""
    return {
        "connect_timeout": connect_timeout_s,
        "read_timeout": read_timeout_s,
        "tcp_keepalive": True,
        "s3": {
            # No addressing style: botocore's own choice, or the profile's ``addressing_style`` (path for a custom
            # endpoint unless the profile says virtual; on AWS, virtual-hosted where the bucket's name allows).
            # Bodies carry a CRC32 header that is signed and that the server verifies, so a SHA-256 of every
            # byte (botocore's default over plain http) would add CPU, and stall the event loop, for nothing.
            "payload_signing_enabled": False,
        },
        # The engine computes every checksum itself as it reads (or none, with --checksum none): botocore must not
        # add a CRC32 of its own to a body that has none.
        "request_checksum_calculation": "when_required",
    }


def new_session(profile: str | None) -> Any:
    """An ``AioSession`` that keeps only the endpoint data it uses and parses timestamps fast."""
    session = aiobotocore.session.AioSession(profile=profile)
    use_trimmed_endpoint_data(session)
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=fast_timestamp)
    return session


async def open_clients(stack: AsyncExitStack, session: Any | None, options: ConnectOptions) -> tuple[Any, Any]:
    """The run's client (its pool sized to the concurrency) and the preflight's, from ``session`` (a new one of
    ``options.profile`` if none), closed with ``stack``; a ``ConfigError`` if they cannot be set up.

    The preflight answers "can this work at all?": a typo in the endpoint should fail in seconds, not after the
    full retry schedule that the upload itself deserves, so its client makes two attempts at most.
    """
    shared = client_options(options.connect_timeout_s, options.read_timeout_s)
    try:
        config = AioConfig(
            max_pool_connections=options.max_connections,
            retries={"mode": "standard", "total_max_attempts": MAX_REQUEST_ATTEMPTS},
            **shared,
        )
        preflight_config = AioConfig(
            max_pool_connections=1, retries={"mode": "standard", "total_max_attempts": 2}, **shared
        )
        if session is None:
            session = new_session(options.profile)
        clients = [
            await stack.enter_async_context(
                session.create_client("s3", region_name=options.region, endpoint_url=options.endpoint_url, config=cfg)
            )
            for cfg in (config, preflight_config)
        ]
        if options.request_payer:
            for client in clients:
                pay_as_requester(client, options.request_payer)
    except ProfileNotFound as exc:
        raise ConfigError(f"AWS profile {options.profile!r} not found in the shared config files") from exc
    except ValueError as exc:  # botocore's complaint about a malformed endpoint URL
        raise ConfigError(f"invalid endpoint URL {options.endpoint_url!r}: {exc}") from exc
    except BotoCoreError as exc:
        raise ConfigError(f"cannot set up the S3 client: {exc}") from exc
    return clients[0], clients[1]


def pay_as_requester(client: Any, payer: str) -> Callable[[], None]:
    """Make every request of ``client`` carry ``x-amz-request-payer: payer``, signed; returns what undoes it.

    Every request, HeadBucket included, as a requester-pays bucket wants them (and the direct path sends them):
    botocore's model gives HeadBucket no ``RequestPayer``, so the header is set just before signing, where no
    call site can forget it. For the operations that have the parameter it is the header botocore sends for it.
    """

    def add_header(request: Any, **_: Any) -> None:
        request.headers[REQUEST_PAYER_HEADER] = payer

    client.meta.events.register("before-sign.s3", add_header)
    return lambda: client.meta.events.unregister("before-sign.s3", add_header)


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
