"""The library: ``await upload(source, destination, ...)``, and ``Uploader`` for applications that upload often.

The CLI is a thin shell over the same ``run``; every entry point builds one validated ``UploadConfig``.
aiobotocore (like the Azure SDK's aiohttp) is asyncio-only, so this runs on asyncio, directly or under
``anyio.run(..., backend="asyncio")``; trio is out of reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import anyio

from .cleanup import CleanupResult, abort_incomplete_uploads
from .config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_READ_TIMEOUT_S,
    Destination,
    Overwrite,
    UploadConfig,
    make_config,
    parse_destination,
    parse_duration,
)
from .engine.pipeline import run_upload
from .events import Event, EventHandler, ResultBuilder, UploadResult
from .providers.base import ObjectStore
from .providers.registry import Connection, ConnectOptions, provider_for
from .report import ReportWriter

if TYPE_CHECKING:
    from distributed import Client

PREFLIGHT_KEY_NAME = ".async-uploader-preflight-"
DEFAULT_CLEANUP_AGE = "1d"


class RunOptions(TypedDict, total=False):
    """Per-run keyword options of ``upload`` and ``Uploader.upload``, as for the CLI flags.

    Defaults are ``make_config``'s. ``include``/``exclude`` apply includes first, then excludes; for
    interleaved rules, build a config with ``make_config(filters=...)`` and call ``Uploader.run_config``.
    """

    concurrency: int
    part_size: str | int
    multipart_threshold: str | int
    max_memory: str | int
    include: Sequence[str]
    exclude: Sequence[str]
    follow_symlinks: bool
    max_bandwidth: str | int | None
    report: str | os.PathLike[str] | None
    retry_failed: str | os.PathLike[str] | None
    dry_run: bool
    retries: int
    retry_deadline: float
    max_cpu: float | None
    overwrite: str | Overwrite
    state_file: str | os.PathLike[str] | None
    use_state: bool
    keep_partial: bool
    checksum: str
    shard: str | None


async def run(config: UploadConfig, *, store: ObjectStore | None, on_event: EventHandler | None = None) -> UploadResult:
    """Run one upload with a validated config: preflight, then the pipeline; a dry run uses no store at all.

    Raises ``CredentialsError``, ``EndpointError`` or ``BucketError`` before anything is walked when the
    destination is unusable; failed files do not raise, they are in the result. With ``config.report`` every
    finished file is appended to the report, and a run cut short still ends it with a summary.
    """
    report = ReportWriter(config.report) if config.report is not None else None
    so_far = ResultBuilder()

    def emit(event: Event) -> None:
        so_far.add(event)
        if report is not None:
            report.handle(event)
        if on_event is not None:
            on_event(event)

    try:
        if config.dry_run:
            return await run_upload(config, None, emit)
        if store is None:
            raise ValueError("a store is needed for anything but a dry run")
        await store.check_readable()
        probe_key = f"{config.destination.prefix}{PREFLIGHT_KEY_NAME}{os.urandom(16).hex()}"
        return await run_upload(config, store, emit, write_probe_key=probe_key)
    finally:
        if report is not None:
            report.close(so_far.result())


class Uploader:
    """Owns the connections (sessions, pools) of its runs; ``await uploader.upload(...)`` reuses them run after run.

    ``async with Uploader(endpoint_url=...) as uploader: await uploader.upload("dist/", "s3://b/p")``. The
    destination's scheme picks the provider (``s3://``, ``az://``, or one an installed package registers), whose
    connection is opened at its first use and closed on exit. ``endpoint_url`` is an S3-compatible endpoint, or
    for ``az://`` the account URL. For S3: pass ``client=`` to use an aiobotocore S3 client the application already
    has (it stays the application's to close), or ``session=`` to create the S3 clients from an existing
    ``AioSession`` (either opens the S3 connection on entry); ``lean=False`` sends every request through aiobotocore
    rather than on the direct signed-request path (the CLI's ``--lean off``).
    """

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
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
        ``async_uploader.events``; it runs on the event loop, so it must be quick. Cancelling the awaiting task
        aborts multipart uploads in flight and re-raises ``CancelledError``.
        """
        options.setdefault("concurrency", self.concurrency)
        config = make_config(
            source,
            destination,
            endpoint_url=self.endpoint_url,
            region=self.region,
            profile=self.profile,
            connect_timeout=self._timeouts[0],
            read_timeout=self._timeouts[1],
            **options,
        )
        return await self.run_config(config, on_event=on_event)

    async def run_config(self, config: UploadConfig, *, on_event: EventHandler | None = None) -> UploadResult:
        """Run a config built with ``make_config`` over this uploader's connection."""
        if self._connections is None:
            raise RuntimeError("use the Uploader inside 'async with'")
        store = None if config.dry_run else await self._store(config.destination)
        return await run(config, store=store, on_event=on_event)

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
        concurrency=options.get("concurrency", DEFAULT_CONCURRENCY),
        lean=lean,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    ) as uploader:
        return await uploader.upload(source, destination, on_event=on_event, **options)


async def upload_distributed(
    source: str | os.PathLike[str],
    destination: str,
    *,
    scheduler: str | Client,
    shards: int | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
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
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        **options,
    )
    return await run_distributed(config, scheduler=scheduler, shards=shards, lean=lean, on_event=on_event)


async def run_config(config: UploadConfig, *, lean: bool = True, on_event: EventHandler | None = None) -> UploadResult:
    """Run a config built with ``make_config`` (the CLI's path), with its own connection (``lean`` as
    ``Uploader``'s)."""
    if config.dry_run:  # plans only: no client, no credentials, no request
        return await run(config, store=None, on_event=on_event)
    async with Uploader(
        endpoint_url=config.endpoint_url,
        region=config.region,
        profile=config.profile,
        concurrency=config.concurrency,
        lean=lean,
        connect_timeout=config.connect_timeout_s,
        read_timeout=config.read_timeout_s,
    ) as uploader:
        return await uploader.run_config(config, on_event=on_event)


async def cleanup(
    destination: str,
    *,
    older_than: str | float = DEFAULT_CLEANUP_AGE,
    dry_run: bool = False,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
) -> CleanupResult:
    """Abort the incomplete multipart uploads under ``destination`` (``s3://bucket/prefix``) started at least
    ``older_than`` ago (``"1d"``, ``"12h"``, or seconds); ``dry_run`` only lists them."""
    async with Uploader(endpoint_url=endpoint_url, region=region, profile=profile, concurrency=1) as uploader:
        return await uploader.cleanup(destination, older_than=older_than, dry_run=dry_run)
