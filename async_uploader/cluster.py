"""``--dask ADDRESS``: one upload spread over a Dask cluster, a shard per task, its progress streamed back.

The client plans ``N`` shards (``shards.Shard``: a pure function of the paths) and submits one task per shard.
Each task runs the ordinary engine (``api.run_config``) on its worker, on a fresh event loop with its own
connections, over the same SOURCE path (shared storage: NFS, Lustre, a mounted bucket), with the worker's own
credentials and state file: the client sends no secret. A task's events travel back in batches (every
``EVENT_BATCH_INTERVAL_S`` or ``MAX_EVENTS_PER_BATCH`` events, never one message per file) as Dask log events on
a topic of the run's own; the client hands them to ``on_event`` (the CLI's display) and spools each attempt's
records to a temporary report. When a worker dies, the scheduler runs its shard again (its
``allowed-failures``); the retry skips what is already uploaded and resumes or aborts the multipart uploads left
open, and ``merge_reports`` keeps each path once, at its best record. ``distributed`` is imported only when a
run uses it, so the base install works without the ``dask`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import anyio

from .api import run_config
from .config import UploadConfig, default_state_path
from .errors import ClusterError, ConfigError, UploaderError
from .events import (
    Event,
    EventHandler,
    FileDone,
    FileFailed,
    FilePlanned,
    FileRetried,
    FileSkipped,
    FileStarted,
    PartDone,
    RunFinished,
    TotalsKnown,
    UploadResult,
)
from .report import ReportWriter, merge_reports
from .source.shards import Shard

if TYPE_CHECKING:
    from distributed import Client, Future

log = logging.getLogger(__name__)

EVENT_BATCH_INTERVAL_S: Final = 0.5
MAX_EVENTS_PER_BATCH: Final = 500
SHARD_RETRIES: Final = 2
"""Tries again a shard whose task raised (not a run-level error: that would fail the same way); a worker that
dies is the scheduler's business (``distributed.scheduler.allowed-failures``, 3 by default)."""
CONNECT_TIMEOUT_S: Final = 30.0
WORKER_WAIT_S: Final = 60.0
"""How long a run waits for a first worker to join a cluster that has none yet (one scaling up)."""
EVENTS_DRAIN_S: Final = 30.0
"""How long the client waits, once every shard is done, for batches still on their way through the scheduler."""

_WIRE_TYPES: Final[dict[str, Callable[..., Event]]] = {
    cls.__name__: cls
    for cls in (TotalsKnown, FileStarted, PartDone, FileDone, FileFailed, FileSkipped, FilePlanned, FileRetried)
}


def import_distributed() -> ModuleType:
    """``distributed``, or a ``ConfigError`` that says which extra to install."""
    try:
        import distributed
    except ImportError:
        raise ConfigError("--dask needs the dask extra: pip install 'async-uploader[dask]'") from None
    return distributed


def check_options(config: UploadConfig, shards: int | None) -> None:
    """What makes a distributed run impossible, found before connecting to anything."""
    import_distributed()
    if config.shard is not None:
        raise ConfigError("--dask plans its own shards: give --shards N (or nothing), not --shard K/N")
    if shards is not None and shards < 1:
        raise ConfigError(f"--shards must be at least 1, got {shards}")


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
    lean: bool = True
    """The S3 connection's ``lean`` (``run_config``'s)."""


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
        result = asyncio.run(_upload_shard(config, job.lean, batcher, stop.is_set))
    except UploaderError as exc:
        return ShardOutcome(shard.index, attempt, batcher.batches_sent, None, exc)
    finally:
        batcher.flush()  # queued on the worker's stream ahead of the task's result
    return ShardOutcome(shard.index, attempt, batcher.batches_sent, result)


async def _upload_shard(
    config: UploadConfig, lean: bool, batcher: EventBatcher, stopped: Callable[[], bool]
) -> UploadResult | None:
    """The shard's upload, beside a ticker; ``None`` if the client stopped it. Errors are raised bare, not grouped."""
    outcome: UploadResult | UploaderError | None = None
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
            outcome = await run_config(config, lean=lean, on_event=batcher.add)
        except UploaderError as exc:
            outcome = exc
        finally:
            group.cancel_scope.cancel()
    if isinstance(outcome, UploaderError):
        raise outcome
    return outcome


@dataclass(slots=True)
class _Attempt:
    shard: int
    spool: Path
    """Its records so far, a report without a summary; reopened for each batch, so that a thousand shards do
    not hold a thousand files open."""
    batches: int = 0


