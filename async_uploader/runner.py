"""``run(config, store)``: one upload from a validated config, as every entry point runs it.

``upload()`` and ``Uploader`` (``api.py``) call it over their connections, the CLI through them, and each shard
of a Dask run on its worker (``cluster.py``). The engine walks and uploads, emitting events; what a run adds
around it lives here: the files ``--retry-failed`` names (read from the earlier report, so the engine never
reads one), the preflight, the run's one tally of its events, the report, and the ``RunFinished`` event that
ends every run, including one cut short.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import anyio.to_thread

from .config import Overwrite, UploadConfig
from .engine.headers import refused_fields
from .engine.pipeline import RunStats, run_upload
from .engine.stream import upload_stream
from .errors import ConfigError, DeleteRefusedError, ReadDeniedError
from .events import Event, EventHandler, PhaseStarted, ResultBuilder, RunFinished, UploadResult
from .header_options import run_headers
from .providers.base import DeletesObjects, ObjectStore, guard_secrets, header_fields
from .report import ReportWriter, failed_paths
from .source.stream import ByteStream

log = logging.getLogger(__name__)

PREFLIGHT_KEY_NAME: Final = ".async-uploader-preflight-"
"""The write probe's key under the destination prefix, with a random suffix; deleted right after it is written."""


async def run(
    config: UploadConfig,
    store: ObjectStore | None,
    on_event: EventHandler | None = None,
    *,
    count_totals: bool = True,
    stream: ByteStream | None = None,
) -> UploadResult:
    """Run one upload with a validated config: preflight, then the engine; a dry run uses no store at all.

    Raises ``CredentialsError``, ``EndpointError`` or ``BucketError`` before anything is walked when the
    destination is unusable; failed files do not raise, they are in the result. ``on_event`` gets every event,
    the last one a ``RunFinished``: the result, or for a run cut short (cancelled, or ended by a run-level error)
    what it did until then, marked ``interrupted``. With ``config.report`` every finished file is appended to
    the report, which ends with the same summary. An exception raised by ``on_event`` never fails a file: it is
    logged once, ``on_event`` gets no more events, the run goes on to its end (files, report and state complete)
    and then raises that exception (as a Dask run does). ``count_totals``: count the tree beside the upload for the
    ``TotalsKnown`` a progress display shows; a caller that shows none spares that second walk (a thread's walk,
    ~10% of the client's CPU on a tree of small files). ``stream``: upload that stream to the one key of a config
    from ``make_stream_config`` instead of walking a source (``engine/stream.py``).
    """
    if store is None and (config.delete or not config.dry_run):
        raise ValueError("a store is needed for anything but a dry run (and for --delete's, which lists)")
    only_paths: list[str] | None = None
    if config.retry_failed is not None:  # before the report is opened: a refused retry leaves it as it was
        only_paths = await anyio.to_thread.run_sync(_failed_paths, config.retry_failed, config.source)
    tally = ResultBuilder()
    source = config.source if stream is None else None  # a stream has no SOURCE a retry could read again
    report = ReportWriter(config.report, source=source) if config.report is not None else None
    add = tally.add
    subscriber = on_event
    subscriber_error: list[Exception] = []

    def emit(event: Event) -> None:
        nonlocal subscriber
        add(event)
        if report is not None:
            report.handle(event)
        if subscriber is not None:
            try:
                subscriber(event)
            except Exception as exc:  # the caller's bug, not the file's: it must not fail the file
                log.warning("on_event raised %s: it gets no more events; the run goes on, then raises it", exc)
                subscriber = None
                subscriber_error.append(exc)

    finished = False
    try:
        stats = await _preflight_and_upload(config, store, emit, count_totals, only_paths, stream)
        result = _result(tally, stats)
        finished = True
        emit(RunFinished(result))
        if subscriber_error:
            raise subscriber_error[0]
        if stats.delete_refused is not None:  # the uploads ran to their end; the deletions were refused
            raise DeleteRefusedError(stats.delete_refused)
        return result
    except BaseException:
        if not finished:
            end_cut_short(emit, tally.result())
        raise
    finally:
        if report is not None:
            report.close()


async def _preflight_and_upload(
    config: UploadConfig,
    store: ObjectStore | None,
    emit: EventHandler,
    count_totals: bool,
    only_paths: Sequence[str] | None,
    stream: ByteStream | None,
) -> RunStats:
    if config.dry_run and stream is not None:
        raise ConfigError("--dry-run: not for a stream, which cannot be read twice")
    if config.delete and not isinstance(store, DeletesObjects):
        raise ConfigError(f"--delete: not supported for {config.destination.scheme}:// destinations")
    if config.dry_run and not config.delete:  # plans only: no request
        return await run_upload(config, None, emit, only_paths=only_paths, count_totals=count_totals)
    assert store is not None
    if config.dry_run:  # --delete's dry run: read-only requests, to list what would be deleted
        emit(PhaseStarted("checking the bucket"))
        await store.check_readable()
        return await run_upload(config, store, emit, count_totals=count_totals)
    check_honoured(config, store)
    guard_secrets(store, run_headers(config))  # the run's one SSE-C key: rules and types change no secret
    emit(PhaseStarted("checking the bucket"))
    try:
        await store.check_readable()
    except ReadDeniedError as exc:
        # A write-only role (PutObject, no ListBucket): it can still upload everything. The listing says so once,
        # when it is refused too; --overwrite never cannot keep its promise without seeing the destination.
        if config.overwrite is Overwrite.NEVER:
            raise ReadDeniedError(f"{exc}; --overwrite never needs to see what the destination holds") from exc
        log.debug("going on without read access: %s", exc)
    probe_key = f"{config.destination.prefix}{PREFLIGHT_KEY_NAME}{os.urandom(16).hex()}"
    if stream is not None:
        return RunStats(*await upload_stream(config, store, stream, emit, write_probe_key=probe_key))
    return await run_upload(
        config, store, emit, only_paths=only_paths, count_totals=count_totals, write_probe_key=probe_key
    )


def check_honoured(config: UploadConfig, store: ObjectStore) -> None:
    """Refuse, before any request, a run that asks for what the store cannot do (``--sse`` on ``az://``...):
    never an upload that silently goes without it."""
    refused = refused_fields(run_headers(config), header_fields(store))
    if refused:
        raise ConfigError(f"{', '.join(refused)}: not supported for {config.destination.scheme}:// destinations")


def _failed_paths(report: Path, source: Path) -> list[str]:
    return list(failed_paths(report, source))


def _result(tally: ResultBuilder, stats: RunStats) -> UploadResult:
    return dataclasses.replace(
        tally.result(),
        elapsed_s=stats.elapsed_s,
        peak_requests=stats.peak_requests,
        peak_buffered_bytes=stats.peak_buffered_bytes,
        lowest_concurrency=stats.lowest_concurrency,
    )


def end_cut_short(on_event: EventHandler | None, so_far: UploadResult) -> None:
    """Send a run cut short its last event, ``RunFinished(so_far, interrupted=True)``. The run is already ending
    with its own error or cancellation, which must win over a subscriber that fails now (one whose stream is
    closed, say)."""
    if on_event is None:
        return
    try:
        on_event(RunFinished(so_far, interrupted=True))
    except Exception:
        log.debug("a subscriber failed on the last event of a run cut short", exc_info=True)
