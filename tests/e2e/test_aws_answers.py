"""AWS's own answers, played by fronts before SeaweedFS (``tests/aws_fronts.py``): a bucket in another region,
and roles with restricted rights. Both data paths must do what botocore does."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any, Final

import pytest

import async_uploader
from async_uploader.config import MIB
from tests.aws_fronts import Operation, Refusal, RegionFront, RoleFront, VirtualHostFront
from tests.e2e.test_upload import assert_bucket_holds
from tests.trees import make_tree, random_bytes
from tools.seaweedfs import S3Server

BUCKET_REGION = "eu-west-3"
MULTIPART: dict[str, Any] = {"part_size": "5MiB", "multipart_threshold": "5MiB"}
CLI_MULTIPART: Final = ("--part-size", "5MiB", "--multipart-threshold", "5MiB")


@pytest.fixture
def server_keys(server_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The library resolves the server's keys from the environment (botocore's chain), with no AWS config."""
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in server_env.items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)


def small_and_large(root: Path) -> int:
    files = {f"d/f{i}.txt": f"file {i}".encode() for i in range(12)}
    files["large.bin"] = random_bytes(11 * MIB, seed=3)
    make_tree(root, files)
    return len(files)


@pytest.mark.usefixtures("server_keys")
@pytest.mark.parametrize("how", ["301", "400"])
@pytest.mark.parametrize("lean", [True, False], ids=["lean", "aiobotocore"])
async def test_a_bucket_in_another_region_is_followed_there(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, lean: bool, how: Refusal
) -> None:
    """The run is configured for the server's region; the bucket answers, as AWS does, that it is elsewhere. Both
    paths sign again for the bucket's region, keep to it for the rest of the run (and, on the direct path, of
    the connection: a second run is never refused), and upload everything."""
    source = tmp_path / "src"
    total = small_and_large(source)
    async with (
        RegionFront(s3_server.endpoint_url, BUCKET_REGION, how) as front,
        async_uploader.Uploader(endpoint_url=front.url, region=s3_server.region, lean=lean) as up,
    ):
        result = await up.upload(source, f"s3://{bucket}/p", **MULTIPART)
        assert (result.uploaded, result.failed) == (total, 0), result.failures
        first_run = len(front.requests)
        again = await up.upload(source, f"s3://{bucket}/q", **MULTIPART)
        assert (again.uploaded, again.failed) == (total, 0), again.failures
    refused = [line for line, _, region in front.requests if region != BUCKET_REGION]
    assert refused, "the front refused nothing: the test tests nothing"
    if lean:
        assert len(refused) == 1  # the preflight's HeadBucket, and nothing after it
    assert all(region == BUCKET_REGION for _, _, region in front.requests[first_run:])
    assert_bucket_holds(s3_client, bucket, "p/", source)
    assert_bucket_holds(s3_client, bucket, "q/", source)


@pytest.fixture
def localhost_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """``*.localhost`` resolves to the loopback (as systemd-resolved resolves it; this machine's resolver may
    not): the stand-in for a store's wildcard DNS."""
    resolve = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.usefixtures("server_keys", "localhost_names")
