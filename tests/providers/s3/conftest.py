"""moto's S3 server for the provider's fast tests (one for the session), its credentials, and a bucket per test."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from moto.server import ThreadedMotoServer

_bucket_numbers = itertools.count()


@pytest.fixture(scope="session")
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
    """A plain synchronous botocore client: checks what is on the server independently of our code path."""
    return botocore.session.get_session().create_client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(sync_client: Any, request: pytest.FixtureRequest) -> str:
    name = f"moto-{next(_bucket_numbers)}-{re.sub(r'[^a-z0-9]+', '-', request.node.name.lower())[:40].strip('-')}"
    sync_client.create_bucket(Bucket=name)
    return name
