"""``--dask`` / ``upload_distributed`` against a real SeaweedFS and a Dask ``LocalCluster`` of worker processes:
every file uploaded once, the progress streamed back, and a worker killed mid-file replaced without redoing
finished work."""

from __future__ import annotations

import functools
import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import async_uploader
from async_uploader.config import MIB
from async_uploader.errors import BucketError
from async_uploader.events import Event, FileDone, PartDone, RunFinished, TotalsKnown
from async_uploader.source.shards import shard_of
from tests.e2e.test_cli_features import report_records
from tests.e2e.test_faults import wait_until
from tests.e2e.test_upload import assert_bucket_holds, run_cli
from tests.trees import make_tree, random_bytes
from tools.seaweedfs import S3Server

distributed = pytest.importorskip("distributed")


def start_cluster(s3_server: S3Server, cache: Path) -> tuple[Any, Any]:
    """Two worker processes of one thread each, with the server's credentials and a private state file; a
    synchronous client of them."""
    env = {**s3_server.env(), "XDG_CACHE_HOME": str(cache)}
    env.pop("AWS_ENDPOINT_URL_S3", None)
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0", env=env
    )
    return cluster, distributed.Client(cluster, set_as_default=False)


@pytest.fixture(scope="module")
def dask_client(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    cluster, client = start_cluster(s3_server, tmp_path_factory.mktemp("dask-cache"))
    with cluster, client:
        yield client


def tasks_running(dask_worker: Any) -> int:
    """On a worker (``Client.run`` passes it in): how many of its threads are running a task."""
    return len(dask_worker.active_threads)


def file_records(report: Path) -> list[dict[str, Any]]:
    return [record for record in report_records(report) if "path" in record]


async def test_a_local_cluster_uploads_thousands_of_files_and_a_multipart_one(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, dask_client: Any
) -> None:
    source = tmp_path / "src"
    files = {f"d{i % 25}/f{i}.txt": f"file {i}\n".encode() for i in range(2000)}
    files["big/large.bin"] = random_bytes(12 * MIB, seed=3)
    make_tree(source, files)
    report = tmp_path / "report.jsonl"
    seen: list[Event] = []

    result = await async_uploader.upload_distributed(
        source,
        f"s3://{bucket}/p",
        scheduler=dask_client,
        endpoint_url=s3_server.endpoint_url,
        part_size="5MiB",
        multipart_threshold="5MiB",
        report=report,
        on_event=seen.append,
    )

    assert (result.uploaded, result.skipped, result.failed) == (len(files), 0, 0)
    assert result.bytes_uploaded == sum(map(len, files.values()))
    assert_bucket_holds(s3_client, bucket, "p/", source)
    records = file_records(report)
    assert Counter(r["path"] for r in records) == Counter(list(files))  # every file, each exactly once
    assert next(r for r in records if r["path"] == "big/large.bin")["parts"] == 3
    assert report_records(report)[-1]["summary"]["uploaded"] == len(files)
    # The display's stream: every file's event, the totals of both shards added up, the result last.
    assert sum(isinstance(e, FileDone) for e in seen) == len(files)
    assert [e for e in seen if isinstance(e, TotalsKnown)][-1].files == len(files)
    assert seen[-1] == RunFinished(result)


async def test_a_run_level_error_on_the_workers_is_raised_as_it_was(
    tmp_path: Path, s3_server: S3Server, dask_client: Any
) -> None:
    make_tree(tmp_path / "src", {"a.txt": b"a"})
    with pytest.raises(BucketError):
        await async_uploader.upload_distributed(
            tmp_path / "src", "s3://no-such-bucket-here", scheduler=dask_client, endpoint_url=s3_server.endpoint_url
        )


async def test_cancelling_the_run_stops_every_shard_and_aborts_its_multipart_uploads(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, dask_client: Any
) -> None:
    source = tmp_path / "src"
    files = {f"big/{n}.bin": random_bytes(11 * MIB, seed=n) for n in range(2)}
    make_tree(source, files)
    report = tmp_path / "report.jsonl"
    sending = anyio.Event()

    def on_event(event: Event) -> None:
        if isinstance(event, PartDone):
            sending.set()

    with anyio.fail_after(120):
        async with anyio.create_task_group() as group:
            group.start_soon(
                functools.partial(
                    async_uploader.upload_distributed,
                    source,
                    f"s3://{bucket}/c",
                    scheduler=dask_client,
                    endpoint_url=s3_server.endpoint_url,
                    part_size="5MiB",
                    multipart_threshold="5MiB",
                    max_bandwidth="1MiB/s",  # the next parts wait seconds: the cancel lands mid-file
                    report=report,
                    on_event=on_event,
                )
            )
            await sending.wait()
            group.cancel_scope.cancel()
    # The shards notice within a tick and stop (Dask cannot interrupt a running task), aborting what they had
    # open: no upload is left, and none was completed.
    wait_until(lambda: not any(dask_client.run(tasks_running).values()), "the shards stop", timeout_s=60)
    assert not s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert s3_client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert report_records(report)[-1]["summary"]["interrupted"] is True


def test_the_cli_runs_on_a_cluster_with_no_credentials_of_its_own(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any, dask_client: Any
) -> None:
    source = tmp_path / "src"
    make_tree(source, {f"s/{i}.txt": bytes([i % 256]) * i for i in range(200)})
    report = tmp_path / "report.jsonl"
    env = {k: v for k, v in server_env.items() if k not in {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}}
    address = dask_client.scheduler.address

    result = run_cli(
        env, str(source), f"s3://{bucket}/cli", "--endpoint-url", s3_server.endpoint_url,
        "--dask", address, "--shards", "3", "--report", str(report),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "Uploaded 200 files" in result.stderr
    assert len({r["path"] for r in file_records(report)}) == len(file_records(report)) == 200
    assert_bucket_holds(s3_client, bucket, "cli/", source)
    # Again: every file is already there, found by the workers' listing and state.
    again = run_cli(env, str(source), f"s3://{bucket}/cli", "--endpoint-url", s3_server.endpoint_url, "--dask", address)
    assert again.returncode == 0, again.stderr
    assert "Uploaded 0 files" in again.stderr
    assert "200 skipped" in again.stderr


async def test_a_worker_killed_mid_file_is_replaced_and_its_shard_resumed(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any
) -> None:
    source = tmp_path / "src"
    files = {f"d{i % 7}/f{i}.txt": f"small {i}\n".encode() for i in range(300)}
    # One multipart file in each shard, so that whichever shard is killed, it is killed mid-file.
    bigs = {shard_of(f"big/{n}.bin", 2): f"big/{n}.bin" for n in range(20)}
    files.update({rel: random_bytes(11 * MIB, seed=shard) for shard, rel in bigs.items()})
    make_tree(source, files)
    report = tmp_path / "report.jsonl"
    cluster, client = start_cluster(s3_server, tmp_path / "dask-cache")
    killed: dict[str, Any] = {}
    killer: list[threading.Thread] = []

    def kill_the_worker_of(shard: int) -> None:
        """Kill (SIGKILL) the worker process running ``shard``: no goodbye, its connections simply drop."""
        for address, keys in client.processing().items():
            if any(str(key).endswith(f"-shard-{shard}-of-2") for key in keys):
                pid = client.run(os.getpid, workers=[address])[address]
                os.kill(pid, signal.SIGKILL)
                killed.update(shard=shard, pid=pid)

    def on_event(event: Event) -> None:
        # The first part of a big file is on the server; the rest waits on the bandwidth cap: kill now.
        if isinstance(event, PartDone) and not killer:
            killer.append(threading.Thread(target=kill_the_worker_of, args=(shard_of(event.path, 2),)))
            killer[0].start()

    with cluster, client:
        result = await async_uploader.upload_distributed(
            source,
            f"s3://{bucket}/k",
            scheduler=client,
            shards=2,
            endpoint_url=s3_server.endpoint_url,
            part_size="5MiB",
            multipart_threshold="5MiB",
            max_bandwidth="2MiB/s",
            report=report,
            on_event=on_event,
        )
        killer[0].join()

    assert killed, "no worker was running the shard when the kill came"
    assert (result.uploaded + result.skipped, result.failed) == (len(files), 0)
    records = file_records(report)
    assert Counter(r["path"] for r in records) == Counter(list(files))  # each exactly once, retry or not
    assert_bucket_holds(s3_client, bucket, "k/", source)
    # The retry took up the killed shard's big file where it was: its first part was not sent again.
    resumed = next(r for r in records if r["path"] == bigs[killed["shard"]])
    assert resumed["status"] == "uploaded"
    assert resumed["resumed_parts"] >= 1
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
