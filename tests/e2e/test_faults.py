"""Reliability end to end: uploads through a fault-injecting proxy, outages, a file growing mid-upload, rotated
credentials and a restarted server. Every outcome is read back from the server directly, never through the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiobotocore.session
import anyio
import botocore.session
import pytest
from aiobotocore.credentials import AioRefreshableCredentials
from botocore.credentials import CredentialProvider
from botocore.exceptions import ClientError

import async_uploader
from async_uploader.config import MIB
from async_uploader.engine.multipart import ABORT_TIMEOUT_S
from async_uploader.events import Event, FileDone, FileFailed, FileRetried, FileStarted, PartDone
from tests.e2e.conftest import read_bucket
from tests.e2e.test_upload import assert_bucket_holds, expected_metadata
from tests.fault_proxy import FAULTS, FaultProxy
from tests.trees import make_tree, random_bytes
from tools.seaweedfs import S3Server, _stop, _wait_ready, running_seaweedfs

MULTIPART: dict[str, Any] = {"part_size": "5MiB", "multipart_threshold": "5MiB"}
READ_TIMEOUT_S = 2.0  # a stalled request costs this much, per attempt
POLL_S = 0.05
# What a failed file's reason looks like: the operation, then botocore's one-line explanation.
CLEAR_REASON = r"^(PutObject|CreateMultipartUpload|UploadPart \d+|CompleteMultipartUpload|HeadObject) failed: \S"


class OrphanedUploadsError(AssertionError):
    """Incomplete multipart uploads were left on the server (they are billed until aborted)."""


def build_tree(root: Path, *, small: int = 120, large_mib: tuple[float, ...] = (11, 13.5, 16)) -> int:
    """Small files (and an empty one) plus a few multipart files; returns how many files."""
    files = {f"small/{i % 6}/f{i}.bin": random_bytes(300 + 211 * i, seed=i) for i in range(small)}
    files["small/empty"] = b""
    files.update({f"large/{n}.bin": random_bytes(int(mib * MIB) + n, seed=1000 + n) for n, mib in enumerate(large_mib)})
    make_tree(root, files)
    return len(files)


def leftover_uploads(s3_client: Any, bucket: str) -> list[str]:
    return [upload["Key"] for upload in s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def assert_no_orphans(s3_client: Any, bucket: str) -> None:
    if leftovers := leftover_uploads(s3_client, bucket):
        raise OrphanedUploadsError(f"incomplete multipart uploads left on the server: {leftovers}")


def sync_client(server: S3Server, access_key: str | None = None, secret_key: str | None = None) -> Any:
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=access_key or server.access_key,
        aws_secret_access_key=secret_key or server.secret_key,
        region_name=server.region,
    )


def session_for(server: S3Server) -> Any:
    """An aiobotocore session with the server's credentials, whatever the environment says."""
    session = aiobotocore.session.AioSession()
    session.set_credentials(server.access_key, server.secret_key)
    return session


def uploader(server: S3Server, endpoint_url: str | None = None, **options: Any) -> async_uploader.Uploader:
    options.setdefault("session", session_for(server))
    options.setdefault("read_timeout", READ_TIMEOUT_S)
    return async_uploader.Uploader(endpoint_url=endpoint_url or server.endpoint_url, region=server.region, **options)


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout_s:g} s")
        time.sleep(POLL_S)


def report_faults(
    proxy: FaultProxy, record_property: Callable[[str, object], None], result: async_uploader.UploadResult
) -> None:
    """For docs/reliability.md: what the proxy did, and how many retries the uploader itself made."""
    counts = dict(sorted(proxy.counts.items()))
    record_property("faults", json.dumps(counts))
    record_property("retries", result.retries)
    print(f"proxy counts: {counts}; uploader retries: {result.retries}, took {result.elapsed_s:.1f} s")


# -- a seeded mix of faults ---------------------------------------------------------------------------------------


