"""S3's wire format as the direct path reads and writes it, against botocore's own: endpoints, error documents,
the completion document, listing pages."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from async_uploader.providers.base import StoredPart
from async_uploader.providers.s3.wire import (
    BucketEndpoint,
    complete_body,
    error_response,
    parse_listing,
    parse_parts,
    parse_uploads,
    stored_part,
)
from async_uploader.source.checksum import Algorithm, Checksum

AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=AKID/20261126/{}/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
)


def test_endpoint_from_a_path_style_request() -> None:
    url = "http://127.0.0.1:8333/my-bucket/async-uploader-probe"
    assert BucketEndpoint.from_signed_request(url, AUTHORIZATION.format("eu-west-3")) == BucketEndpoint(
        "http://127.0.0.1:8333", "127.0.0.1:8333", "/my-bucket/", "eu-west-3"
    )


@pytest.mark.parametrize(
    ("url", "bucket_path"),
    [("http://127.0.0.1:8333/my-bucket", "/my-bucket/"), ("https://my-bucket.s3.eu-west-3.amazonaws.com/", "/")],
)
def test_endpoint_from_the_preflights_head_bucket(url: str, bucket_path: str) -> None:
    endpoint = BucketEndpoint.from_bucket_request(url, AUTHORIZATION.format("eu-west-3"), "my-bucket")
    assert endpoint is not None
    assert (endpoint.bucket_path, endpoint.region) == (bucket_path, "eu-west-3")
    assert BucketEndpoint.from_bucket_request("http://h/other-bucket", AUTHORIZATION.format("x"), "my-bucket") is None


def test_endpoint_from_a_virtual_hosted_request() -> None:
    url = "https://b.s3.us-west-2.amazonaws.com:443/async-uploader-probe"
    assert BucketEndpoint.from_signed_request(url, AUTHORIZATION.format("us-west-2")) == BucketEndpoint(
        "https://b.s3.us-west-2.amazonaws.com:443", "b.s3.us-west-2.amazonaws.com", "/", "us-west-2"
    )


def test_a_request_not_signed_with_sigv4_is_not_followed() -> None:
    url = "https://b.s3.amazonaws.com/async-uploader-probe"
    assert BucketEndpoint.from_signed_request(url, "AWS AKID:signature") is None
    assert BucketEndpoint.from_signed_request(url, "") is None


def test_error_documents_are_read_like_botocore_reads_them() -> None:
    body = b"<?xml version='1.0'?><Error><Code>BadDigest</Code><Message>no match</Message></Error>"
    error = error_response(400, body)
    assert (error.status, error.code, error.message) == (400, "BadDigest", "no match")
    bare = error_response(503, b"")
    assert (bare.code, bare.message) == ("503", "Service Unavailable")
    html = error_response(502, b"<html><body>Bad gateway</body></html>")
    assert (html.code, html.message) == ("502", "Bad Gateway")


def test_a_completion_document_is_the_one_botocore_serializes() -> None:
    parts = [
        (1, '"a&b<c>"', "ChecksumCRC32", "AAAAAA=="),
        (2, '"e2"', "ChecksumCRC32", "BBBBBB=="),
        (3, '"e3"', None, None),
    ]
    ours = complete_body(parts)
    model = botocore.session.get_session().get_service_model("s3")
    params = {
        "Bucket": "b",
        "Key": "k",
        "UploadId": "u",
        "MultipartUpload": {
            "Parts": [
                {"PartNumber": n, "ETag": etag, **({element: value} if element and value else {})}
                for n, etag, element, value in parts
            ]
        },
    }
    theirs = create_serializer("rest-xml").serialize_to_request(
        params, model.operation_model("CompleteMultipartUpload")
    )["body"]
    assert ours == theirs


def test_a_listing_page_is_read_like_botocore_reads_it() -> None:
    page = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>true</IsTruncated>'
        b"<EncodingType>url</EncodingType>"
        b"<Contents><Key>a+b%20c%2Bd</Key><Size>3</Size><ETag>&quot;e1&quot;</ETag></Contents>"
        b"<Contents><Key>%E6%97%A5</Key><Size>0</Size><ETag>&quot;e2-2&quot;</ETag></Contents>"
        b"<NextContinuationToken>tok=</NextContinuationToken></ListBucketResult>"
    )
    assert parse_listing(page) == ([("a b c+d", 3, '"e1"'), ("日", 0, '"e2-2"')], "tok=")
    assert parse_listing(page.replace(b"true", b"false"))[1] is None
    # A store that ignores encoding-type=url says nothing of it, and its keys are as they are.
    unencoded = page.replace(b"<EncodingType>url</EncodingType>", b"")
    assert parse_listing(unencoded)[0] == [("a+b%20c%2Bd", 3, '"e1"'), ("%E6%97%A5", 0, '"e2-2"')]


PARTS_PAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><Key>k</Key>'
    b"<UploadId>u</UploadId><PartNumberMarker>0</PartNumberMarker><NextPartNumberMarker>7</NextPartNumberMarker>"
    b"<MaxParts>2</MaxParts><IsTruncated>true</IsTruncated>"
    b"<Part><PartNumber>3</PartNumber><LastModified>2026-12-03T10:00:00.000Z</LastModified>"
    b"<ETag>&quot;e3&quot;</ETag><Size>5242880</Size><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>"
    b"<Part><PartNumber>7</PartNumber><ETag>&quot;e7&quot;</ETag><Size>4</Size></Part>"
    b"</ListPartsResult>"
)


def test_a_page_of_parts_is_read_like_botocore_reads_it() -> None:
    parts, marker = parse_parts(PARTS_PAGE)
    model = botocore.session.get_session().get_service_model("s3").operation_model("ListParts")
    theirs = create_parser("rest-xml").parse(
        {"body": PARTS_PAGE, "headers": {}, "status_code": 200}, model.output_shape
    )
    assert [stored_part(p) for p in parts] == [stored_part(p) for p in theirs["Parts"]]
    assert [stored_part(p) for p in parts] == [
        StoredPart(3, 5242880, '"e3"', Checksum(Algorithm.CRC32, "AAAAAA==")),
        StoredPart(7, 4, '"e7"', None),
    ]
    assert marker == int(theirs["NextPartNumberMarker"]) == 7
    assert parse_parts(PARTS_PAGE.replace(b"<IsTruncated>true", b"<IsTruncated>false"))[1] is None
    # Truncated without a marker (some stores): go on from the last part listed.
    assert parse_parts(PARTS_PAGE.replace(b"<NextPartNumberMarker>7</NextPartNumberMarker>", b""))[1] == 7


def test_a_page_of_open_uploads_gives_keys_ids_times_and_the_next_markers() -> None:
    page = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket>'
        b"<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
        b"<NextKeyMarker>d%2Bir/k+2</NextKeyMarker><NextUploadIdMarker>id-2</NextUploadIdMarker>"
        b"<Upload><Key>a+b</Key><UploadId>id-1</UploadId><Initiated>2026-11-26T10:00:00.000Z</Initiated></Upload>"
        b"<Upload><Key>d%2Bir/k+2</Key><UploadId>id-2</UploadId><Initiated>2026-11-26T10:00:01Z</Initiated></Upload>"
        b"</ListMultipartUploadsResult>"
    )
    rows, markers = parse_uploads(page)
    assert rows == [("a b", "id-1", 1795687200.0), ("d+ir/k 2", "id-2", 1795687201.0)]
    assert markers == ("d+ir/k 2", "id-2")
    assert parse_uploads(page.replace(b"<IsTruncated>true", b"<IsTruncated>false"))[1] is None
    # Truncated without markers (some stores): go on from the last upload listed.
    bare = page.replace(b"<NextKeyMarker>d%2Bir/k+2</NextKeyMarker><NextUploadIdMarker>id-2</NextUploadIdMarker>", b"")
    assert parse_uploads(bare)[1] == ("d+ir/k 2", "id-2")
