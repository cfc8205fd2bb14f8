"""A real SeaweedFS S3 server for the whole session, and a fresh private bucket for each test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from tools.seaweedfs import S3Server, running_seaweedfs

_bucket_numbers = itertools.count()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in item.nodeid:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def s3_client(s3_server: S3Server) -> Any:
    """A plain synchronous botocore client: checks what is on the server independently of our code path."""
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name=s3_server.region,
    )


@pytest.fixture
def bucket(s3_client: Any) -> str:
    name = f"test-bucket-{os.getpid()}-{next(_bucket_numbers)}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def server_env(s3_server: S3Server, tmp_path: Path) -> dict[str, str]:
    """Environment for a CLI subprocess: this server's credentials, and no stray AWS config from the host."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3_server.env())
    env.pop("AWS_ENDPOINT_URL_S3", None)  # tests pass --endpoint-url explicitly, as users do
    env["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-aws-credentials")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def read_bucket(s3_client: Any, bucket: str, prefix: str = "") -> dict[str, tuple[bytes, dict[str, str]]]:
    """Every object under prefix: its bytes and user metadata."""
    found: dict[str, tuple[bytes, dict[str, str]]] = {}
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            response = s3_client.get_object(Bucket=bucket, Key=item["Key"])
            found[item["Key"]] = (response["Body"].read(), response["Metadata"])
    return found