async def test_a_faulty_network_costs_retries_not_files(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, record_property: Any
) -> None:
    """12% of new requests draw a reset, a 503 SlowDown or a stall, repeated on up to 2 retries of the same
    request, so that some get past botocore's own attempts into the uploader's retry layer."""
    total = build_tree(tmp_path)
    retried: list[str] = []
    async with FaultProxy(s3_server.endpoint_url, seed=1, max_streak=3) as proxy:

        def on_event(event: Event) -> None:
            proxy.fault_rate = 0.12  # from the first event on: the preflight fails fast by design, untested here
            if isinstance(event, FileRetried):
                retried.append(event.reason)

        async with uploader(s3_server, proxy.url) as up:
            result = await up.upload(tmp_path, f"s3://{bucket}/net", on_event=on_event, **MULTIPART)
    report_faults(proxy, record_property, result)
    assert (result.uploaded, result.failed) == (total, 0), result.failures
    assert result.retries == len(retried) > 0
    assert all(proxy.counts[fault] > 0 for fault in FAULTS), proxy.counts
    assert_bucket_holds(s3_client, bucket, "net/", tmp_path)
    assert s3_client.head_object(Bucket=bucket, Key="net/large/2.bin")["ETag"].endswith('-4"')
    assert_no_orphans(s3_client, bucket)


async def test_lost_answers_to_idempotent_requests_are_retried_safely(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, record_property: Any
) -> None:
    """The server stores the object or part, or completes the upload, and the answer never arrives: PUTs and
    CompleteMultipartUpload are retried, and the result is as if nothing had happened."""
    total = build_tree(tmp_path, small=20, large_mib=(11,))
    only = r"^(PUT |POST \S*\?uploadId=)"
    async with FaultProxy(s3_server.endpoint_url, seed=3, faults=("lose_response",), only=only, max_streak=3) as proxy:

        def on_event(event: Event) -> None:
            proxy.fault_rate = 0.3

        async with uploader(s3_server, proxy.url) as up:
            result = await up.upload(tmp_path, f"s3://{bucket}/lost", on_event=on_event, **MULTIPART)
    report_faults(proxy, record_property, result)
    assert (result.uploaded, result.failed) == (total, 0), result.failures
    assert proxy.counts["lose_response"] > 0
    assert_bucket_holds(s3_client, bucket, "lost/", tmp_path)
    assert_no_orphans(s3_client, bucket)


async def test_a_lost_answer_to_create_multipart_leaves_no_orphan(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any
) -> None:
    """The server creates the upload and the answer is lost: the retry creates a second one, and the first must
    not be left behind, incomplete and billed (it was, until the create learned to sweep after a retry)."""
    make_tree(tmp_path, {"big.bin": random_bytes(11 * MIB, seed=4)})
    only = r"^POST \S*\?uploads"
    async with FaultProxy(s3_server.endpoint_url, faults=("lose_response",), only=only, max_faults=1) as proxy:

        def on_event(event: Event) -> None:
            if isinstance(event, FileStarted):
                proxy.fault_rate = 1.0

        async with uploader(s3_server, proxy.url) as up:
            result = await up.upload(tmp_path, f"s3://{bucket}", on_event=on_event, **MULTIPART)
    assert (result.uploaded, result.failed, proxy.counts["lose_response"]) == (1, 0, 1), result.failures
    assert_bucket_holds(s3_client, bucket, "", tmp_path)
    assert_no_orphans(s3_client, bucket)


class HiddenAttemptsError(AssertionError):
    """Requests were tried more often below the uploader's retry layer than the package means them to be."""


@pytest.mark.parametrize("lean", [False, True], ids=["aiobotocore", "lean"])
async def test_botocore_tries_a_request_at_most_twice(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, lean: bool
) -> None:
    """Two SlowDowns in a row must reach the uploader's retry layer (and its adaptive concurrency). They did not
    while ``retries={'max_attempts': 2}`` meant 2 *retries* to botocore: 3 tries below the uploader. The lean
    data path tries again by itself only on a stale pooled connection, so both SlowDowns reach the uploader."""
    make_tree(tmp_path, {"one.txt": b"one"})
    async with FaultProxy(s3_server.endpoint_url, faults=("slowdown",), only=r"^PUT ", max_faults=2) as proxy:

        def on_event(event: Event) -> None:
            proxy.fault_rate = 1.0  # the first two tries of the PUT are throttled, the third would go through

        async with uploader(s3_server, proxy.url, lean=lean) as up:
            result = await up.upload(tmp_path, f"s3://{bucket}", on_event=on_event)
    assert (result.uploaded, result.failed, proxy.counts["slowdown"]) == (1, 0, 2), result.failures
    if result.retries == 0:
        raise HiddenAttemptsError("botocore absorbed two SlowDown answers: it tried the PUT a third time itself")
    assert result.retries == (2 if lean else 1)
    assert_bucket_holds(s3_client, bucket, "", tmp_path)


