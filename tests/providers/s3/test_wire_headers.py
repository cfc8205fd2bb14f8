"""The direct path sends and signs the very headers botocore sends for the same ``ObjectHeaders``."""

from __future__ import annotations

import datetime
from io import BytesIO
from typing import Any

from botocore.credentials import Credentials

from async_uploader.providers.base import ObjectHeaders
from async_uploader.providers.s3.bucket import BucketClient
from async_uploader.providers.s3.clients import pay_as_requester
from async_uploader.providers.s3.wire import (
    BucketEndpoint,
    object_headers,
    object_params,
    request_headers,
    request_params,
)
from tests.providers.s3.stores import Answering, Keys
from tests.providers.s3.test_sigv4 import _lean_sign, _send, captured_client  # noqa: F401 (a fixture)

EVERYTHING = ObjectHeaders(
    content_type="text/html; charset=utf-8",
    cache_control="max-age=31536000, immutable",
    content_encoding="gzip",
    content_disposition='attachment; filename="a b.html"',
    content_language="en",
    expires="Tue, 01 Jan 2030 00:00:00 GMT",
    sse="aws:kms",
    sse_kms_key_id="arn:aws:kms:eu-west-3:123456789012:key/1234",
    sse_kms_context="eyJwcm9qZWN0IjoieCJ9",
    storage_class="STANDARD_IA",
    tagging="project=site&env=prod%20x",
    acl="bucket-owner-full-control",
)
SSE_C = ObjectHeaders(content_type="text/plain", sse_c_key=bytes(range(32)))
OURS = {"x-amz-date", "x-amz-security-token", "x-amz-content-sha256", "host", "content-length"}
"""Headers every request carries, or a body's (its length, its checksum), which other tests compare."""


def _signed(request: Any, *, everything: bool = False) -> dict[str, str]:
    """The headers botocore signed, but those every request carries (date, token, payload hash, host) and, unless
    ``everything``, the body's."""
    authorization = request.headers["Authorization"].decode()
    names = set(authorization.partition("SignedHeaders=")[2].partition(",")[0].split(";"))
    left_out = {"x-amz-date", "x-amz-security-token", "x-amz-content-sha256", "host"} if everything else OURS
    found = {
        name.lower(): value
        for name, value in request.headers.items()
        if name.lower() in names - left_out and (everything or "checksum" not in name.lower())
    }
    return {name: value.decode() if isinstance(value, bytes) else value for name, value in found.items()}


def test_object_headers_are_botocores(captured_client: Any) -> None:  # noqa: F811
    for headers in (EVERYTHING, SSE_C):
        for operation in ("put_object", "create_multipart_upload"):
            body = {"Body": b"x"} if operation == "put_object" else {}
            sent = _send(captured_client, operation, Bucket="bkt", Key="k", **body, **object_params(headers))
            assert _signed(sent) == dict(object_headers(headers))
            when = datetime.datetime.strptime(sent.headers["X-Amz-Date"].decode(), "%Y%m%dT%H%M%SZ")
            credentials = Credentials("AKIDEXAMPLE", "secret/with+odd=chars", "token-value")
            url = sent.url.replace("?uploads", "?uploads=")  # the direct path's canonical query, as botocore's
            ours, _ = _lean_sign(sent.method, url, _signed(sent, everything=True), credentials, "eu-west-3", when)
            assert ours["authorization"] == sent.headers["Authorization"].decode()


def test_the_sse_c_key_rides_on_every_request_of_the_object(captured_client: Any) -> None:  # noqa: F811
    calls = {
        "upload_part": {"UploadId": "u", "PartNumber": 1, "Body": b""},
        "complete_multipart_upload": {"UploadId": "u", "MultipartUpload": {"Parts": []}},
        "head_object": {},
        "list_parts": {"UploadId": "u"},
    }
    for operation, params in calls.items():
        sent = _send(captured_client, operation, Bucket="bkt", Key="k", **params, **request_params(SSE_C))
        signed = _signed(sent)
        assert {k: v for k, v in signed.items() if k.startswith("x-amz-server-side")} == dict(request_headers(SSE_C))
    assert request_headers(EVERYTHING) == {}


async def test_the_request_payer_header_is_signed_as_botocore_signs_it(captured_client: Any) -> None:  # noqa: F811
    sent = _send(captured_client, "put_object", Bucket="bkt", Key="k", Body=b"x", RequestPayer="requester")
    theirs = _signed(sent)
    assert theirs == {"x-amz-request-payer": "requester"}
    http = Answering(200, b"")
    endpoint = BucketEndpoint.path_style("http://127.0.0.1:9", "bkt", "eu-west-3")
    bucket = BucketClient(http, endpoint, Keys(), request_payer="requester")  # type: ignore[arg-type]
    await bucket.put("k", BytesIO(b"x"), checksum=None)
    await bucket.head_bucket()  # botocore's model has no RequestPayer here: the clients add the header themselves
    for _, _, headers, _ in http.requests:
        names = set(headers["authorization"].partition("SignedHeaders=")[2].partition(",")[0].split(";"))
        assert {name: headers[name] for name in names - OURS} == theirs


def test_a_paying_client_signs_the_header_on_every_request_until_undone(captured_client: Any) -> None:  # noqa: F811
    undo = pay_as_requester(captured_client, "requester")
    try:
        sent = [
            _send(captured_client, "head_bucket", Bucket="bkt"),
            _send(captured_client, "list_objects_v2", Bucket="bkt"),
            _send(captured_client, "put_object", Bucket="bkt", Key="k", Body=b"x"),
            _send(captured_client, "abort_multipart_upload", Bucket="bkt", Key="k", UploadId="u"),
        ]
        # Where botocore's model has the parameter, the very header (once) it sends for it.
        sent.append(_send(captured_client, "put_object", Bucket="bkt", Key="k", Body=b"x", RequestPayer="requester"))
    finally:
        undo()
    for request in sent:
        assert _signed(request) == {"x-amz-request-payer": "requester"}
    assert _signed(_send(captured_client, "head_bucket", Bucket="bkt")) == {}
