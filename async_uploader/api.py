"""The library: ``await upload(source, destination, ...)``, and ``Uploader`` for applications that upload often.

The CLI is a thin shell over the same ``run`` (``runner.py``); every entry point builds one validated
``UploadConfig``.
aiobotocore (like the Azure SDK's aiohttp) is asyncio-only, so this runs on asyncio, directly or under
``anyio.run(..., backend="asyncio")``; trio is out of reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, Unpack

import anyio

from .cleanup import CleanupResult, abort_incomplete_uploads
from .config import (
    DEFAULT_CLEANUP_AGE,
    DEFAULT_CONCURRENCY,
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_READ_TIMEOUT_S,
    Destination,
    UploadConfig,
    check_request_payer,
    parse_destination,
    parse_duration,
)
from .events import Event, EventHandler, UploadResult
from .options import RunOptions, make_config, make_stream_config
from .providers.base import ObjectStore
from .providers.registry import Connection, ConnectOptions, provider_for
from .runner import run as run  # re-exported: async_uploader.run and api.run are runner.run
from .source.stream import ByteStream, byte_stream

if TYPE_CHECKING:
    from distributed import Client


class Uploader:
    """Owns the connections (sessions, pools) of its runs; ``await uploader.upload(...)`` reuses them run after run.

    ``async with Uploader(endpoint_url=...) as uploader: await uploader.upload("dist/", "s3://b/p")``. The
    destination's scheme picks the provider (``s3://``, ``az://``, or one an installed package registers), whose
    connection is opened at its first use and closed on exit. ``endpoint_url`` is an S3-compatible endpoint, or
    for ``az://`` the account URL. For S3: pass ``client=`` to use an aiobotocore S3 client the application already
    has (it stays the application's to close), or ``session=`` to create the S3 clients from an existing
    ``AioSession`` (either opens the S3 connection on entry); ``lean=False`` sends every request through aiobotocore
    rather than on the direct signed-request path (the CLI's ``--lean off``). ``request_payer="requester"``: every
    request says the requester pays (a requester-pays bucket's condition; the CLI's ``--request-payer``).
    """

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        request_payer: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        client: Any | None = None,
        session: Any | None = None,
        lean: bool = True,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        read_timeout: float = DEFAULT_READ_TIMEOUT_S,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.profile = profile
        self.request_payer = check_request_payer(request_payer)
        self.concurrency = concurrency
        self._client = client
        self._session = session
        self._lean = lean
        self._timeouts = (connect_timeout, read_timeout)
        self._connections: dict[str, Connection] | None = None
        self._opening = anyio.Lock()
        self._stack = AsyncExitStack()

    def _options(self) -> ConnectOptions:
        return ConnectOptions(
            endpoint_url=self.endpoint_url,
            region=self.region,
            profile=self.profile,
            request_payer=self.request_payer,
            max_connections=self.concurrency,
            connect_timeout_s=self._timeouts[0],
            read_timeout_s=self._timeouts[1],
            lean=self._lean,
            client=self._client,
            session=self._session,
        )

    async def __aenter__(self) -> Uploader:
        self._connections = {}
        if self._client is not None or self._session is not None:
            await self._connection("s3")  # the application's S3 client or session: set up (or refused) now
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._connections = None
        await self._stack.aclose()

    async def _connection(self, scheme: str) -> Connection:
        """The connection of ``scheme``'s provider, opened now if this is its first use."""
        if self._connections is None:
            raise RuntimeError("use the Uploader inside 'async with'")
        async with self._opening:
            connection = self._connections.get(scheme)
            if connection is None:
                provider = provider_for(scheme)
                connection = await self._stack.enter_async_context(provider(self._options()))
                self._connections[scheme] = connection
        return connection

    async def _store(self, destination: Destination) -> ObjectStore:
        """The store of ``destination``, over its provider's connection."""
        return (await self._connection(destination.scheme)).store(destination.bucket)

    async def upload(
        self,
        source: str | os.PathLike[str],
        destination: str,
        *,
        on_event: EventHandler | None = None,
        **options: Unpack[RunOptions],
    ) -> UploadResult:
        """Upload every regular file below ``source`` to ``destination`` (``s3://bucket/prefix``, ``az://...``).

        ``options`` mirror the CLI flags (see ``RunOptions``). ``on_event`` receives typed events from
        ``async_uploader.events``; it runs on the event loop, so it must be quick; should it raise, it gets no
        more events and the run, once finished, raises that exception (a file never fails for it). Cancelling
        the awaiting task aborts multipart uploads in flight and re-raises ``CancelledError``.
        """
        options.setdefault("concurrency", self.concurrency)
        config = make_config(
            source,
            destination,
            endpoint_url=self.endpoint_url,
            region=self.region,
            profile=self.profile,
            request_payer=self.request_payer,
            connect_timeout=self._timeouts[0],
            read_timeout=self._timeouts[1],
            **options,
        )
        return await self.run_config(config, on_event=on_event)

    async def upload_stream(
        self,
        stream: BinaryIO | AsyncIterable[bytes],
        destination: str,
        *,
        on_event: EventHandler | None = None,
        **options: Unpack[RunOptions],
    ) -> UploadResult:
        """Upload a stream of unknown length to the exact key ``destination`` names (``s3://bucket/some/key``).

        ``stream`` is a binary file object (read in a worker thread: a pipe, a socket's file, ``sys.stdin.buffer``)
        or an async iterable of ``bytes`` chunks of any size. It goes up as a multipart upload, a part at a time
        within ``max_memory`` (one PutObject if it ends within its first part, under ``multipart_threshold``);
        ``expected_size`` picks a part size that fits it in 10,000 parts. The result counts it as one file, named
        ``-``; a failed or cancelled stream's upload is aborted. The options that apply to files only
        (``shard``, ``retry_failed``, ``dry_run``, ``follow_symlinks``, filters, ``compare``) raise ``ConfigError``.
        """
        options.setdefault("concurrency", self.concurrency)
        config = make_stream_config(
            destination,
            endpoint_url=self.endpoint_url,
            region=self.region,
            profile=self.profile,
            request_payer=self.request_payer,
            connect_timeout=self._timeouts[0],
            read_timeout=self._timeouts[1],
            **options,
        )
        return await self.run_config(config, on_event=on_event, stream=byte_stream(stream))

    async def run_config(
        self,
        config: UploadConfig,
        *,
        on_event: EventHandler | None = None,
        count_totals: bool = True,
        stream: ByteStream | None = None,
    ) -> UploadResult:
        """Run a config built with ``make_config`` over this uploader's connection (see ``runner.run`` for
        ``count_totals`` and ``stream``)."""
        if self._connections is None:
            raise RuntimeError("use the Uploader inside 'async with'")
        store = None if config.dry_run and not config.delete else await self._store(config.destination)
        return await run(config, store, on_event, count_totals=count_totals, stream=stream)

    async def cleanup(
        self, destination: str, *, older_than: str | float = DEFAULT_CLEANUP_AGE, dry_run: bool = False
    ) -> CleanupResult:
        """Abort the incomplete multipart uploads under ``destination`` started at least ``older_than`` ago."""
        target = parse_destination(destination)
        age_s = parse_duration(older_than) if isinstance(older_than, str) else float(older_than)
        store = await self._store(target)
        await store.check_readable()
        return await abort_incomplete_uploads(store, target.prefix, older_than_s=age_s, dry_run=dry_run)

    async def events(self, source: str | os.PathLike[str], destination: str, **options: Any) -> AsyncIterator[Event]:
        """The same upload as ``upload``, as an async iterator of its events, ending with ``RunFinished``.

        Run-level errors are raised from the iteration; leaving the loop early (``break``) or cancelling the
        consumer cancels the upload, aborting multipart uploads in flight.
        """
        # Unbounded, because the engine's event callback cannot wait; the consumer runs on the same loop and
        # holds at most the events of the files in flight between two of its iterations.
        send, receive = anyio.create_memory_object_stream[Event](math.inf)

        async def produce() -> None:
            async with send:
                await self.upload(source, destination, on_event=send.send_nowait, **options)

        task = asyncio.ensure_future(produce())  # owned here: awaited below, cancelled in ``finally``
        try:
            async with receive:
                async for event in receive:
                    yield event
            await task
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def upload(
    source: str | os.PathLike[str],
    destination: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    request_payer: str | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
    read_timeout: float = DEFAULT_READ_TIMEOUT_S,
    lean: bool = True,
    on_event: EventHandler | None = None,
    **options: Unpack[RunOptions],
) -> UploadResult:
    """Upload every regular file below ``source`` to ``destination`` (``s3://bucket/prefix``), once.

    A one-shot ``Uploader`` (whose arguments these connection keywords are): see ``RunOptions`` for the options,
    which mirror the CLI flags. Returns an ``UploadResult``; raises an ``async_uploader.errors.UploaderError``
    subclass only for run-level failures.
    """
    async with Uploader(
        endpoint_url=endpoint_url,
        region=region,
        profile=profile,
        request_payer=request_payer,
        concurrency=options.get("concurrency", DEFAULT_CONCURRENCY),
        lean=lean,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    ) as uploader:
        return await uploader.upload(source, destination, on_event=on_event, **options)


async def upload_stream(
    stream: BinaryIO | AsyncIterable[bytes],
    destination: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    request_payer: str | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
    read_timeout: float = DEFAULT_READ_TIMEOUT_S,
    lean: bool = True,
    on_event: EventHandler | None = None,
    **options: Unpack[RunOptions],
) -> UploadResult:
    """Upload a binary file object or an async iterable of bytes to the exact key ``destination`` names, once
    (see ``Uploader.upload_stream``)."""
    async with Uploader(
        endpoint_url=endpoint_url,
        region=region,
        profile=profile,
        request_payer=request_payer,
        concurrency=options.get("concurrency", DEFAULT_CONCURRENCY),
        lean=lean,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    ) as uploader:
        return await uploader.upload_stream(stream, destination, on_event=on_event, **options)


async def upload_distributed(
    source: str | os.PathLike[str],
    destination: str,
    *,
    scheduler: str | Client,
    shards: int | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    request_payer: str | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
    read_timeout: float = DEFAULT_READ_TIMEOUT_S,
    lean: bool = True,
    on_event: EventHandler | None = None,
    **options: Unpack[RunOptions],
) -> UploadResult:
    """Upload ``source`` to ``destination`` over a Dask cluster (the ``dask`` extra): ``shards`` tasks, one shard of
    the tree each (default: one per worker thread), each running this engine on a worker.

    ``scheduler`` is an address (``tcp://host:8786``) or a synchronous ``distributed.Client``. ``source`` must be
    the same path on every worker (shared storage); workers use their own credentials and state file; ``options``
    (see ``RunOptions``) apply to each shard, except ``report``, which this process writes, each file once.
    ``on_event`` receives every shard's events, in batches, on this event loop. A shard whose worker dies is run
    again; it skips what is already uploaded. Raises ``ClusterError`` if the cluster cannot finish the upload.
    """
    from .cluster import run_distributed  # only now: it needs distributed, which the base install lacks

    config = make_config(
        source,
        destination,
        endpoint_url=endpoint_url,
        region=region,
        profile=profile,
        request_payer=request_payer,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        **options,
    )
    return await run_distributed(config, scheduler=scheduler, shards=shards, lean=lean, on_event=on_event)


async def run_config(
    config: UploadConfig,
    *,
    lean: bool = True,
    on_event: EventHandler | None = None,
    count_totals: bool = True,
    stream: ByteStream | None = None,
) -> UploadResult:
    """Run a config built with ``make_config`` (the CLI's path), with its own connection (``lean`` as
    ``Uploader``'s). ``count_totals``: count the tree for a progress display's totals (the CLI turns it off
    when it shows none). ``stream``: the stream a ``make_stream_config`` config uploads."""
    if config.dry_run and not config.delete:  # plans only: no client, no credentials, no request
        return await run(config, None, on_event, count_totals=count_totals, stream=stream)
    async with Uploader(
        endpoint_url=config.endpoint_url,
        region=config.region,
        profile=config.profile,
        request_payer=config.request_payer,
        concurrency=config.concurrency,
        lean=lean,
        connect_timeout=config.connect_timeout_s,
        read_timeout=config.read_timeout_s,
    ) as uploader:
        return await uploader.run_config(config, on_event=on_event, count_totals=count_totals, stream=stream)


async def cleanup(
    destination: str,
    *,
    older_than: str | float = DEFAULT_CLEANUP_AGE,
    dry_run: bool = False,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    request_payer: str | None = None,
) -> CleanupResult:
    """Abort the incomplete multipart uploads under ``destination`` (``s3://bucket/prefix``) started at least
    ``older_than`` ago (``"1d"``, ``"12h"``, or seconds); ``dry_run`` only lists them."""
    async with Uploader(
        endpoint_url=endpoint_url, region=region, profile=profile, request_payer=request_payer, concurrency=1
    ) as uploader:
        return await uploader.cleanup(destination, older_than=older_than, dry_run=dry_run)