@pytest.mark.parametrize("lean", [True, False], ids=["lean", "aiobotocore"])
async def test_a_profiles_virtual_addressing_is_honoured(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, lean: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``addressing_style = virtual`` in the config file's ``s3`` section: every request of the run, on either
    path, goes to ``{bucket}.{endpoint host}``, as botocore sends it."""
    config = tmp_path / "aws-config"
    config.write_text("[default]\ns3 =\n    addressing_style = virtual\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    source = tmp_path / "src"
    total = small_and_large(source)
    keys = (s3_server.access_key, s3_server.secret_key)
    async with (
        VirtualHostFront(s3_server.endpoint_url, "localhost", keys, s3_server.region) as front,
        async_uploader.Uploader(endpoint_url=front.url, region=s3_server.region, lean=lean) as up,
    ):
        result = await up.upload(source, f"s3://{bucket}/p", **MULTIPART)
    assert (result.uploaded, result.failed) == (total, 0), result.failures
    hosts = {host for _, host, _ in front.requests}
    assert hosts == {f"{bucket}.localhost:{front.port}"}
    assert_bucket_holds(s3_client, bucket, "p/", source)


# -- roles with restricted rights -------------------------------------------------------------------------------

WRITE_ONLY: Final[tuple[Operation, ...]] = ("HeadBucket", "ListObjectsV2", "ListMultipartUploads", "HeadObject")


async def run_cli_async(env: dict[str, str], *args: str) -> tuple[int, str]:
    """The CLI in a subprocess, awaited (the fronts run on this test's event loop): exit code and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "async_uploader", "upload", *args, env=env, stdout=PIPE, stderr=PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


@pytest.mark.parametrize("lean", ["on", "off"])
async def test_a_write_only_role_uploads_everything_with_one_line_saying_why(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, server_env: dict[str, str], lean: str
) -> None:
    """PutObject (and multipart) allowed; ListBucket, HeadBucket, GetObject denied, as a CI publishing role. The
    first run uploads everything, silently (nothing to compare against is nothing lost); a re-run with the
    default ``--overwrite changed`` uploads everything again and says once why it cannot skip; exit 0 both."""
    source = tmp_path / "src"
    small_and_large(source)
    async with RoleFront(s3_server.endpoint_url, WRITE_ONLY) as front:
        args = (str(source), f"s3://{bucket}/p", "--endpoint-url", front.url, "--lean", lean, *CLI_MULTIPART)
        first = await run_cli_async(server_env, *args)
        again = await run_cli_async(server_env, *args)
    assert first[0] == 0, first[1]
    assert again[0] == 0, again[1]
    warnings = [line for line in again[1].splitlines() if "every file is uploaded" in line]
    assert len(warnings) == 1, again[1]
    assert "--overwrite changed cannot skip" in warnings[0]
    assert front.counts["denied ListObjectsV2"] > 0
    assert_bucket_holds(s3_client, bucket, "p/", source)
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


async def test_a_write_only_role_with_overwrite_never_is_refused_in_one_line(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, server_env: dict[str, str]
) -> None:
    """``--overwrite never`` promises not to replace what is there, which a role that cannot look cannot keep."""
    source = tmp_path / "src"
    small_and_large(source)
    async with RoleFront(s3_server.endpoint_url, WRITE_ONLY) as front:
        code, stderr = await run_cli_async(
            server_env, str(source), f"s3://{bucket}/p", "--endpoint-url", front.url, "--overwrite", "never"
        )
    assert code == 2, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "--overwrite never" in stderr
    assert "s3:ListBucket" in stderr
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


@pytest.mark.parametrize("lean", ["on", "off"])
async def test_a_role_that_cannot_write_ends_the_run_at_its_first_write_in_one_line(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, server_env: dict[str, str], lean: str
) -> None:
    source = tmp_path / "src"
    small_and_large(source)
    denied: tuple[Operation, ...] = ("PutObject", "CreateMultipartUpload")
    async with RoleFront(s3_server.endpoint_url, denied) as front:
        code, stderr = await run_cli_async(
            server_env, str(source), f"s3://{bucket}/p", "--endpoint-url", front.url, "--lean", lean
        )
    assert code == 2, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "cannot write to" in stderr
    assert "AccessDenied" in stderr
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.parametrize("lean", ["on", "off"])
async def test_a_role_without_abort_rights_leaves_nothing_behind(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any, server_env: dict[str, str], lean: str
) -> None:
    """Without s3:AbortMultipartUpload: no write probe leaves an upload behind (there is none), and the upload
    succeeds; the bucket's multipart uploads, listed on the server directly, are none."""
    source = tmp_path / "src"
    total = small_and_large(source)
    async with RoleFront(s3_server.endpoint_url, ("AbortMultipartUpload",)) as front:
        code, stderr = await run_cli_async(
            server_env, str(source), f"s3://{bucket}/p", "--endpoint-url", front.url, "--lean", lean, *CLI_MULTIPART
        )
    assert code == 0, stderr
    assert total == len(s3_client.list_objects_v2(Bucket=bucket)["Contents"])
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert front.counts["denied AbortMultipartUpload"] == 0
