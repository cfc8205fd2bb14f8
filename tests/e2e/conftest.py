"""Real servers for the whole session (SeaweedFS and moto for S3, Azurite for Azure Blob Storage), a fresh private
bucket or container for each test, and ``backend``: one fixture, parametrised over SeaweedFS and Azurite, for the
cases every provider must pass the same way; ``s3_backend``, over SeaweedFS and moto, for the cases every S3
implementation must (upload, re-run, multipart, resume, checksums)."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from tests.moto_server import running_moto
from tools.azurite import BlobServer, missing_tools, running_azurite
from tools.seaweedfs import S3Server, running_seaweedfs

_bucket_numbers = itertools.count()
READ_THREADS = 8


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in item.nodeid:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server: no checksums in its answers, a closed connection after each, any credentials taken."""
    with running_moto(tmp_path_factory.mktemp("moto")) as server:
        yield server


def sync_s3_client(server: S3Server) -> Any:
    """A plain synchronous botocore client: checks what is on the server independently of our code path."""
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
    )


@pytest.fixture(scope="session")
def s3_client(s3_server: S3Server) -> Any:
    return sync_s3_client(s3_server)


@pytest.fixture(scope="session")
def moto_client(moto_server: S3Server) -> Any:
    return sync_s3_client(moto_server)


def new_bucket(s3_client: Any) -> str:
    name = f"test-bucket-{os.getpid()}-{next(_bucket_numbers)}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def bucket(s3_client: Any) -> str:
    return new_bucket(s3_client)


def cli_env(server: S3Server, tmp_path: Path) -> dict[str, str]:
    """Environment for a CLI subprocess: this server's credentials, and no stray AWS config from the host."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(server.env())
    env.pop("AWS_ENDPOINT_URL_S3", None)  # tests pass --endpoint-url explicitly, as users do
    env["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-aws-credentials")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


@pytest.fixture
def server_env(s3_server: S3Server, tmp_path: Path) -> dict[str, str]:
    return cli_env(s3_server, tmp_path)


@dataclass(frozen=True)
class S3Backend:
    """One S3 implementation and a fresh bucket on it, as the S3 matrix sees it."""

    name: str
    server: S3Server
    client: Any
    """A plain synchronous botocore client of this server (not our code path)."""
    bucket: str
    env: dict[str, str]
    """For a CLI subprocess: this server's credentials, no stray AWS config."""

    @property
    def returns_checksums(self) -> bool:
        """SeaweedFS answers the checksum it computed; moto answers none, so files are checked by size only."""
        return self.name != "moto"

    @property
    def verified(self) -> str:
        """What ``FileDone.verified`` and the report's ``verified`` say of a file uploaded with a checksum."""
        return "checksum" if self.returns_checksums else "size"

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    def cli_args(self) -> tuple[str, ...]:
        return ("--endpoint-url", self.server.endpoint_url)


@pytest.fixture(params=["seaweedfs", "moto"])
def s3_backend(request: pytest.FixtureRequest, tmp_path: Path) -> S3Backend:
    """SeaweedFS, then moto: the cases every S3 implementation must pass alike. moto is slow per request (and
    closes every connection): the cases that use it keep their trees small."""
    return _s3_backend(request, request.param, tmp_path)


def _s3_backend(request: pytest.FixtureRequest, name: str, tmp_path: Path) -> S3Backend:
    server: S3Server = request.getfixturevalue("s3_server" if name == "seaweedfs" else "moto_server")
    client = request.getfixturevalue("s3_client" if name == "seaweedfs" else "moto_client")
    return S3Backend(name, server, client, new_bucket(client), cli_env(server, tmp_path))


def read_bucket(s3_client: Any, bucket: str, prefix: str = "") -> dict[str, tuple[bytes, dict[str, str]]]:
    """Every object under prefix: its bytes and user metadata (read in a few threads: thousands of GETs)."""
    keys = [
        item["Key"]
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", ())
    ]

    def get(key: str) -> tuple[bytes, dict[str, str]]:
        response = s3_client.get_object(Bucket=bucket, Key=key)
        return response["Body"].read(), response["Metadata"]

    with ThreadPoolExecutor(READ_THREADS) as pool:
        return dict(zip(keys, pool.map(get, keys), strict=True))


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlobServer]:
    """Azurite's blob service, installed from npm into ``.azurite/`` on first use; skipped only without Node."""
    missing = missing_tools()
    if missing is not None:
        pytest.skip(f"Azure tests need Azurite: {missing}")
    with running_azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


