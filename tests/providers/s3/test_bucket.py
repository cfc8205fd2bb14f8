"""The direct path's requests against canned answers: what is sent, and how an answer is read."""

from __future__ import annotations

import pytest

from async_uploader.errors import BucketError
from async_uploader.providers.s3.http import Response
from async_uploader.providers.s3.wire import BucketEndpoint, ErrorResponse, complete_body
from tests.providers.s3.stores import Answering, bucket_on, direct_store_on


async def test_an_error_document_in_a_completions_200_answer_is_a_server_error() -> None:
    body = b"<?xml version='1.0'?><Error><Code>InternalError</Code><Message>try again</Message></Error>"
    with pytest.raises(ErrorResponse) as raised:
        await bucket_on(Answering(200, body)).complete_upload("k", "u", complete_body([(1, '"e"', None, None)]))
    assert (raised.value.status, raised.value.code, raised.value.message) == (500, "InternalError", "try again")


async def test_a_completion_gives_the_results_fields_and_sends_the_whole_checksum() -> None:
    http = Answering(
        200,
        b'<?xml version="1.0"?><CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Key>k</Key><ETag>&quot;x-2&quot;</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32>"
        b"</CompleteMultipartUploadResult>",
    )
    document = complete_body([(1, '"e"', None, None)])
    headers = {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-type": "FULL_OBJECT"}
    result = await bucket_on(http).complete_upload("dir/ü k", "up/id", document, headers)
    assert (result["ETag"], result["ChecksumCRC32"]) == ('"x-2"', "AAAAAA==")
    ((method, target, sent, body),) = http.requests
    assert (method, target, body) == ("POST", "/b/dir/%C3%BC%20k?uploadId=up%2Fid", document)
    assert sent["x-amz-checksum-type"] == "FULL_OBJECT"
    assert "x-amz-checksum-crc32" in sent["authorization"]


async def test_a_create_whose_answer_has_no_upload_id_makes_no_sense() -> None:
    with pytest.raises(ValueError, match="without an UploadId"):
        await bucket_on(Answering(200, b"<InitiateMultipartUploadResult/>")).create_upload("k")


async def test_a_bucket_that_keeps_saying_it_is_elsewhere_is_followed_once_and_named_in_the_error() -> None:
    """A redirect is followed once per request (as botocore's ``redirected`` flag): a store that keeps refusing
    ends in an error that names the region to set."""
    http = Answering(301, b"")
    http.response = Response(301, {"x-amz-bucket-region": "eu-west-3"}, b"")
    store = direct_store_on(http)
    with pytest.raises(BucketError, match="region 'eu-west-3'"):
        await store.check_readable()
    regions = [sent["authorization"].split("/")[2] for _, _, sent, _ in http.requests]
    assert regions[:2] == ["us-east-1", "eu-west-3"]


@pytest.mark.parametrize(
    ("endpoint", "region", "expected"),
    [
        ("https://b.s3.us-west-2.amazonaws.com", "us-west-2", "https://b.s3.eu-west-3.amazonaws.com"),
        ("https://b.s3.amazonaws.com", "us-east-1", "https://b.s3.eu-west-3.amazonaws.com"),
        ("https://s3.dualstack.us-west-2.amazonaws.com", "us-west-2", "https://s3.dualstack.eu-west-3.amazonaws.com"),
        ("https://us-west-2.s3.us-west-2.amazonaws.com", "us-west-2", "https://us-west-2.s3.eu-west-3.amazonaws.com"),
        ("http://127.0.0.1:9000", "us-east-1", "http://127.0.0.1:9000"),
        ("https://minio.example:9000", "us-east-1", "https://minio.example:9000"),
    ],
)
def test_a_redirect_moves_to_the_regions_endpoint_on_aws_and_keeps_a_users_endpoint(
    endpoint: str, region: str, expected: str
) -> None:
    moved = BucketEndpoint(endpoint, endpoint.partition("//")[2], "/", region).in_region("eu-west-3")
    assert (moved.origin, moved.host, moved.region) == (expected, expected.partition("//")[2], "eu-west-3")
