"""What one task of a ``--dask`` run does on its worker: upload its shard, sending its events to the client.

A task runs the ordinary run (``runner.run``) on a fresh event loop with its own connection, opened through the
provider registry with the worker's own credentials (the client sends no secret), and its own state file. Its
events travel back in batches (every ``EVENT_BATCH_INTERVAL_S`` or ``MAX_EVENTS_PER_BATCH`` events, never one
message per file) as Dask log events on the run's topic, in a wire form (``encode_event``) that msgpack carries
and ``decode_event`` turns back into the same event. ``cluster.py`` is the client's side.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import anyio

from .config import UploadConfig, default_state_path
from .errors import UploaderError, ungroup_run_errors
from .events import (
    Event,
    EventHandler,
    FileDone,
    FileFailed,
    FileNotStarted,
    FilePlanned,
    FileRetried,
    FileSkipped,
    FileStarted,
    PartDone,
    PhaseStarted,
    RunFinished,
    TotalsKnown,
    UploadResult,
)
from .providers.registry import ConnectOptions, provider_for
from .runner import run

log = logging.getLogger(__name__)

EVENT_BATCH_INTERVAL_S: Final = 0.5
MAX_EVENTS_PER_BATCH: Final = 500

_WIRE_TYPES: Final[dict[str, Callable[..., Event]]] = {
    cls.__name__: cls
    for cls in (
        TotalsKnown,
        FileStarted,
        PartDone,
        FileDone,
        FileFailed,
        FileSkipped,
        FilePlanned,
        FileRetried,
        FileNotStarted,
        PhaseStarted,
    )
}


def encode_event(event: Event) -> list[Any]:
    """An event as msgpack-able values: its type's name, then its fields in order.

    A name that is not UTF-8 (surrogate escapes) travels as bytes, which msgpack carries and ``decode_event``
    turns back into the same string.
    """
    return [type(event).__name__, *(_to_wire(getattr(event, f.name)) for f in dataclasses.fields(event))]


def decode_event(item: Sequence[Any]) -> Event:
    cls = _WIRE_TYPES[item[0]]
    return cls(*(value.decode("utf-8", "surrogatepass") if isinstance(value, bytes) else value for value in item[1:]))


def _to_wire(value: Any) -> Any:
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogatepass")
    return value


class EventBatcher:
    """Gathers a shard's events into batches for the trip to the client: one message per interval or per
    ``max_events`` events, not one per file (100k files would be 100k messages through the scheduler).

    ``RunFinished`` stays behind: the client adds the shards' results up itself. The clock is injected so the
    batching is tested without sleeping.
    """

    def __init__(
        self,
        send: Callable[[int, list[list[Any]]], None],
        *,
        interval_s: float = EVENT_BATCH_INTERVAL_S,
        max_events: int = MAX_EVENTS_PER_BATCH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self.interval_s = interval_s
        self._max_events = max_events
        self._clock = clock
        self._pending: list[list[Any]] = []
        self._last_sent = clock()
        self.batches_sent = 0

    def add(self, event: Event) -> None:
        if isinstance(event, RunFinished):
            return
        self._pending.append(encode_event(event))
        if len(self._pending) >= self._max_events:
            self.flush()
        else:
            self.flush_if_due()

    def flush_if_due(self) -> None:
        if self._clock() - self._last_sent >= self.interval_s:
            self.flush()

    def flush(self) -> None:
        """Send what is pending, if anything, as batch number ``batches_sent``."""
        self._last_sent = self._clock()
        if self._pending:
            batch, self._pending = self._pending, []
            self._send(self.batches_sent, batch)
            self.batches_sent += 1


@dataclass(frozen=True, slots=True)
class ShardJob:
    """One task's work: the run's config narrowed to a shard, and where to send its events."""

    config: UploadConfig
    topic: str
    stop_event: str
    """The name of the ``distributed.Event`` the client sets to stop every shard (Ctrl-C)."""
    default_state: bool
    """Keep the state in the worker's default state file, not the client's default path."""
    count_totals: bool = True
    """Count the shard's files for the display's totals (``runner.run``)."""
    lean: bool = True
    """The S3 connection's ``lean`` (``ConnectOptions.lean``)."""


