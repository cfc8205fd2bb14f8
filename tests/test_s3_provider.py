"""The S3 provider against moto's server: fast checks of the seam's contract where realism adds nothing."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import aiohttp.payload
import botocore.session
import pytest
from aiobotocore._endpoint_helpers import _IOBaseWrapper
from botocore.utils import parse_timestamp
from moto.server import ThreadedMotoServer

from async_uploader.errors import BucketError, EndpointError, StoreError
from async_uploader.providers.base import Body, ObjectStore, UploadedPart
from async_uploader.providers.s3 import (
    SEND_SLICE_BYTES,
    S3Store,
    _configured_endpoint,
    _resolve,
    _resolve_from_environment,
    open_s3_store,
)
from async_uploader.providers.s3_boto import BodyPayload, fast_timestamp, new_session
from async_uploader.source.checksum import Algorithm, Checksum, checksum_of, composite
from tests.trees import random_bytes

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def sync_client(moto_endpoint: str, credentials: None) -> Any:
    return botocore.session.get_session().create_client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(sync_client: Any, request: pytest.FixtureRequest) -> str:
    name = f"moto-{re.sub(r'[^a-z0-9]+', '-', request.node.name.lower())[:50].strip('-')}"
    sync_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
async def store(moto_endpoint: str, bucket: str) -> AsyncIterator[S3Store]:
    async with open_s3_store(bucket, endpoint_url=moto_endpoint) as opened:
        yield opened


def crc(body: bytes) -> Checksum:
    return checksum_of(Algorithm.CRC32, body)


def test_s3_store_satisfies_the_protocol(store: S3Store) -> None:
    assert isinstance(store, ObjectStore)


async def test_put_object_stores_bytes_and_metadata(store: S3Store, sync_client: Any, bucket: str) -> None:
    stored = await store.put_object("dir/a b.txt", BytesIO(b"hello"), checksum=crc(b"hello"), metadata={"size": "5"})
    assert stored.etag
    got = sync_client.get_object(Bucket=bucket, Key="dir/a b.txt")
    assert got["Body"].read() == b"hello"
    assert got["Metadata"] == {"size": "5"}
    info = await store.head_object("dir/a b.txt")
    assert info is not None
    assert (info.size, dict(info.metadata)) == (5, {"size": "5"})


async def test_multipart_round_trip(store: S3Store, sync_client: Any, bucket: str) -> None:
    bodies = [random_bytes(5 * MIB, seed=1), b"tail"]
    upload_id = await store.create_multipart(
        "big", metadata={"mode": "100644"}, checksum=Algorithm.CRC32, full_object=False
    )
    parts = [
        await store.upload_part("big", upload_id, n, BytesIO(body), checksum=crc(body))
        for n, body in enumerate(bodies, start=1)
    ]
    assert [p.number for p in parts] == [1, 2]
    stored = await store.complete_multipart("big", upload_id, parts, full_checksum=None)
    assert stored.checksum in (None, composite(p.checksum for p in parts if p.checksum).value)
    assert sync_client.get_object(Bucket=bucket, Key="big")["Body"].read() == b"".join(bodies)
    assert sync_client.head_object(Bucket=bucket, Key="big")["Metadata"] == {"mode": "100644"}


@pytest.mark.parametrize("size", [0, 1, SEND_SLICE_BYTES, SEND_SLICE_BYTES + 1, 5 * MIB + 17])
async def test_a_body_sent_from_its_own_buffer_arrives_whole(
    size: int, store: S3Store, sync_client: Any, bucket: str
) -> None:
    data = random_bytes(size, seed=size)
    await store.put_object("single", Body(data), checksum=crc(data), metadata={})
    assert sync_client.get_object(Bucket=bucket, Key="single")["Body"].read() == data
    upload_id = await store.create_multipart("multi", metadata={}, checksum=Algorithm.CRC32, full_object=False)
    part = await store.upload_part("multi", upload_id, 1, Body(data), checksum=crc(data))
    await store.complete_multipart("multi", upload_id, [part], full_checksum=None)
    assert sync_client.get_object(Bucket=bucket, Key="multi")["Body"].read() == data


def test_aiohttp_sends_a_body_with_our_payload_and_other_streams_with_its_own() -> None:
    # aiobotocore hands aiohttp a proxy of the body; the payload must still be the one that sends slices.
    assert isinstance(aiohttp.payload.get_payload(_IOBaseWrapper(Body(b"x"))), BodyPayload)
    assert not isinstance(aiohttp.payload.get_payload(_IOBaseWrapper(BytesIO(b"x"))), BodyPayload)


async def test_abort_leaves_no_upload_and_is_idempotent(store: S3Store, sync_client: Any, bucket: str) -> None:
    upload_id = await store.create_multipart("gone", metadata={}, checksum=Algorithm.CRC32, full_object=False)
    await store.upload_part("gone", upload_id, 1, BytesIO(b"x"), checksum=crc(b"x"))
    await store.abort_multipart("gone", upload_id)
    await store.abort_multipart("gone", upload_id)  # a second abort is not an error
    assert sync_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert await store.head_object("gone") is None


async def test_completing_with_a_bogus_part_is_a_store_error(store: S3Store) -> None:
    upload_id = await store.create_multipart("bogus", metadata={}, checksum=Algorithm.CRC32, full_object=False)
    with pytest.raises(StoreError):
        await store.complete_multipart("bogus", upload_id, [UploadedPart(1, '"nope"', crc(b""))], full_checksum=None)
    await store.abort_multipart("bogus", upload_id)


async def test_list_objects_streams_every_key_under_the_prefix(store: S3Store) -> None:
    for key in ("p/a", "p/b/c", "q/d"):
        await store.put_object(key, BytesIO(key.encode()), checksum=crc(key.encode()), metadata={})
    listed = [(o.key, o.size) async for o in store.list_objects("p/")]
    assert listed == [("p/a", 3), ("p/b/c", 5)]


async def test_preflight_passes_on_a_writable_bucket_and_leaves_nothing(
    store: S3Store, sync_client: Any, bucket: str
) -> None:
    await store.check_readable()
    await store.check_writable("probe-key")
    assert sync_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert sync_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


async def test_preflight_on_a_missing_bucket_is_a_bucket_error(moto_endpoint: str, credentials: None) -> None:
    async with open_s3_store("no-such-bucket-anywhere", endpoint_url=moto_endpoint) as store:
        with pytest.raises(BucketError, match="does not exist"):
            await store.check_readable()


async def test_preflight_on_a_dead_endpoint_is_an_endpoint_error(credentials: None) -> None:
    async with open_s3_store("b-u-c", endpoint_url="http://127.0.0.1:9") as store:
        with pytest.raises(EndpointError, match="cannot reach"):
            await store.check_readable()


@pytest.mark.parametrize("algorithm", list(Algorithm))
async def test_every_checksum_algorithm_is_sent(
    store: S3Store, sync_client: Any, bucket: str, algorithm: Algorithm
) -> None:
    # moto accepts any checksum: that the server refuses a wrong one is tested against SeaweedFS (tests/e2e).
    stored = await store.put_object("k", BytesIO(b"hello"), checksum=checksum_of(algorithm, b"hello"), metadata={})
    assert stored.checksum in (None, checksum_of(algorithm, b"hello").value)
    assert sync_client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"hello"


@pytest.mark.parametrize(
    "text",
    ["2026-11-26T12:22:10.000Z", "2026-11-26T12:22:10Z", "Wed, 21 Oct 2015 07:28:00 GMT", "1700000000",
     "2026-11-26T12:22:10.123456+02:00", "2026-11-26T12:22:10"],
)  # fmt: skip
def test_fast_timestamps_are_botocores(text: str) -> None:
    assert fast_timestamp(text) == parse_timestamp(text)


@pytest.mark.parametrize(
    ("service", "region"),
    [("s3", "eu-west-1"), ("s3", "us-east-1"), ("s3", "cn-north-1"), ("s3", "us-gov-west-1"), ("sts", "eu-west-1")],
)
async def test_the_trimmed_endpoint_data_resolves_aws_as_botocore_does(
    service: str, region: str, credentials: None
) -> None:
    # Our sessions keep only the endpoints of the services they call (S3, and STS/SSO for credentials).
    expected = botocore.session.get_session().create_client(service, region_name=region).meta.endpoint_url
    async with new_session(None).create_client(service, region_name=region) as client:
        assert client.meta.endpoint_url == expected
        assert client.meta.region_name == region
        partitions = client._loader.load_data("endpoints")["partitions"]
        assert {name for p in partitions for name in p["services"]} <= {"s3", "sts", "sso", "sso-oidc"}


_KEYS = {"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret-key"}


@pytest.mark.parametrize(
    ("env", "endpoint", "region", "profile", "config", "fast"),
    [
        pytest.param({**_KEYS, "AWS_DEFAULT_REGION": "eu-west-3"}, "http://h:9000", None, None, None, True, id="plain"),
        pytest.param(
            {**_KEYS, "AWS_DEFAULT_REGION": "eu-west-3", "AWS_SESSION_TOKEN": "tok-session"},
            "http://h:9000", None, None, None, True, id="session-token",
        ),
        pytest.param(
            {**_KEYS, "AWS_DEFAULT_REGION": "r", "AWS_SESSION_TOKEN": "tok-a", "AWS_SECURITY_TOKEN": "tok-b"},
            "http://h:9000", None, None, None, True, id="both-tokens",
        ),
        pytest.param(_KEYS, "http://h:9000", "ap-south-1", None, None, True, id="region-argument"),
        pytest.param(
            _KEYS, "http://h:9000", None, None, "[default]\nregion = us-west-2\n", False, id="region-in-config"
        ),
        pytest.param(
            {**_KEYS, "AWS_DEFAULT_REGION": "eu-west-3", "AWS_PROFILE": "other"},
            "http://h:9000", None, None,
            "[profile other]\nregion = us-west-2\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n",
            True, id="environment-beats-aws-profile",
        ),
        pytest.param(
            {**_KEYS, "AWS_DEFAULT_REGION": "eu-west-3"}, "http://h:9000", None, "other",
            "[profile other]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n",
            False, id="explicit-profile",
        ),
        pytest.param(
            {**_KEYS, "AWS_DEFAULT_REGION": "eu-west-3"}, "https://h", None, None, "[default]\nca_bundle = /ca.pem\n",
            False, id="tls-with-config",
        ),
        pytest.param({**_KEYS, "AWS_DEFAULT_REGION": "eu-west-3"}, "https://h", None, None, None, True, id="tls"),
        pytest.param(
            {**_KEYS, "AWS_DEFAULT_REGION": "eu-west-3", "AWS_CA_BUNDLE": "/env-ca.pem"},
            "https://h", None, None, "[default]\nca_bundle = /ca.pem\n", True, id="tls-ca-bundle-in-environment",
        ),
        pytest.param(
            {**_KEYS, "AWS_DEFAULT_REGION": "r", "AWS_CREDENTIAL_EXPIRATION": "2099-01-01T00:00:00Z"},
            "http://h:9000", None, None, None, False, id="expiring",
        ),
        pytest.param({"AWS_DEFAULT_REGION": "r"}, "http://h:9000", None, None, None, False, id="no-keys"),
    ],
)  # fmt: skip
async def test_credentials_from_the_environment_are_what_botocore_resolves(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    env: dict[str, str],
    endpoint: str,
    region: str | None,
    profile: str | None,
    config: str | None,
    fast: bool,
) -> None:
    """The shortcut that spares importing botocore's session must find what botocore finds, or step aside."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    if config is not None:
        (tmp_path / "config").write_text(config)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    shortcut = _resolve_from_environment(profile, endpoint, region)

    assert (shortcut is not None) == fast
    if shortcut is None:
        return
    botocore_way = _resolve(profile, endpoint, region)
    assert (shortcut.secrets, shortcut.verify) == (botocore_way.secrets, botocore_way.verify)
    assert shortcut.direct is not None
    assert botocore_way.direct is not None
    assert shortcut.direct.bucket_endpoint("b") == botocore_way.direct.bucket_endpoint("b")
    ours = await shortcut.direct.credentials.get_frozen_credentials()
    theirs = await botocore_way.direct.credentials.get_frozen_credentials()
    assert (ours.access_key, ours.secret_key, ours.token) == (theirs.access_key, theirs.secret_key, theirs.token)


def test_endpoints_in_the_environment_are_ignored_when_botocore_would_ignore_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://global:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3-only:2")
    assert _configured_endpoint(None) == "http://s3-only:2"  # the service's own beats the global one
    assert _configured_endpoint("http://given:3") == "http://given:3"
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    assert _configured_endpoint(None) is None
    assert _configured_endpoint("http://given:3") == "http://given:3"  # a command-line endpoint always counts
