"""AWS's own answers, played by fronts before SeaweedFS (``tests/aws_fronts.py``): a bucket in another region,
and roles with restricted rights. Both data paths must do what botocore does."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

import async_uploader
from async_uploader.config import MIB
from tests.aws_fronts import Refusal, RegionFront, VirtualHostFront
from tests.e2e.test_upload import assert_bucket_holds
from tests.trees import make_tree, random_bytes
from tools.seaweedfs import S3Server

BUCKET_REGION = "eu-west-3"
MULTIPART: dict[str, Any] = {"part_size": "5MiB", "multipart_threshold": "5MiB"}


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
