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
from async_uploader.events import Event, FileDone, FileFailed, FileRetried, PartDone
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
    return async_uploader.Uploader(
        endpoint_url=endpoint_url or server.endpoint_url, region=server.region, read_timeout=READ_TIMEOUT_S, **options
    )


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout_s:g} s")
        time.sleep(POLL_S)


def report_faults(proxy: FaultProxy, record_property: Callable[[str, object], None]) -> None:
    counts = dict(sorted(proxy.counts.items()))
    record_property("faults", json.dumps(counts))
    print(f"proxy counts: {counts}")


# -- a seeded mix of faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
async def test_a_faulty_network_costs_retries_not_files(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, seed: int, record_property: Any
) -> None:
    """12% of new requests draw a reset, a 503 SlowDown or a stall, repeated on up to 2 retries of the same
    request, so faults get past botocore's own second attempt into the uploader's retry layer."""
    total = build_tree(tmp_path)
    retried: list[str] = []
    async with FaultProxy(s3_server.endpoint_url, seed=seed, max_streak=3) as proxy:

        def on_event(event: Event) -> None:
            proxy.fault_rate = 0.12  # from the first event on: the preflight fails fast by design, untested here
            if isinstance(event, FileRetried):
                retried.append(event.reason)

        async with uploader(s3_server, proxy.url) as up:
            result = await up.upload(tmp_path, f"s3://{bucket}/net", on_event=on_event, **MULTIPART)
    report_faults(proxy, record_property)
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
    report_faults(proxy, record_property)
    assert (result.uploaded, result.failed) == (total, 0), result.failures
    assert proxy.counts["lose_response"] > 0
    assert_bucket_holds(s3_client, bucket, "lost/", tmp_path)
    assert_no_orphans(s3_client, bucket)


@pytest.mark.xfail(
    strict=True,
    raises=OrphanedUploadsError,
    reason="bug: a CreateMultipartUpload whose answer is lost is retried (by botocore) and the upload the first "
    "attempt created is never aborted: an orphaned, billed, incomplete multipart upload after a clean run",
)
async def test_a_lost_answer_to_create_multipart_leaves_no_orphan(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any
) -> None:
    make_tree(tmp_path, {"big.bin": random_bytes(11 * MIB, seed=4)})
    only = r"^POST \S*\?uploads"
    async with FaultProxy(s3_server.endpoint_url, faults=("lose_response",), only=only, max_faults=1) as proxy:

        def on_event(event: Event) -> None:
            proxy.fault_rate = 1.0  # after the preflight, whose own probe upload is created the same way

        async with uploader(s3_server, proxy.url) as up:
            result = await up.upload(tmp_path, f"s3://{bucket}", on_event=on_event, **MULTIPART)
    assert (result.uploaded, result.failed, proxy.counts["lose_response"]) == (1, 0, 1), result.failures
    assert_bucket_holds(s3_client, bucket, "", tmp_path)
    assert_no_orphans(s3_client, bucket)


# -- outages ------------------------------------------------------------------------------------------------------


async def test_a_five_second_outage_mid_run_is_ridden_out(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, record_property: Any
) -> None:
    outage_s = 5.0
    total = build_tree(tmp_path)
    done_at: list[float] = []
    async with FaultProxy(s3_server.endpoint_url) as proxy:

        def on_event(event: Event) -> None:
            if isinstance(event, FileDone):
                done_at.append(time.monotonic())
                if len(done_at) == 1:
                    proxy.start_outage(outage_s)

        async with uploader(s3_server, proxy.url) as up:
            result = await up.upload(tmp_path, f"s3://{bucket}/out", on_event=on_event, **MULTIPART)
    report_faults(proxy, record_property)
    assert (result.uploaded, result.failed) == (total, 0), result.failures
    assert result.retries > 0
    assert proxy.counts["dropped"] > 0
    assert proxy.counts["refused"] > 0  # the uploader kept knocking during the outage...
    assert sum(t > done_at[0] + outage_s for t in done_at) > total // 2  # ...and most files landed after it
    assert_bucket_holds(s3_client, bucket, "out/", tmp_path)
    assert_no_orphans(s3_client, bucket)


@dataclass
class OutageRun:
    source: Path
    bucket: str
    total: int
    result: async_uploader.UploadResult
    took_s: float
    outage_s: float
    leftovers: list[str]


@pytest.fixture(scope="module")
def long_outage(s3_server: S3Server, s3_client: Any, tmp_path_factory: pytest.TempPathFactory) -> OutageRun:
    """One run, shared by the tests below: an outage of 8 s starts once the first part has landed, and each file
    may retry 3 times within 3 s."""
    source = tmp_path_factory.mktemp("long-outage")
    total = build_tree(source, small=40)
    bucket = f"long-outage-{os.getpid()}"
    s3_client.create_bucket(Bucket=bucket)
    outage_s = 8.0

    async def run() -> tuple[async_uploader.UploadResult, float]:
        async with FaultProxy(s3_server.endpoint_url) as proxy:

            def on_event(event: Event) -> None:
                if isinstance(event, PartDone) and not proxy.counts["outages"]:
                    proxy.start_outage(outage_s)

            async with uploader(s3_server, proxy.url) as up:
                started = time.monotonic()
                result = await up.upload(
                    source, f"s3://{bucket}", retries=3, retry_deadline=3, on_event=on_event, **MULTIPART
                )
                return result, time.monotonic() - started

    result, took_s = asyncio.run(run())
    return OutageRun(source, bucket, total, result, took_s, outage_s, leftover_uploads(s3_client, bucket))


