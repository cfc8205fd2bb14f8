"""The library entry point: ``await upload(source, destination, ...)``; the CLI is a thin shell over it."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from .config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_MEMORY_BYTES,
    DEFAULT_MULTIPART_THRESHOLD_BYTES,
    DEFAULT_PART_SIZE_BYTES,
    UploadConfig,
    make_config,
)
from .events import Event, EventHandler, ResultBuilder, UploadResult
from .providers.base import ObjectStore
from .providers.s3 import open_s3_store
from .report import ReportWriter
from .transfer import run_upload

PREFLIGHT_KEY_NAME = ".async-uploader-preflight-"


@asynccontextmanager
async def open_store(config: UploadConfig) -> AsyncIterator[ObjectStore]:
    """The store for ``config.destination``; S3 is the only provider so far."""
    async with open_s3_store(
        config.destination.bucket,
        endpoint_url=config.endpoint_url,
        region=config.region,
        profile=config.profile,
        max_connections=config.concurrency,
    ) as store:
        yield store


async def run(
    config: UploadConfig, *, on_event: EventHandler | None = None, store: ObjectStore | None = None
) -> UploadResult:
    """Run one upload with a validated config: preflight, then the pipeline; a dry run needs no store at all.

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
        if store is not None:
            return await _preflight_and_upload(config, store, emit)
        async with open_store(config) as opened:
            return await _preflight_and_upload(config, opened, emit)
    finally:
        if report is not None:
            report.close(so_far.result())


async def _preflight_and_upload(config: UploadConfig, store: ObjectStore, on_event: EventHandler) -> UploadResult:
    await store.check_writable(f"{config.destination.prefix}{PREFLIGHT_KEY_NAME}{uuid.uuid4().hex}")
    return await run_upload(config, store, on_event)


async def upload(
    source: str | os.PathLike[str],
    destination: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    part_size: str | int = DEFAULT_PART_SIZE_BYTES,
    multipart_threshold: str | int = DEFAULT_MULTIPART_THRESHOLD_BYTES,
    max_memory: str | int = DEFAULT_MAX_MEMORY_BYTES,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    follow_symlinks: bool = False,
    max_bandwidth: str | int | None = None,
    report: str | os.PathLike[str] | None = None,
    retry_failed: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    on_event: EventHandler | None = None,
) -> UploadResult:
    """Upload every regular file below ``source`` to ``destination`` (``s3://bucket/prefix``).

    Keyword options mirror the CLI flags (``include``/``exclude`` apply includes first, then excludes; for
    interleaved rules build a config with ``make_config(filters=...)`` and call ``run``). ``on_event``
    receives typed events from ``async_uploader.events`` as the run goes; it is called on the event loop, so
    it must be quick.
    """
    config = make_config(
        source,
        destination,
        endpoint_url=endpoint_url,
        region=region,
        profile=profile,
        concurrency=concurrency,
        part_size=part_size,
        multipart_threshold=multipart_threshold,
        max_memory=max_memory,
        include=include,
        exclude=exclude,
        follow_symlinks=follow_symlinks,
        max_bandwidth=max_bandwidth,
        report=report,
        retry_failed=retry_failed,
        dry_run=dry_run,
    )
    return await run(config, on_event=on_event)