# -- outages ------------------------------------------------------------------------------------------------------


async def test_a_five_second_outage_mid_run_is_ridden_out(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, record_property: Any
) -> None:
    """Once the first file has landed, every connection drops and none is accepted for 5 s: the files in flight
    back off and retry through it. (Full-jitter backoff means the run ends 5-15 s after the outage does.)"""
    outage_s = 5.0
    total = build_tree(tmp_path, small=40, large_mib=(11, 13.5))
    done_at: list[float] = []
    async with FaultProxy(s3_server.endpoint_url) as proxy:

        def on_event(event: Event) -> None:
            if isinstance(event, FileDone):
                done_at.append(time.monotonic())
                if len(done_at) == 1:
                    proxy.start_outage(outage_s)

        async with uploader(s3_server, proxy.url) as up:
            result = await up.upload(tmp_path, f"s3://{bucket}/out", on_event=on_event, **MULTIPART)
    report_faults(proxy, record_property, result)
    assert (result.uploaded, result.failed) == (total, 0), result.failures
    assert result.retries > 0
    assert proxy.counts["dropped"] > 0
    assert proxy.counts["refused"] > 0  # the uploader kept knocking during the outage...
    assert sum(t > done_at[0] + outage_s for t in done_at) > total // 2  # ...and most files landed after it
    assert_bucket_holds(s3_client, bucket, "out/", tmp_path)
    assert_no_orphans(s3_client, bucket)


RETRY_DEADLINE_S = 3.0


@dataclass
class OutageRun:
    source: Path
    bucket: str
    total: int
    result: async_uploader.UploadResult
    took_s: float
    failed_after_s: dict[str, float]
    """From a file's (last) start to its failure."""
    leftovers: list[str]
    counts: dict[str, int]


@pytest.fixture(scope="module")
def long_outage(s3_server: S3Server, s3_client: Any, tmp_path_factory: pytest.TempPathFactory) -> OutageRun:
    """One run, shared by the two tests below: an outage of 8 s starts once the first part has landed, and each
    file may try 3 times within 3 s. A few small files' PUTs are held at the proxy until then, so that single puts
    are in flight when it starts, however fast the others go (the lean path finishes them all in milliseconds)."""
    source = tmp_path_factory.mktemp("long-outage")
    total = build_tree(source, small=40)
    bucket = f"long-outage-{os.getpid()}"
    s3_client.create_bucket(Bucket=bucket)
    started_at: dict[str, float] = {}
    failed_after_s: dict[str, float] = {}

    async def run() -> tuple[async_uploader.UploadResult, float, dict[str, int]]:
        async with FaultProxy(s3_server.endpoint_url) as proxy:
            in_flight = proxy.hold(r"^PUT /\S*/small/", count=5)

            def on_event(event: Event) -> None:
                if isinstance(event, PartDone) and not proxy.counts["outages"]:
                    proxy.start_outage(8.0)
                    in_flight.set()
                elif isinstance(event, FileStarted):
                    started_at[event.path] = time.monotonic()
                elif isinstance(event, FileFailed):
                    failed_after_s[event.path] = time.monotonic() - started_at[event.path]

            async with uploader(s3_server, proxy.url) as up:
                started = time.monotonic()
                with anyio.fail_after(120):
                    result = await up.upload(
                        source,
                        f"s3://{bucket}",
                        retries=3,
                        retry_deadline=RETRY_DEADLINE_S,
                        on_event=on_event,
                        **MULTIPART,
                    )
                took_s = time.monotonic() - started
        return result, took_s, dict(sorted(proxy.counts.items()))

    result, took_s, counts = asyncio.run(run())
    leftovers = leftover_uploads(s3_client, bucket)
    return OutageRun(source, bucket, total, result, took_s, failed_after_s, leftovers, counts)


