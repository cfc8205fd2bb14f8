"""DeleteObjects, as ``--delete`` sends it: on both paths against moto's server, and on the direct path byte for
byte what botocore sends (the document and its required checksum headers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse

from async_uploader.providers.base import DeleteFailure, DeletesObjects, ObjectStore
from async_uploader.providers.s3.boto import BotoStore
from async_uploader.providers.s3.store import DirectStore
from async_uploader.providers.s3.wire import delete_body, parse_delete_errors
from tests.providers.s3.stores import Answering, direct_store_on, open_store

KEYS = ["plain.txt", "dir/sub dir/a b.txt", "ünïcödé/日本語/😀.bin", "odd/&<amp>;+%~=?#", "a'quote(paren)!*:@,;$"]
S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


@pytest.fixture(params=[True, False], ids=["lean", "aiobotocore"])
async def either_store(request: pytest.FixtureRequest, moto_endpoint: str, bucket: str) -> AsyncIterator[ObjectStore]:
    async with open_store(bucket, endpoint_url=moto_endpoint, lean=request.param) as opened:
        assert isinstance(opened, DirectStore if request.param else BotoStore)
        yield opened


async def test_both_paths_delete_the_keys_and_take_a_missing_one_as_deleted(
    either_store: ObjectStore, sync_client: Any, bucket: str
) -> None:
    for key in [*KEYS, "kept"]:
        sync_client.put_object(Bucket=bucket, Key=key, Body=b"x")
    assert isinstance(either_store, DeletesObjects)
    assert await either_store.delete_objects([*KEYS, "never/there"]) == []
    listed = sync_client.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [item["Key"] for item in listed] == ["kept"]


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def botocore_sends(keys: list[str]) -> tuple[dict[str, str], bytes]:
    """The headers and body botocore sends for a quiet DeleteObjects of ``keys`` (answered here, not sent)."""
    seen: list[Any] = []

    def capture(request: Any, **_: Any) -> AWSResponse:
        seen.append(request)
        empty = f'<DeleteResult xmlns="{S3_XMLNS}"></DeleteResult>'.encode()
        return AWSResponse(request.url, 200, {}, _Raw(empty))

    client = botocore.session.get_session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="a",
        aws_secret_access_key="b",
    )
    client.meta.events.register("before-send.s3.DeleteObjects", capture)
    client.delete_objects(Bucket="b", Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True})
    request = seen[0]
    headers = {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    return headers, request.body


async def test_the_direct_request_is_the_one_botocore_sends() -> None:
    keys = [*KEYS, "line\nbreak\r"]
    http = Answering(200, f'<DeleteResult xmlns="{S3_XMLNS}"></DeleteResult>'.encode())
    assert await direct_store_on(http).delete_objects(keys) == []
    method, target, headers, body = http.requests[0]
    their_headers, their_body = botocore_sends(keys)
    assert (method, target.split("?")[1].rstrip("=")) == ("POST", "delete")
    assert body == their_body == delete_body(keys)
    for name in ("x-amz-checksum-crc32", "x-amz-sdk-checksum-algorithm"):
        assert headers[name] == their_headers[name]


async def test_keys_not_deleted_come_back_with_their_reason() -> None:
    answer = (
        f'<DeleteResult xmlns="{S3_XMLNS}"><Deleted><Key>ok</Key></Deleted>'
        "<Error><Key>locked</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        "<Error><Key>busy</Key><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        "</DeleteResult>"
    ).encode()
    failures = await direct_store_on(Answering(200, answer)).delete_objects(["ok", "locked", "busy"])
    assert failures == [
        DeleteFailure("locked", "AccessDenied: Access Denied", retryable=False),
        DeleteFailure("busy", "SlowDown: Please reduce your request rate.", retryable=True),
    ]
    assert parse_delete_errors(f'<DeleteResult xmlns="{S3_XMLNS}"/>'.encode()) == []


async def test_an_error_document_in_a_200_answer_is_worth_another_try() -> None:
    answer = b"<Error><Code>InternalError</Code><Message>try again</Message></Error>"
    with pytest.raises(Exception, match="InternalError") as caught:
        await direct_store_on(Answering(200, answer)).delete_objects(["k"])
    assert getattr(caught.value, "retryable", False)
