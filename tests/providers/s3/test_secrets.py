"""No message of an S3 store carries the run's SSE-C key, even when the server echoes it back."""

from __future__ import annotations

import base64
from io import BytesIO
from typing import Any

import pytest
from botocore.exceptions import ClientError

from async_uploader.errors import StoreError
from async_uploader.providers._errors import Redactor
from async_uploader.providers.base import ObjectHeaders, guard_secrets
from async_uploader.providers.s3.boto import BotoClients, BotoStore
from async_uploader.providers.s3.learned import LearningStore
from tests.providers.s3.stores import Answering, direct_store_on

SSE_C_KEY = b"a printable key of thirty-two ch"


def _echoed(key: bytes) -> str:
    """An answer that echoes the key: no store should, but no message may carry it even then."""
    return f"the key {base64.b64encode(key).decode()} ({key.decode()}) is not valid"


async def test_no_message_of_the_direct_store_carries_the_runs_sse_c_key() -> None:
    headers = ObjectHeaders(sse_c_key=SSE_C_KEY)
    body = f"<Error><Code>InvalidArgument</Code><Message>{_echoed(SSE_C_KEY)}</Message></Error>".encode()
    unguarded, guarded = direct_store_on(Answering(400, body)), direct_store_on(Answering(400, body))
    guard_secrets(guarded, headers)
    messages = []
    for store in (unguarded, guarded):
        with pytest.raises(StoreError) as caught:
            await store.put_object("k", BytesIO(b"x"), checksum=None, metadata={}, headers=headers)
        messages.append(str(caught.value))
    assert base64.b64encode(SSE_C_KEY).decode() in messages[0]  # the store did echo it
    for form in (base64.b64encode(SSE_C_KEY).decode(), SSE_C_KEY.decode()):
        assert form not in messages[1]


class _EchoingClient:
    """An aiobotocore client whose PutObject is refused with a message that echoes the key it was sent."""

    async def put_object(self, **params: Any) -> dict[str, Any]:
        key = base64.b64decode(params["SSECustomerKey"])
        error = {"Error": {"Code": "InvalidArgument", "Message": _echoed(key)}, "ResponseMetadata": {}}
        raise ClientError(error, "PutObject")  # type: ignore[arg-type]


async def test_no_message_of_the_boto_store_carries_the_runs_sse_c_key() -> None:
    headers = ObjectHeaders(sse_c_key=SSE_C_KEY)
    boto = BotoStore(BotoClients(None, (_EchoingClient(), _EchoingClient())), "b", "http://127.0.0.1:9", Redactor())
    learning = LearningStore(boto, Answering(200, b""))  # type: ignore[arg-type]
    guard_secrets(learning, headers)  # the store a run gets when the direct path must learn the endpoint first
    with pytest.raises(StoreError) as caught:
        await boto.put_object("k", BytesIO(b"x"), checksum=None, metadata={}, headers=headers)
    assert "is not valid" in str(caught.value)
    for form in (base64.b64encode(SSE_C_KEY).decode(), SSE_C_KEY.decode()):
        assert form not in str(caught.value)
