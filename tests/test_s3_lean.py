"""The lean data path: its pure parts, and its requests against moto's server next to the aiobotocore path's."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from io import BytesIO
from typing import Any

import botocore.config
import botocore.session
import pytest
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from async_uploader.errors import StoreError
from async_uploader.providers.base import StoredPart
from async_uploader.providers.http1 import Response
from async_uploader.providers.s3 import (
    DEFAULT_SIGNING_REGION,
    BotocoreCredentials,
    DirectAccess,
    S3Connection,
    S3Store,
    _Clients,
    _stored_part,
    client_options,
    open_s3_store,
)
from async_uploader.providers.s3_lean import (
    PROBE_KEY,
    BucketEndpoint,
    ErrorResponse,
    LeanS3,
    _error_response,
    complete_body,
    parse_listing,
    parse_parts,
    parse_uploads,
)
from async_uploader.source.checksum import Algorithm, Checksum, checksum_of
from tests.test_s3_provider import credentials, moto_endpoint, sync_client  # noqa: F401 - fixtures

KEYS = [
    "plain.txt",
    "dir/sub dir/a b.txt",
    "ünïcödé/日本語/😀.bin",
    "odd/+plus%percent~tilde=eq&amp?q#hash",
    "double//slash/",
    "a'quote(paren)!*:@,;$",
    "x" * 900,
]


@pytest.fixture
def bucket(sync_client: Any, request: pytest.FixtureRequest) -> str:  # noqa: F811
    name = "lean-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:50].strip("-")
    sync_client.create_bucket(Bucket=name)
    return name


@pytest.fixture(params=[True, False], ids=["lean", "aiobotocore"])
async def store(request: pytest.FixtureRequest, moto_endpoint: str, bucket: str) -> AsyncIterator[S3Store]:  # noqa: F811
    async with open_s3_store(bucket, endpoint_url=moto_endpoint, lean=request.param) as opened:
        yield opened


async def test_special_keys_and_metadata_land_as_sent(store: S3Store, sync_client: Any, bucket: str) -> None:  # noqa: F811
    metadata = {"size": "5", "mtime": "1700000000.123456789", "mode": "100644"}
    for n, key in enumerate(KEYS):
        body = f"body {n}".encode()
        stored = await store.put_object(
            key, BytesIO(body), checksum=checksum_of(Algorithm.CRC32, body), metadata=metadata
        )
        assert stored.etag
        got = sync_client.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == body
        assert got["Metadata"] == metadata
    listed = {o["Key"] for o in sync_client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed == set(KEYS)
    assert store.sends_lean is (store._lean_pool is not None)


async def test_parts_of_a_special_key_complete(store: S3Store, sync_client: Any, bucket: str) -> None:  # noqa: F811
    key = "multi/ünï code+%/part?s"
    bodies = [b"a" * (5 * 1024 * 1024), b"tail"]
    upload_id = await store.create_multipart(
        key, metadata={"mode": "100644"}, checksum=Algorithm.CRC32, full_object=False
    )
    parts = [
        await store.upload_part(key, upload_id, n, BytesIO(body), checksum=checksum_of(Algorithm.CRC32, body))
        for n, body in enumerate(bodies, start=1)
    ]
    await store.complete_multipart(key, upload_id, parts, full_checksum=None)
    assert sync_client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"".join(bodies)
    assert sync_client.head_object(Bucket=bucket, Key=key)["Metadata"] == {"mode": "100644"}


async def test_both_paths_store_the_same_object_attributes(moto_endpoint: str, sync_client: Any, bucket: str) -> None:  # noqa: F811
    seen = []
    for lean in (True, False):
        async with open_s3_store(bucket, endpoint_url=moto_endpoint, lean=lean) as store:
            await store.put_object(
                f"k-{lean}", BytesIO(b"same"), checksum=checksum_of(Algorithm.CRC32, b"same"), metadata={"a": "1"}
            )
        head = sync_client.head_object(Bucket=bucket, Key=f"k-{lean}")
        seen.append((head["ContentType"], head["ContentLength"], head["ETag"], head["Metadata"]))
    assert seen[0] == seen[1]


async def test_both_paths_read_an_object_head_alike(moto_endpoint: str, sync_client: Any, bucket: str) -> None:  # noqa: F811
    sync_client.put_object(Bucket=bucket, Key="dir/ü k+", Body=b"12345", Metadata={"mtime": "1.5", "Size": "5"})
    heads = []
    for lean in (True, False):
        async with open_s3_store(bucket, endpoint_url=moto_endpoint, lean=lean) as store:
            heads.append((await store.head_object("dir/ü k+"), await store.head_object("missing"), store.sends_lean))
    assert heads[0][:2] == heads[1][:2]
    assert heads[0][0] is not None
    assert heads[0][0].metadata == {"mtime": "1.5", "size": "5"}
    assert heads[0][1] is None
    assert (heads[0][2], heads[1][2]) == (True, False)


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
    error = _error_response(400, body)
    assert (error.status, error.code, error.message) == (400, "BadDigest", "no match")
    bare = _error_response(503, b"")
    assert (bare.code, bare.message) == ("503", "Service Unavailable")
    html = _error_response(502, b"<html><body>Bad gateway</body></html>")
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


class _Answering:
    """A pool that answers every request with one canned response, and remembers the requests."""

    def __init__(self, status: int, body: bytes) -> None:
        self.response = Response(status, {}, body)
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []

    async def request(self, origin: str, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        self.requests.append((method, target, headers, body))
        return self.response


class _Keys:
    async def get_frozen_credentials(self) -> ReadOnlyCredentials:
        return ReadOnlyCredentials("AKID", "secret", None)


def _lean_on(pool: _Answering) -> LeanS3:
    return LeanS3(pool, BucketEndpoint.path_style("http://127.0.0.1:9", "b", "us-east-1"), _Keys())  # type: ignore[arg-type]


async def test_an_error_document_in_a_completions_200_answer_is_a_server_error() -> None:
    body = b"<?xml version='1.0'?><Error><Code>InternalError</Code><Message>try again</Message></Error>"
    with pytest.raises(ErrorResponse) as raised:
        await _lean_on(_Answering(200, body)).complete_upload("k", "u", complete_body([(1, '"e"', None, None)]))
    assert (raised.value.status, raised.value.code, raised.value.message) == (500, "InternalError", "try again")


async def test_a_completion_gives_the_results_fields_and_sends_the_whole_checksum() -> None:
    pool = _Answering(
        200,
        b'<?xml version="1.0"?><CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Key>k</Key><ETag>&quot;x-2&quot;</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32>"
        b"</CompleteMultipartUploadResult>",
    )
    document = complete_body([(1, '"e"', None, None)])
    headers = {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-type": "FULL_OBJECT"}
    result = await _lean_on(pool).complete_upload("dir/ü k", "up/id", document, headers)
    assert (result["ETag"], result["ChecksumCRC32"]) == ('"x-2"', "AAAAAA==")
    ((method, target, sent, body),) = pool.requests
    assert (method, target, body) == ("POST", "/b/dir/%C3%BC%20k?uploadId=up%2Fid", document)
    assert sent["x-amz-checksum-type"] == "FULL_OBJECT"
    assert "x-amz-checksum-crc32" in sent["authorization"]


def _direct_store(pool: _Answering) -> S3Store:
    """An ``S3Store`` whose lean path talks to ``pool`` and that has no botocore client to fall back on."""

    async def no_client() -> tuple[Any, Any]:
        raise AssertionError("the lean path must not need a botocore client")

    direct = DirectAccess("http://127.0.0.1:9", "us-east-1", _Keys())  # type: ignore[arg-type]
    connection = S3Connection(_Clients(no_client), "http://127.0.0.1:9", (), pool, direct)  # type: ignore[arg-type]
    return S3Store(connection, "b")


INVALID_ARGUMENT = b"<Error><Code>InvalidArgument</Code><Message>x-amz-checksum-type not supported</Message></Error>"


async def test_a_store_that_refuses_full_object_checksums_is_asked_for_composite_ones_next() -> None:
    pool = _Answering(400, INVALID_ARGUMENT)
    store = _direct_store(pool)
    with pytest.raises(StoreError, match="without a full-object checksum") as raised:
        await store.create_multipart("k", metadata={"Mode": "100644"}, checksum=Algorithm.CRC32, full_object=True)
    assert raised.value.retryable
    assert store.full_object_checksums is False
    ((method, target, sent, _),) = pool.requests
    assert (method, target) == ("POST", "/b/k?uploads=")
    assert sent["x-amz-meta-mode"] == "100644"
    assert (sent["x-amz-checksum-algorithm"], sent["x-amz-checksum-type"]) == ("CRC32", "FULL_OBJECT")
    assert "x-amz-checksum-type;x-amz-content-sha256;x-amz-date;x-amz-meta-mode" in sent["authorization"]
    with pytest.raises(StoreError) as plain:  # without a full-object checksum asked for, the refusal is final
        await store.create_multipart("k", metadata={}, checksum=Algorithm.CRC32, full_object=False)
    assert not plain.value.retryable


async def test_aborting_an_upload_that_is_already_gone_is_not_an_error() -> None:
    gone = b"<Error><Code>NoSuchUpload</Code><Message>gone</Message></Error>"
    await _direct_store(_Answering(404, gone)).abort_multipart("k", "u")
    with pytest.raises(StoreError) as refused:
        await _direct_store(_Answering(403, b"<Error><Code>AccessDenied</Code></Error>")).abort_multipart("k", "u")
    assert refused.value.denied


async def test_listings_are_the_same_on_both_paths(store: S3Store, sync_client: Any, bucket: str) -> None:  # noqa: F811
    keys = [*(f"p/{key}" for key in KEYS), *(f"p/many/{i:04d}" for i in range(1100)), "p-sibling", "other/x"]
    for key in keys:
        sync_client.put_object(Bucket=bucket, Key=key, Body=key.encode()[:10])
    expected = {(k, len(k.encode()[:10])) for k in keys if k.startswith("p/")}

    listed = [(info.key, info.size, info.etag) async for info in store.list_objects("p/")]

    assert {(key, size) for key, size, _ in listed} == expected  # all pages, every key decoded
    assert len(listed) == len(expected)
    assert all(etag.strip('"') for _, _, etag in listed)
    top = {info.key async for info in store.list_objects("p/", recursive=False)}
    assert top == {k for k in keys if k.startswith("p/") and "/" not in k[2:]}


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
    assert [_stored_part(p) for p in parts] == [_stored_part(p) for p in theirs["Parts"]]
    assert [_stored_part(p) for p in parts] == [
        StoredPart(3, 5242880, '"e3"', Checksum(Algorithm.CRC32, "AAAAAA==")),
        StoredPart(7, 4, '"e7"', None),
    ]
    assert marker == int(theirs["NextPartNumberMarker"]) == 7
    assert parse_parts(PARTS_PAGE.replace(b"<IsTruncated>true", b"<IsTruncated>false"))[1] is None
    # Truncated without a marker (some stores): go on from the last part listed.
    assert parse_parts(PARTS_PAGE.replace(b"<NextPartNumberMarker>7</NextPartNumberMarker>", b""))[1] == 7


async def test_both_paths_list_an_open_uploads_parts_alike(moto_endpoint: str, bucket: str) -> None:  # noqa: F811
    async with open_s3_store(bucket, endpoint_url=moto_endpoint) as store:
        upload_id = await store.create_multipart("ü/k", metadata={}, checksum=Algorithm.CRC32, full_object=False)
        for number, body in ((1, b"a" * (5 * 1024 * 1024)), (2, b"tail")):
            await store.upload_part(
                "ü/k", upload_id, number, BytesIO(body), checksum=checksum_of(Algorithm.CRC32, body)
            )
    listed = []
    for lean in (True, False):
        async with open_s3_store(bucket, endpoint_url=moto_endpoint, lean=lean) as store:
            listed.append((await store.list_parts("ü/k", upload_id), store.sends_lean))
    assert listed[0][0] == listed[1][0]
    assert [(p.number, p.size) for p in listed[0][0]] == [(1, 5 * 1024 * 1024), (2, 4)]
    assert (listed[0][1], listed[1][1]) == (True, False)


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


class _Captured(Exception):
    pass


@pytest.mark.parametrize(
    "endpoint_url",
    ["http://127.0.0.1:9000", "https://minio.example.com", "https://host:8443/base/path/", "http://u:pw@host:9000/x"],
)
@pytest.mark.parametrize("region", [None, "eu-west-3"])
@pytest.mark.parametrize("bucket", ["bkt", "my.bucket-1"])
def test_a_direct_endpoint_is_where_botocore_sends_and_signs(
    endpoint_url: str, region: str | None, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a botocore client, the lean path addresses a bucket of a user-given endpoint itself: the URL and
    the signing region must be the ones botocore's endpoint rules give, with our client options."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    seen: list[tuple[str, str]] = []

    def capture(request: Any, **_: Any) -> None:
        authorization = request.headers["Authorization"]
        seen.append((request.url, authorization.decode() if isinstance(authorization, bytes) else authorization))
        raise _Captured

    options = client_options(endpoint_url, 5, 5)
    client = botocore.session.get_session().create_client(
        "s3",
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=botocore.config.Config(**options),
    )
    client.meta.events.register_first("before-send.s3.HeadObject", capture)
    with pytest.raises(_Captured):
        client.head_object(Bucket=bucket, Key=PROBE_KEY)

    learned = BucketEndpoint.from_signed_request(*seen[0])
    assert learned == BucketEndpoint.path_style(endpoint_url, bucket, region or DEFAULT_SIGNING_REGION)


async def test_botocore_credentials_are_refreshed_off_the_event_loop() -> None:
    """A read that refreshes blocks on a request (STS, a metadata service): it goes to a worker thread; a read of
    credentials still valid does not pay for the hop."""
    loop_thread = threading.current_thread()

    class Refreshable:
        def __init__(self) -> None:
            self.due = False
            self.read_in: list[threading.Thread] = []

        def refresh_needed(self) -> bool:
            return self.due

        def get_frozen_credentials(self) -> Any:
            self.read_in.append(threading.current_thread())
            return ReadOnlyCredentials("AKID", "secret", None)

    refreshable = Refreshable()
    lean_credentials = BotocoreCredentials(refreshable)
    assert (await lean_credentials.get_frozen_credentials()).access_key == "AKID"
    refreshable.due = True
    await lean_credentials.get_frozen_credentials()
    assert refreshable.read_in[0] is loop_thread
    assert refreshable.read_in[1] is not loop_thread
    static = BotocoreCredentials(Credentials("AKID2", "secret2"))
    assert (await static.get_frozen_credentials()).access_key == "AKID2"