class ShardEvents:
    """The client's end of the stream: decodes the batches, passes the events on, spools each attempt's records.

    Runs on the client's event loop. ``TotalsKnown`` is passed on as the sum over the shards of the latest of
    each, so the display's denominators cover the whole tree. After a retry the live counts include the files
    the retry found already uploaded; the summary and the report, merged from the spools, count each file once.
    """

    def __init__(self, shards: int, spool: Path, on_event: EventHandler | None) -> None:
        self._shards = shards
        self._spool = spool
        self._on_event = on_event
        self._attempts: dict[str, _Attempt] = {}
        self._totals: dict[int, TotalsKnown] = {}
        self._arrived = asyncio.Event()
        self.error: BaseException | None = None

    def receive(self, message: dict[str, Any]) -> None:
        try:
            self._receive(message)
        except Exception as exc:  # an on_event that raises: kept and raised from the run, as the engine would
            log.debug("event handler failed", exc_info=True)
            if self.error is None:
                self.error = exc
        self._arrived.set()

    def _receive(self, message: dict[str, Any]) -> None:
        shard, attempt_id = int(message["shard"]), str(message["attempt"])
        attempt = self._attempt(shard, attempt_id)
        attempt.batches += 1
        spool = ReportWriter(attempt.spool, append=True)
        try:
            for item in message["events"]:
                event = decode_event(item)
                if isinstance(event, TotalsKnown):
                    self._totals[shard] = event
                    totals = self._totals.values()
                    event = TotalsKnown(sum(t.files for t in totals), sum(t.bytes for t in totals))
                else:
                    spool.handle(event)
                if self._on_event is not None and self.error is None:
                    self._on_event(event)
        finally:
            spool.close()

    def _attempt(self, shard: int, attempt_id: str) -> _Attempt:
        attempt = self._attempts.get(attempt_id)
        if attempt is None:
            spool = self._spool / f"shard-{shard}-{len(self._attempts)}.jsonl"
            spool.touch()
            attempt = self._attempts[attempt_id] = _Attempt(shard, spool)
        return attempt

    async def drain(self, outcomes: Sequence[ShardOutcome]) -> None:
        """Wait for every batch the finished shards say they sent; they may trail their results."""
        with anyio.move_on_after(EVENTS_DRAIN_S):
            while any(self._received(o) < o.batches for o in outcomes):
                self._arrived.clear()
                await self._arrived.wait()
            return
        log.warning("some progress events of the workers did not arrive; the report may miss files")

    def _received(self, outcome: ShardOutcome) -> int:
        attempt = self._attempts.get(outcome.attempt)
        return 0 if attempt is None else attempt.batches

    def merge(self, outcomes: Sequence[ShardOutcome], report: Path | None) -> UploadResult:
        """End the spools of the finished attempts with their results and merge them all, each path once; a shard
        never heard of counts as not finished."""
        for outcome in outcomes:
            attempt = self._attempt(outcome.shard, outcome.attempt)
            if outcome.result is not None:
                spool = ReportWriter(attempt.spool, append=True)
                spool.handle(RunFinished(outcome.result))
                spool.close()
        heard = {attempt.shard for attempt in self._attempts.values()}
        for shard in set(range(self._shards)) - heard:
            self._attempt(shard, f"silent-{shard}")  # an empty spool: a report without a summary
        by_shard: dict[int, list[Path]] = {}
        for attempt in self._attempts.values():  # in order of arrival: a retry after the attempt it replaces
            by_shard.setdefault(attempt.shard, []).append(attempt.spool)
        merged = merge_reports([paths for _, paths in sorted(by_shard.items())], report)
        finished = [o.result for o in outcomes if o.result is not None]
        return dataclasses.replace(
            merged.result,
            planned=sum(r.planned for r in finished),
            bytes_planned=sum(r.bytes_planned for r in finished),
            retries=sum(r.retries for r in finished),
            peak_requests=max((r.peak_requests for r in finished), default=0),
            peak_buffered_bytes=max((r.peak_buffered_bytes for r in finished), default=0),
            lowest_concurrency=min((r.lowest_concurrency for r in finished if r.lowest_concurrency), default=0),
        )