@dataclass(frozen=True, slots=True)
class ShardOutcome:
    """What a task returns: which attempt ran, how many batches it sent, and its result or run-level error."""

    shard: int
    attempt: str
    batches: int
    result: UploadResult | None
    error: UploaderError | None = None


def run_shard(job: ShardJob) -> ShardOutcome:
    """On a worker: upload one shard on a fresh event loop, sending its events to the client as it goes.

    A run-level error (credentials, bucket) comes back as a value rather than raised: Dask would try it again,
    and it would fail the same way. A shard stopped by the client returns ``result=None``.
    """
    from distributed import Event as StopEvent
    from distributed import get_client, get_worker

    worker = get_worker()
    shard = job.config.shard
    assert shard is not None
    attempt = uuid.uuid4().hex
    config = dataclasses.replace(job.config, state_file=default_state_path()) if job.default_state else job.config

    def send(seq: int, events: list[list[Any]]) -> None:
        worker.log_event(job.topic, {"shard": shard.index, "attempt": attempt, "seq": seq, "events": events})

    batcher = EventBatcher(send)
    stop = StopEvent(job.stop_event, client=get_client())  # looked up here: the polling thread has no worker
    try:
        result = asyncio.run(_upload_shard(config, batcher, stop.is_set, job.count_totals, job.lean))
    except UploaderError as exc:
        return ShardOutcome(shard.index, attempt, batcher.batches_sent, None, exc)
    finally:
        batcher.flush()  # queued on the worker's stream ahead of the task's result
    return ShardOutcome(shard.index, attempt, batcher.batches_sent, result)


async def _upload_shard(
    config: UploadConfig, batcher: EventBatcher, stopped: Callable[[], bool], count_totals: bool, lean: bool
) -> UploadResult | None:
    """The shard's upload, beside a ticker; ``None`` if the client stopped it. Errors are raised bare, not grouped."""
    result: UploadResult | None = None
    with ungroup_run_errors():
        async with anyio.create_task_group() as group:

            async def tick() -> None:
                """Sends a batch that waits for the next event too long, and stops the upload when asked to."""
                while True:
                    await anyio.sleep(batcher.interval_s)
                    batcher.flush_if_due()
                    try:
                        stop = await anyio.to_thread.run_sync(stopped)
                    except (OSError, TimeoutError, RuntimeError) as exc:  # the scheduler is unreachable: upload on
                        log.debug("cannot tell whether to stop: %s", exc)
                        stop = False
                    if stop:
                        group.cancel_scope.cancel()  # aborts multipart uploads in flight, unless --keep-partial

            group.start_soon(tick)
            try:
                result = await _run_connected(config, batcher.add, count_totals, lean)
            finally:
                group.cancel_scope.cancel()
    return result


async def _run_connected(config: UploadConfig, on_event: EventHandler, count_totals: bool, lean: bool) -> UploadResult:
    """``runner.run`` over a connection of the worker's own, opened through the provider registry."""
    if config.dry_run:  # plans only: no connection, no credentials, no request
        return await run(config, None, on_event, count_totals=count_totals)
    provider = provider_for(config.destination.scheme)
    options = ConnectOptions(
        max_connections=config.concurrency,
        connect_timeout_s=config.connect_timeout_s,
        read_timeout_s=config.read_timeout_s,
        endpoint_url=config.endpoint_url,
        region=config.region,
        profile=config.profile,
        request_payer=config.request_payer,
        lean=lean,
    )
    async with provider(options) as connection:
        store = connection.store(config.destination.bucket)
        return await run(config, store, on_event, count_totals=count_totals)
