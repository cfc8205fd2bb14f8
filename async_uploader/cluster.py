"""``--dask ADDRESS``: one upload spread over a Dask cluster, a shard per task, its progress streamed back.

The client plans ``N`` shards (``shards.Shard``: a pure function of the paths) and submits one task per shard.
Each task (``cluster_worker.run_shard``) runs the ordinary run on its worker over the same SOURCE path (shared
storage: NFS, Lustre, a mounted bucket), with the worker's own credentials and state file, and streams its
events back in batches on a topic of the run's own; the client hands them to ``on_event`` (the CLI's display)
and spools each attempt's records to a temporary report. When a worker dies, the scheduler runs its shard again (its
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
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import anyio

from .cluster_worker import ShardJob, ShardOutcome, decode_event, run_shard
from .config import UploadConfig, default_state_path
from .errors import ClusterError, ConfigError
from .events import EventHandler, RunFinished, TotalsKnown, UploadResult
from .report import ReportWriter, merge_reports
from .runner import end_cut_short
from .source.shards import Shard

if TYPE_CHECKING:
    from distributed import Client, Future

log = logging.getLogger(__name__)

SHARD_RETRIES: Final = 2
"""Tries again a shard whose task raised (not a run-level error: that would fail the same way); a worker that
dies is the scheduler's business (``distributed.scheduler.allowed-failures``, 3 by default)."""
CONNECT_TIMEOUT_S: Final = 30.0
WORKER_WAIT_S: Final = 60.0
"""How long a run waits for a first worker to join a cluster that has none yet (one scaling up)."""
EVENTS_DRAIN_S: Final = 30.0
"""How long the client waits, once every shard is done, for batches still on their way through the scheduler."""


def import_distributed() -> ModuleType:
    """``distributed``, or a ``ConfigError`` that says which extra to install."""
    try:
        import distributed
    except ImportError:
        raise ConfigError("--dask needs the dask extra: pip install 'async-uploader[dask]'") from None
    return distributed


def check_options(config: UploadConfig, shards: int | None) -> None:
    """What makes a distributed run impossible, found before connecting to anything."""
    if config.destination.key is not None:
        raise ConfigError("--dask spreads a tree over a cluster: a single file or a stream is uploaded without it")
    if config.delete:
        raise ConfigError(
            "--delete cannot be used with --dask: each shard sees part of the tree, and would delete the rest"
        )
    import_distributed()
    if config.shard is not None:
        raise ConfigError("--dask plans its own shards: give --shards N (or nothing), not --shard K/N")
    if shards is not None and shards < 1:
        raise ConfigError(f"--shards must be at least 1, got {shards}")


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
    on_event: EventHandler | None = None,
    count_totals: bool = True,
    lean: bool = True,
) -> UploadResult:
    """Run ``config`` over a Dask cluster: ``shards`` tasks (default: one per worker thread), a shard each.

    ``scheduler`` is an address (``tcp://host:8786``) or a synchronous ``distributed.Client`` (which stays the
    caller's). Raises ``ClusterError`` when the cluster cannot be reached or a shard cannot finish there, and a
    worker's run-level error (``CredentialsError``, ``BucketError``...) as it was raised there. As with
    ``runner.run``, ``on_event`` gets a last ``RunFinished``, marked ``interrupted`` if the run was cut short;
    ``count_totals`` is passed on to each shard's run, and ``lean`` to each worker's connection
    (``ConnectOptions.lean``).
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
            completed = False
            try:
                for index in range(count):
                    job = ShardJob(
                        dataclasses.replace(worker_config, shard=Shard(index, count)),
                        topic,
                        stop.name,
                        default_state,
                        count_totals,
                        lean,
                    )
                    key = f"{topic}-shard-{index}-of-{count}"
                    futures.append(client.submit(run_shard, job, key=key, pure=False, retries=SHARD_RETRIES))
                await anyio.to_thread.run_sync(_wait_all, distributed, client, futures, abandon_on_cancel=True)
                outcomes, failures = await anyio.to_thread.run_sync(collect_outcomes, futures)
                await events.drain(outcomes)
                completed = True
            except BaseException:
                with anyio.CancelScope(shield=True), anyio.move_on_after(CONNECT_TIMEOUT_S):
                    await anyio.to_thread.run_sync(_stop, stop, client, futures, abandon_on_cancel=True)
                raise
            finally:
                client.unsubscribe_topic(topic)
                result = events.merge(outcomes, config.report)
                if not completed:
                    end_cut_short(on_event, dataclasses.replace(result, elapsed_s=time.monotonic() - started))
            with contextlib.suppress(Exception):  # the flag is the scheduler's memory; leaving it costs a name
                await anyio.to_thread.run_sync(stop.clear)
    result = dataclasses.replace(result, elapsed_s=time.monotonic() - started)
    error = _run_error(events, outcomes, failures, count)
    if error is not None:
        end_cut_short(on_event, result)
        raise error
    if on_event is not None:
        on_event(RunFinished(result))
    return result


def _run_error(
    events: ShardEvents, outcomes: Sequence[ShardOutcome], failures: Sequence[tuple[int, str]], count: int
) -> BaseException | None:
    """What ends a distributed run that every shard came back from: an ``on_event`` that raised, a shard's
    run-level error as it was raised on its worker, or shards that could not finish."""
    if events.error is not None:
        return events.error
    for outcome in outcomes:
        if outcome.error is not None:
            return outcome.error
    if failures:
        shard, reason = failures[0]
        return ClusterError(
            f"shard {shard}/{count} could not finish on the cluster ({reason}); {len(failures)} of {count} shards "
            "did not finish: run again to upload the rest (what is uploaded is skipped)"
        )
    return None


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