async def run_distributed(
    config: UploadConfig,
    *,
    scheduler: str | Client,
    shards: int | None = None,
    lean: bool = True,
    on_event: EventHandler | None = None,
) -> UploadResult:
    """Run ``config`` over a Dask cluster: ``shards`` tasks (default: one per worker thread), a shard each, each
    over a connection of its worker's (``lean`` as ``run_config``'s).

    ``scheduler`` is an address (``tcp://host:8786``) or a synchronous ``distributed.Client`` (which stays the
    caller's). Raises ``ClusterError`` when the cluster cannot be reached or a shard cannot finish there, and a
    worker's run-level error (``CredentialsError``, ``BucketError``...) as it was raised there.
    """
    check_options(config, shards)
    distributed = import_distributed()
    started = time.monotonic()
    if config.report is not None:
        ReportWriter(config.report).close()  # written at the end, but a path it cannot write is refused now
    # Paths mean the same on every machine only when absolute; each worker keeps its own default state file.
    worker_config = dataclasses.replace(config, source=config.source.absolute(), report=None)
    default_state = config.state_file is not None and config.state_file == default_state_path()
    async with _connected(scheduler) as client:
        count = shards if shards is not None else await _worker_threads(client)
        topic = f"async-uploader-{uuid.uuid4().hex[:12]}"
        stop = distributed.Event(f"{topic}-stop", client=client)
        loop = asyncio.get_running_loop()
        with tempfile.TemporaryDirectory(prefix="async-uploader-dask-") as spool:
            events = ShardEvents(count, Path(spool), on_event)

            def deliver(entry: tuple[float, Any]) -> None:  # on the Dask client's own thread
                with contextlib.suppress(RuntimeError):  # our loop is already closed: nobody listens
                    loop.call_soon_threadsafe(events.receive, entry[1])

            client.subscribe_topic(topic, deliver)
            futures: list[Future[Any]] = []
            outcomes: list[ShardOutcome] = []
            try:
                for index in range(count):
                    job = ShardJob(
                        dataclasses.replace(worker_config, shard=Shard(index, count)),
                        topic,
                        stop.name,
                        default_state,
                        lean,
                    )
                    key = f"{topic}-shard-{index}-of-{count}"
                    futures.append(client.submit(run_shard, job, key=key, pure=False, retries=SHARD_RETRIES))
                await anyio.to_thread.run_sync(_wait_all, distributed, client, futures, abandon_on_cancel=True)
                outcomes, failures = await anyio.to_thread.run_sync(collect_outcomes, futures)
                await events.drain(outcomes)
            except BaseException:
                with anyio.CancelScope(shield=True), anyio.move_on_after(CONNECT_TIMEOUT_S):
                    await anyio.to_thread.run_sync(_stop, stop, client, futures, abandon_on_cancel=True)
                raise
            finally:
                client.unsubscribe_topic(topic)
                result = events.merge(outcomes, config.report)
            with contextlib.suppress(Exception):  # the flag is the scheduler's memory; leaving it costs a name
                await anyio.to_thread.run_sync(stop.clear)
    if events.error is not None:
        raise events.error
    for outcome in outcomes:
        if outcome.error is not None:
            raise outcome.error
    if failures:
        shard, reason = failures[0]
        raise ClusterError(
            f"shard {shard}/{count} could not finish on the cluster ({reason}); {len(failures)} of {count} shards "
            "did not finish: run again to upload the rest (what is uploaded is skipped)"
        )
    result = dataclasses.replace(result, elapsed_s=time.monotonic() - started)
    if on_event is not None:
        on_event(RunFinished(result))
    return result


def _wait_all(distributed: ModuleType, client: Client, futures: Sequence[Future[Any]]) -> None:
    with client.as_current():  # wait() takes the current client, which is ours only in this block
        distributed.wait(futures)


def collect_outcomes(futures: Sequence[Future[Any]]) -> tuple[list[ShardOutcome], list[tuple[int, str]]]:
    """The outcomes of the shards that finished, and ``(shard, why)`` for those that did not."""
    outcomes: list[ShardOutcome] = []
    failures: list[tuple[int, str]] = []
    for index, future in enumerate(futures):
        if future.status == "finished":
            outcome = future.result()
            if outcome.result is not None or outcome.error is not None:
                outcomes.append(outcome)
                continue
            failures.append((index, "stopped"))
        else:
            exc = future.exception() if future.status == "error" else None
            failures.append((index, f"{type(exc).__name__}: {exc}" if exc is not None else str(future.status)))
    return outcomes, failures


def _stop(stop: Any, client: Client, futures: Sequence[Future[Any]]) -> None:
    """Ask running shards to stop (they abort their multipart uploads) and drop those not started."""
    stop.set()
    client.cancel(list(futures))


@contextlib.asynccontextmanager
async def _connected(scheduler: str | Client) -> AsyncIterator[Client]:
    """A client of the scheduler at an address (closed on exit), or the caller's own client."""
    distributed = import_distributed()
    if not isinstance(scheduler, str):
        if not isinstance(scheduler, distributed.Client) or scheduler.asynchronous:
            raise ConfigError("scheduler must be an address (tcp://host:8786) or a synchronous distributed.Client")
        yield scheduler
        return
    try:
        client = await anyio.to_thread.run_sync(
            lambda: distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        )
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    try:
        yield client
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(client.close)


async def _worker_threads(client: Client) -> int:
    """The default shard count: one shard per worker thread, so every thread the cluster offers uploads."""
    threads: dict[str, int] = await anyio.to_thread.run_sync(client.nthreads)
    if not threads:
        try:
            await anyio.to_thread.run_sync(lambda: client.wait_for_workers(1, timeout=WORKER_WAIT_S))
        except TimeoutError:
            raise ClusterError(f"no Dask worker joined the cluster in {WORKER_WAIT_S:.0f} s") from None
        threads = await anyio.to_thread.run_sync(client.nthreads)
    return max(1, sum(threads.values()))
