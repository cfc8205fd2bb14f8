"""moto's S3 server for the provider's fast tests (one for the session), its credentials, and a bucket per test."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest

from tests.moto_server import running_moto

_bucket_numbers = itertools.count()


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_moto(tmp_path_factory.mktemp("moto")) as server:
        yield server.endpoint_url


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
