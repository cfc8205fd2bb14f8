"""The direct path's requests against canned answers: what is sent, and how an answer is read."""

from __future__ import annotations

import pytest

from async_uploader.providers.s3.wire import ErrorResponse, complete_body
from tests.providers.s3.stores import Answering, bucket_on


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
