"""A bucket reached through the application's session: the preflight on botocore's client, every request after it
on the direct path where the client shows the way, on the client where it cannot."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

import aiobotocore.session
import pytest

from async_uploader.errors import StoreError
from async_uploader.providers.s3.boto import BotoStore
from async_uploader.providers.s3.learned import LearningStore
from async_uploader.providers.s3.store import DirectStore
from async_uploader.source.checksum import Algorithm, checksum_of
from tests.providers.s3.stores import open_store


def sent_by_botocore(session: Any) -> list[str]:
    """The operations botocore sends from now on, for every client of ``session``."""
    sent: list[str] = []
    session.register("before-send.s3", lambda request, event_name, **_: sent.append(event_name.rpartition(".")[2]))
    return sent


async def test_after_the_preflight_the_direct_path_serves_the_bucket(
    moto_endpoint: str, sync_client: Any, bucket: str
) -> None:
    session = aiobotocore.session.AioSession()
    session.set_credentials("testing", "testing")
    sent = sent_by_botocore(session)
    async with open_store(bucket, endpoint_url=moto_endpoint, session=session) as store:
        assert isinstance(store, LearningStore)
        await store.check_readable()
        await store.check_writable("probe")
        body = b"v"
        await store.put_object("k", BytesIO(body), checksum=checksum_of(Algorithm.CRC32, body), metadata={"a": "1"})
        head = await store.head_object("k")
        listed = [info.key async for info in store.list_objects("")]
        # Chosen once: the store's methods are the direct store's own from then on.
        assert isinstance(store.put_object.__self__, DirectStore)  # type: ignore[attr-defined]
    assert sent == ["HeadBucket"]  # the write check is the run's first write: no probe
    assert head is not None
    assert (head.size, dict(head.metadata)) == (1, {"a": "1"})
    assert listed == ["k"]
    assert sync_client.get_object(Bucket=bucket, Key="k")["Body"].read() == body


async def test_without_credentials_the_client_keeps_every_request_and_says_why(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    session = aiobotocore.session.AioSession()
    async with open_store("any-bucket", endpoint_url=moto_endpoint, session=session) as store:
        with pytest.raises(StoreError, match="PutObject: no AWS credentials found"):
            await store.put_object("k", BytesIO(b"v"), checksum=None, metadata={})
        assert isinstance(store.put_object.__self__, BotoStore)  # type: ignore[attr-defined]