def read_container(server: BlobServer, container: str, prefix: str = "") -> dict[str, tuple[bytes, dict[str, str]]]:
    """Every blob under prefix: its bytes and metadata, read with the SDK's synchronous client (not our code)."""
    from azure.storage.blob import ContainerClient

    with ContainerClient.from_connection_string(server.connection_string, container) as client:
        listed = {blob.name: dict(blob.metadata or {}) for blob in client.list_blobs(prefix, include=["metadata"])}

        def get(name: str) -> tuple[bytes, dict[str, str]]:
            return client.download_blob(name).readall(), listed[name]

        with ThreadPoolExecutor(READ_THREADS) as pool:
            return dict(zip(listed, pool.map(get, listed), strict=True))


def container_digests(server: BlobServer, container: str, prefix: str = "") -> dict[str, tuple[str, dict[str, str]]]:
    """Every blob under prefix: the MD5 (hex) of its bytes and its metadata.

    One listing gives the metadata and, for a blob stored by one Put Blob, the MD5 the service computed of the
    bytes it received; only blobs committed from blocks (which have none) are downloaded. Azurite serves a
    request in ~15 ms on a busy machine, so downloading thousands of small blobs would take half a minute.
    """
    from azure.storage.blob import ContainerClient

    with ContainerClient.from_connection_string(server.connection_string, container) as client:
        found: dict[str, tuple[str, dict[str, str]]] = {}
        for blob in client.list_blobs(prefix, include=["metadata"]):
            md5 = blob.content_settings.content_md5
            digest = bytes(md5).hex() if md5 else hashlib.md5(client.download_blob(blob.name).readall()).hexdigest()
            found[blob.name] = (digest, dict(blob.metadata or {}))
        return found


def bucket_digests(s3_client: Any, bucket: str, prefix: str = "") -> dict[str, tuple[str, dict[str, str]]]:
    return {
        key: (hashlib.md5(body).hexdigest(), meta)
        for key, (body, meta) in read_bucket(s3_client, bucket, prefix).items()
    }


def new_container(server: BlobServer) -> str:
    from azure.storage.blob import BlobServiceClient

    name = f"test-container-{os.getpid()}-{next(_bucket_numbers)}"
    with BlobServiceClient.from_connection_string(server.connection_string) as service:
        service.create_container(name)
    return name


@dataclass(frozen=True)
class Backend:
    """One provider and its real server, as the parametrised suite sees it."""

    name: str
    scheme: str
    bucket: str
    env: dict[str, str]
    """For a CLI subprocess (and, through monkeypatch, the library): this server's credentials only."""
    cli_args: tuple[str, ...]
    """Options the CLI needs to reach the server (the endpoint, for S3)."""
    library_options: dict[str, Any]
    read: Callable[[str], dict[str, tuple[str, dict[str, str]]]]
    """Every object under a prefix: the MD5 (hex) of its bytes, and its user metadata."""
    bad_credentials_env: dict[str, str] = field(default_factory=dict)
    secret: str = ""
    """The secret of the bad credentials, which no message may contain."""

    def url(self, prefix: str = "") -> str:
        return f"{self.scheme}://{self.bucket}/{prefix}".rstrip("/")


@pytest.fixture(params=["seaweedfs", "azurite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """SeaweedFS, then Azurite; moto too where a test asks for it (``indirect``: moto takes any credentials)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AZURE_"))}
    if request.param in ("seaweedfs", "moto"):
        s3 = _s3_backend(request, request.param, tmp_path)
        server, client, name, env = s3.server, s3.client, s3.bucket, s3.env
        return Backend(
            name=request.param,
            scheme="s3",
            bucket=name,
            env=env,
            cli_args=("--endpoint-url", server.endpoint_url),
            library_options={"endpoint_url": server.endpoint_url},
            read=lambda prefix: bucket_digests(client, name, prefix),
            bad_credentials_env=dict(env, AWS_SECRET_ACCESS_KEY="not-the-secret-key"),
            secret="not-the-secret-key",
        )
    blob: BlobServer = request.getfixturevalue("azurite")
    container = new_container(blob)
    wrong_key = "bm90LXRoZS1rZXk" + blob.key[15:]  # still base64 of the right length: the service refuses it
    return Backend(
        name="azurite",
        scheme="az",
        bucket=container,
        env={**base, **blob.env()},
        cli_args=(),
        library_options={},
        read=lambda prefix: container_digests(blob, container, prefix),
        bad_credentials_env={
            **base,
            "AZURE_STORAGE_CONNECTION_STRING": blob.connection_string.replace(blob.key, wrong_key),
        },
        secret=wrong_key,
    )