def test_an_outage_longer_than_the_deadline_fails_files_in_flight_and_returns(
    long_outage: OutageRun, s3_client: Any, record_property: Any
) -> None:
    run, result = long_outage, long_outage.result
    record_property("faults", json.dumps(run.counts))
    print(f"proxy counts: {run.counts}; {result.failed} failed, run took {run.took_s:.1f} s; {result.failures[0]}")
    assert not result.ok  # the CLI exits 1
    assert result.failed > 0
    assert result.uploaded + result.failed == run.total
    for path, reason in result.failures:
        assert reason.count("\n") == 0, (path, reason)
        assert re.match(CLEAR_REASON, reason), (path, reason)
    # Each single put gives up within its deadline and one last try; a multipart file also spends its abort.
    slowest = max(after for path, after in run.failed_after_s.items() if path.startswith("small/"))
    # Generous: the last try may still wait for its connect and read timeouts, on a machine that is also the server.
    assert slowest < RETRY_DEADLINE_S + 15, run.failed_after_s
    assert run.took_s < RETRY_DEADLINE_S + ABORT_TIMEOUT_S + 5  # returned on its own: no hang
    # Every file reported uploaded is on the server, and whatever is there is whole. A failed file may be there
    # too: a PUT the server stored just before the outage swallowed its answer.
    stored = read_bucket(s3_client, run.bucket)
    failed = {path for path, _ in result.failures}
    walked = {path.relative_to(run.source).as_posix() for path in run.source.rglob("*") if path.is_file()}
    assert walked - failed <= set(stored)
    for key, (body, metadata) in stored.items():
        assert body == (run.source / key).read_bytes(), key
        assert metadata == expected_metadata(run.source / key), key


def test_an_outage_longer_than_the_deadline_leaves_no_incomplete_upload(long_outage: OutageRun) -> None:
    """The files in flight fail during the outage, and so would a single try to abort their uploads: the abort
    must keep trying (it was tried once, failed, and the upload stayed on the server)."""
    assert long_outage.result.failed > 0
    if long_outage.leftovers:
        raise OrphanedUploadsError(f"incomplete multipart uploads left on the server: {long_outage.leftovers}")


# -- a file that changes while it is read -------------------------------------------------------------------------