def test_an_outage_longer_than_the_deadline_fails_files_in_flight_and_returns(
    long_outage: OutageRun, s3_client: Any
) -> None:
    run, result = long_outage, long_outage.result
    assert not result.ok  # the CLI exits 1
    assert result.failed > 0
    assert result.uploaded + result.failed == run.total
    for path, reason in result.failures:
        assert reason.count("\n") == 0, (path, reason)
        assert re.match(CLEAR_REASON, reason), (path, reason)
    # Returned within the deadline's reach, long before the outage even ended, not after a hang.
    assert run.took_s < run.outage_s + 10, run.took_s
    # What was reported uploaded is on the server, intact; nothing of the failed files is.
    stored = read_bucket(s3_client, run.bucket)
    failed = {path for path, _ in result.failures}
    assert not failed & set(stored)
    assert len(stored) == result.uploaded
    for key, (body, metadata) in stored.items():
        assert body == (run.source / key).read_bytes(), key
        assert metadata == expected_metadata(run.source / key), key


@pytest.mark.xfail(
    strict=True,
    raises=OrphanedUploadsError,
    reason="bug: a multipart upload that fails during an outage is aborted once, during the same outage; the "
    "abort fails and the incomplete upload is left on the server (a warning in the log is all that remains)",
)
def test_an_outage_longer_than_the_deadline_leaves_no_incomplete_upload(long_outage: OutageRun) -> None:
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


async def test_credentials_rotated_mid_run_and_the_old_key_revoked(tmp_path: Path) -> None:
    key_a, key_b = ("ROTATEDKEYAAAAAAAAAA", "a" * 40), ("ROTATEDKEYBBBBBBBBBB", "b" * 40)
    source = tmp_path / "src"
    total = build_tree(source, small=30, large_mib=(11, 16))
    with own_server(tmp_path / "weed") as (server, weed):
        admin = identity("tester", server.access_key, server.secret_key)  # static: the tests' own view
        weed.reload_identities([admin, identity("rot-a", *key_a), identity("rot-b", *key_b)])
        wait_until(lambda: accepted(server, *key_a) and accepted(server, *key_b), "keys A and B accepted")
        s3_client = sync_client(server)
        s3_client.create_bucket(Bucket="rotation")

        rotation = RotatingCredentials(key_a, key_b)
        session = aiobotocore.session.AioSession()
        session.get_component("credential_provider").insert_before("env", rotation)
        done_at: list[float] = []
        revoked_at: list[float] = []

        def on_event(event: Event) -> None:
            if isinstance(event, FileDone):
                done_at.append(time.monotonic())
                rotation.expire_soon()

        async def revoke_a_once_rotated() -> None:
            await rotation.refreshed.wait()
            weed.reload_identities([admin, identity("rot-a", "", ""), identity("rot-b", *key_b)])
            await anyio.to_thread.run_sync(lambda: wait_until(lambda: not accepted(server, *key_a), "A revoked"))
            revoked_at.append(time.monotonic())

        async with uploader(server, session=session) as up, anyio.create_task_group() as group:
            group.start_soon(revoke_a_once_rotated)
            # Capped, so that the run is still going once A is revoked.
            result = await up.upload(source, "s3://rotation", on_event=on_event, max_bandwidth="10MiB/s", **MULTIPART)
            if not rotation.refreshed.is_set():
                group.cancel_scope.cancel()  # never rotated: the assertions below say so
        assert (result.uploaded, result.failed) == (total, 0), result.failures
        assert rotation.refreshes == 1
        assert revoked_at, "A was never revoked"
        assert sum(t > revoked_at[0] for t in done_at) >= 2  # files landed on B alone
        assert not accepted(server, *key_a)
        assert_bucket_holds(s3_client, "rotation", "", source)
        assert_no_orphans(s3_client, "rotation")


async def test_a_server_restart_mid_run_is_ridden_out(tmp_path: Path) -> None:
    source = tmp_path / "src"
    total = build_tree(source, small=60)
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
            if isinstance(event, FileFailed):
                print(f"failed: {event}")

        async def restart_when_asked() -> None:
            await restart_wanted.wait()
            await anyio.to_thread.run_sync(weed.restart)
            back_at.append(time.monotonic())

        async with uploader(server) as up, anyio.create_task_group() as group:
            group.start_soon(restart_when_asked)
            result = await up.upload(source, "s3://restart", on_event=on_event, max_bandwidth="8MiB/s", **MULTIPART)
            if not restart_wanted.is_set():
                group.cancel_scope.cancel()  # no file landed: the assertions below say so
        assert back_at, "the server was never restarted"
        assert (result.uploaded, result.failed) == (total, 0), result.failures
        assert result.retries > 0
        assert sum(t > back_at[0] for t in done_at) >= 2  # the run outlived the restart
        assert_bucket_holds(s3_client, "restart", "", source)
        assert_no_orphans(s3_client, "restart")