@pytest.mark.parametrize("keeps_growing", [False, True], ids=["grows-once", "keeps-growing"])
async def test_a_file_growing_mid_upload_is_stored_whole_or_not_at_all(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, keeps_growing: bool
) -> None:
    make_tree(tmp_path, {"grows.bin": random_bytes(16 * MIB, seed=5)})
    path = tmp_path / "grows.bin"
    appended = 0
    events: list[Event] = []

    def on_event(event: Event) -> None:
        nonlocal appended
        events.append(event)
        if isinstance(event, PartDone) and (keeps_growing or not appended):
            with path.open("ab") as grow:  # on the loop, on purpose: the parts in flight see it at once
                grow.write(random_bytes(MIB // 2 + 1, seed=100 + appended))
            appended += 1

    async with uploader(s3_server) as up:
        result = await up.upload(tmp_path, f"s3://{bucket}", on_event=on_event, **MULTIPART)
    final = path.read_bytes()
    stored = read_bucket(s3_client, bucket)
    assert appended >= 1
    assert any(isinstance(e, FileRetried) and "changed" in e.reason for e in events)
    if keeps_growing:
        assert (result.uploaded, result.failed) == (0, 1)
        assert "kept changing" in result.failures[0][1]
        assert stored == {}
    else:
        assert (result.uploaded, result.failed) == (1, 0), result.failures
        assert stored == {"grows.bin": (final, expected_metadata(path))}
        assert stored["grows.bin"][1]["size"] == str(len(final)) == str(16 * MIB + MIB // 2 + 1)
    assert_no_orphans(s3_client, bucket)


# -- the server itself: credentials rotated under a run, and a restart --------------------------------------------


@dataclass
class Weed:
    """The ``weed`` that ``running_seaweedfs(data_dir)`` started, found by its command line, to signal or restart.

    ``running_seaweedfs`` keeps its process to itself; a restarted one is ours, stopped by ``close``.
    """

    server: S3Server
    pid: int
    argv: list[str]
    process: subprocess.Popen[bytes] | None = field(default=None)

    @classmethod
    def of(cls, server: S3Server) -> Weed:
        marker = f"-dir={server.data_dir}".encode()
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                if entry.name.isdigit() and marker in (argv := (entry / "cmdline").read_bytes().split(b"\0")):
                    return cls(server, int(entry.name), [os.fsdecode(arg) for arg in argv if arg])
        raise RuntimeError(f"no weed process serves {server.data_dir}")

    def reload_identities(self, identities: list[dict[str, Any]]) -> None:
        """Rewrite the -s3.config file and SIGHUP weed: it re-reads the file only then (not when it changes).

        Identities in the file at start-up are static: a reload neither changes nor removes them, and one
        missing from the file is kept too. Those added by a reload can be updated, so revoking a key means
        reloading its identity without it.
        """
        (self.server.data_dir / "s3-identities.json").write_text(json.dumps({"identities": identities}))
        os.kill(self.pid, signal.SIGHUP)

    def restart(self, grace_s: float = 1.0) -> None:
        """Stop (SIGTERM, then SIGKILL after ``grace_s``) and start again: same data, ports and credentials."""
        if self.process is not None:
            _stop(self.process, grace_s)
        else:
            os.killpg(self.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                wait_until(self._exited, "weed to exit on SIGTERM", grace_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            wait_until(self._exited, "weed to exit on SIGKILL")
        log = self.server.data_dir / "weed.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.server.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.process.pid
        master_port = next(arg.partition("=")[2] for arg in self.argv if arg.startswith("-master.port="))
        _wait_ready(self.process, self.server.endpoint_url, f"http://127.0.0.1:{master_port}", 60, log)

    def _exited(self) -> bool:
        """Gone, or a zombie that ``running_seaweedfs`` will reap."""
        try:
            return (Path("/proc") / str(self.pid) / "stat").read_text().rpartition(")")[2].split()[0] == "Z"
        except OSError:
            return True

    def close(self) -> None:
        if self.process is not None:
            _stop(self.process, 0.5)


@contextlib.contextmanager
def own_server(data_dir: Path) -> Iterator[tuple[S3Server, Weed]]:
    if not Path("/proc/self/cmdline").is_file():
        pytest.skip("finding and restarting weed reads /proc")
    with running_seaweedfs(data_dir, stop_timeout_s=0.5) as server:
        weed = Weed.of(server)
        try:
            yield server, weed
        finally:
            weed.close()


def identity(name: str, access_key: str, secret_key: str) -> dict[str, Any]:
    credentials = [{"accessKey": access_key, "secretKey": secret_key}] if access_key else []
    return {"name": name, "credentials": credentials, "actions": ["Admin", "Read", "Write", "List", "Tagging"]}


def accepted(server: S3Server, access_key: str, secret_key: str) -> bool:
    try:
        sync_client(server, access_key, secret_key).list_buckets()
    except ClientError:
        return False
    return True


class RotatingCredentials(CredentialProvider):  # type: ignore[misc]
    """Temporary credentials that rotate once, from ``first`` to ``second``, when ``expire_soon`` is called.

    botocore refreshes credentials that are close to expiry before signing a request; ``expire_soon`` moves the
    clock these credentials see 55 minutes on, so the first key is then 5 minutes from expiry.
    """

    METHOD = "test-rotation"

    def __init__(self, first: tuple[str, str], second: tuple[str, str]) -> None:
        super().__init__()
        self._second = second
        self._skew = timedelta(0)
        self.refreshes = 0
        self.refreshed = asyncio.Event()
        self.credentials = AioRefreshableCredentials(
            first[0], first[1], None, self._now() + timedelta(hours=1), self._refresh, self.METHOD, self._now
        )

    def _now(self) -> datetime:
        return datetime.now(UTC) + self._skew

    def expire_soon(self) -> None:
        self._skew = timedelta(minutes=55)

    async def _refresh(self) -> dict[str, Any]:
        self.refreshes += 1
        self.refreshed.set()
        expiry = (self._now() + timedelta(hours=1)).isoformat()
        return {"access_key": self._second[0], "secret_key": self._second[1], "token": None, "expiry_time": expiry}

    async def load(self) -> AioRefreshableCredentials:
        return self.credentials


@pytest.fixture(scope="module")
def iam_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, Weed]]:
    """A server of our own, whose identities the tests change; each test adds and revokes its own keys."""
    with own_server(tmp_path_factory.mktemp("iam-weed")) as pair:
        yield pair


def grant(server: S3Server, weed: Weed, **keys: tuple[str, str]) -> None:
    admin = identity("tester", server.access_key, server.secret_key)
    weed.reload_identities([admin, *(identity(name, *key) for name, key in keys.items())])
    wait_until(lambda: all(accepted(server, *key) for key in keys.values()), f"keys {sorted(keys)} accepted")


def revoke(server: S3Server, weed: Weed, name: str, key: tuple[str, str]) -> None:
    """Reload the identity with no key at all: merely leaving it out of the file would keep it."""
    weed.reload_identities([identity("tester", server.access_key, server.secret_key), identity(name, "", "")])
    wait_until(lambda: not accepted(server, *key), f"key {name} rejected")


def assert_held_after_reload(s3_client: Any, bucket: str, source: Path, timeout_s: float = 30.0) -> None:
    """``assert_bucket_holds``, on a server that has just reloaded its identities: SeaweedFS may answer a GET
    with InternalError for a while after a reload (seen once in a loaded CI run), so that is polled out, with a
    deadline; any other error, or a wrong byte, fails at once."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            assert_bucket_holds(s3_client, bucket, "", source)
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InternalError" or time.monotonic() > deadline:
                raise
            time.sleep(POLL_S)  # polling the server's state with a deadline, not synchronising by time


def rotating_session(rotation: RotatingCredentials) -> Any:
    session = aiobotocore.session.AioSession()
    session.get_component("credential_provider").insert_before("env", rotation)
    return session


async def test_credentials_rotated_mid_run_then_the_old_key_revoked(
    iam_server: tuple[S3Server, Weed], tmp_path: Path
) -> None:
    """Key A is rotated out for key B once the first file has landed, and revoked on the server as soon as no
    request signed with it is left unanswered; the run goes on with B and every file lands."""
    server, weed = iam_server
    key_a, key_b = ("ROTATEDKEY1AAAAAAAAA", "a" * 40), ("ROTATEDKEY1BBBBBBBBB", "b" * 40)
    grant(server, weed, rot_a1=key_a, rot_b1=key_b)
    s3_client = sync_client(server)
    s3_client.create_bucket(Bucket="rotation-1")
    total = build_tree(tmp_path, small=30, large_mib=(11, 16))
    rotation = RotatingCredentials(key_a, key_b)
    signed_with_a = f"Credential={key_a[0]}/"
    landed_at: list[float] = []  # files and parts
    revoked_at: list[float] = []

    def on_event(event: Event) -> None:
        if isinstance(event, FileDone | PartDone):
            landed_at.append(time.monotonic())
        if isinstance(event, FileDone):
            rotation.expire_soon()

    async with FaultProxy(server.endpoint_url) as proxy:

        async def revoke_a_once_unused() -> None:
            await rotation.refreshed.wait()
            quiet = 0  # two looks in a row with nothing signed by A between the client and the server
            while quiet < 2:
                await anyio.sleep(POLL_S)
                quiet = 0 if proxy.in_flight(signed_with_a) else quiet + 1
            await anyio.to_thread.run_sync(revoke, server, weed, "rot_a1", key_a)
            revoked_at.append(time.monotonic())

        with anyio.fail_after(60):
            session = rotating_session(rotation)
            async with uploader(server, proxy.url, session=session) as up, anyio.create_task_group() as group:
                group.start_soon(revoke_a_once_unused)
                # Capped, so that the run is still going once A is revoked.
                result = await up.upload(
                    tmp_path, "s3://rotation-1", on_event=on_event, max_bandwidth="6MiB/s", **MULTIPART
                )
                if not rotation.refreshed.is_set():
                    group.cancel_scope.cancel()  # never rotated: the assertions below say so
    assert (result.uploaded, result.failed) == (total, 0), result.failures
    assert rotation.refreshes == 1
    assert revoked_at, "A was never revoked"
    assert sum(t > revoked_at[0] for t in landed_at) >= 3  # files and parts landed with B alone
    assert not accepted(server, *key_a)
    assert_held_after_reload(s3_client, "rotation-1", tmp_path)
    assert_no_orphans(s3_client, "rotation-1")


class CredentialsRejectedError(AssertionError):
    """Files failed because the server rejected the credentials a request was signed with."""


async def test_a_request_signed_before_a_rotation_and_rejected_after_it_is_retried(
    iam_server: tuple[S3Server, Weed], tmp_path: Path
) -> None:
    """The proxy holds the first data request signed with A until A has been rotated out and revoked, then lets
    it reach the server, which rejects it: the uploader must sign it again with B, not fail the file (it failed
    it, 'credentials rejected' being final, until such rejections became retryable)."""
    server, weed = iam_server
    key_a, key_b = ("ROTATEDKEY2AAAAAAAAA", "c" * 40), ("ROTATEDKEY2BBBBBBBBB", "d" * 40)
    grant(server, weed, rot_a2=key_a, rot_b2=key_b)
    s3_client = sync_client(server)
    s3_client.create_bucket(Bucket="rotation-2")
    total = build_tree(tmp_path, small=30, large_mib=(11,))
    rotation = RotatingCredentials(key_a, key_b)

    async with FaultProxy(server.endpoint_url) as proxy:
        held: list[asyncio.Event] = []

        def on_event(event: Event) -> None:
            if not held:  # the first event comes after the preflight
                held.append(proxy.hold(f"Credential={key_a[0]}/"))
            if isinstance(event, FileDone):
                rotation.expire_soon()

        async def revoke_a_then_release() -> None:
            await rotation.refreshed.wait()
            await anyio.to_thread.run_sync(revoke, server, weed, "rot_a2", key_a)
            held[0].set()

        with anyio.fail_after(60):
            session = rotating_session(rotation)
            async with (
                uploader(server, proxy.url, session=session, read_timeout=30) as up,
                anyio.create_task_group() as group,
            ):
                group.start_soon(revoke_a_then_release)
                result = await up.upload(
                    tmp_path, "s3://rotation-2", on_event=on_event, max_bandwidth="10MiB/s", **MULTIPART
                )
    assert (proxy.counts["held"], rotation.refreshes) == (1, 1)
    if rejected := [failure for failure in result.failures if "credentials rejected" in failure[1]]:
        raise CredentialsRejectedError(f"files failed on a revoked key after the rotation: {rejected}")
    assert (result.uploaded, result.failed) == (total, 0), result.failures
    assert_held_after_reload(s3_client, "rotation-2", tmp_path)
    assert_no_orphans(s3_client, "rotation-2")


async def test_a_server_restart_mid_run_is_ridden_out(tmp_path: Path) -> None:
    """weed is stopped (SIGTERM, then SIGKILL) once the first file has landed and started again on the same data
    and ports: the uploader meets refused connections for a few seconds, then finishes."""
    source = tmp_path / "src"
    total = build_tree(source, small=40, large_mib=(11, 16))
    with own_server(tmp_path / "weed") as (server, weed):
        s3_client = sync_client(server)
        s3_client.create_bucket(Bucket="restart")
        restart_wanted = anyio.Event()
        back_at: list[float] = []
        done_at: list[float] = []

        def on_event(event: Event) -> None:
            if isinstance(event, FileDone):
                done_at.append(time.monotonic())
                restart_wanted.set()

        async def restart_when_asked() -> None:
            await restart_wanted.wait()
            await anyio.to_thread.run_sync(weed.restart, 0.5)
            back_at.append(time.monotonic())

        with anyio.fail_after(90):
            async with uploader(server) as up, anyio.create_task_group() as group:
                group.start_soon(restart_when_asked)
                result = await up.upload(source, "s3://restart", on_event=on_event, max_bandwidth="6MiB/s", **MULTIPART)
                if not restart_wanted.is_set():
                    group.cancel_scope.cancel()  # no file landed: the assertions below say so
        assert back_at, "the server was never restarted"
        assert (result.uploaded, result.failed) == (total, 0), result.failures
        assert result.retries > 0
        assert sum(t > back_at[0] for t in done_at) >= 2  # the run outlived the restart
        assert_bucket_holds(s3_client, "restart", "", source)
        assert_no_orphans(s3_client, "restart")


@pytest.mark.parametrize(("lean", "fault"), [(True, "internal_error"), (True, "reset"), (False, "internal_error")])
async def test_listings_failing_at_first_are_retried_not_replaced_by_a_head_per_file(
    tmp_path: Path, bucket: str, s3_server: S3Server, lean: bool, fault: Any
) -> None:
    """The re-run's listings (objects and multipart uploads) fail a few times before they answer: they are tried
    again like any other request, and the re-run still skips every file without a HEAD."""
    source = tmp_path / "src"
    make_tree(source, {f"d{i % 3}/f{i}.txt": b"x" * i for i in range(24)})
    async with FaultProxy(s3_server.endpoint_url) as proxy, uploader(s3_server, proxy.url, lean=lean) as up:
        first = await up.upload(source, f"s3://{bucket}/p")
        assert first.uploaded == 24
        del proxy.request_lines[:]
        proxy.fail_next(r"^GET \S*[?&](list-type=2|uploads=)", fault, count=6)
        result = await up.upload(source, f"s3://{bucket}/p")
    assert (result.skipped, result.uploaded, result.failed) == (24, 0, 0)
    assert proxy.counts[fault] == 6
    assert not [line for line in proxy.request_lines if line.startswith("HEAD ") and "/p/" in line]
