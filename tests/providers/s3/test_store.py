"""The direct path's store against moto's server (the seam's contract where realism adds nothing), on either path
where both must store the same; and against canned answers where a server would not say what the test needs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from io import BytesIO
from typing import Any

import pytest

from async_uploader.errors import BucketError, EndpointError, StoreError, VerificationError
from async_uploader.providers.base import Body, ObjectStore, UploadedPart, head_object_checksum
from async_uploader.providers.s3.boto import BotoStore
from async_uploader.providers.s3.clients import SEND_SLICE_BYTES
from async_uploader.providers.s3.store import DirectStore
from async_uploader.source.checksum import Algorithm, Checksum, checksum_of, composite
from tests.providers.s3.stores import Answering, direct_store_on, open_store
from tests.trees import random_bytes

MIB = 1024 * 1024
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
async def store(moto_endpoint: str, bucket: str) -> AsyncIterator[ObjectStore]:
    """The store a run gets with credentials and an endpoint given: the direct path's."""
    async with open_store(bucket, endpoint_url=moto_endpoint) as opened:
        yield opened


@pytest.fixture(params=[True, False], ids=["lean", "aiobotocore"])
async def either_store(request: pytest.FixtureRequest, moto_endpoint: str, bucket: str) -> AsyncIterator[ObjectStore]:
    async with open_store(bucket, endpoint_url=moto_endpoint, lean=request.param) as opened:
        assert isinstance(opened, DirectStore if request.param else BotoStore)
        yield opened


def crc(body: bytes) -> Checksum:
    return checksum_of(Algorithm.CRC32, body)


def test_the_store_satisfies_the_protocol(store: ObjectStore) -> None:
    assert isinstance(store, DirectStore)
    assert isinstance(store, ObjectStore)


async def test_put_object_stores_bytes_and_metadata(store: ObjectStore, sync_client: Any, bucket: str) -> None:
    stored = await store.put_object("dir/a b.txt", BytesIO(b"hello"), checksum=crc(b"hello"), metadata={"size": "5"})
    assert stored.etag
    got = sync_client.get_object(Bucket=bucket, Key="dir/a b.txt")
    assert got["Body"].read() == b"hello"
    assert got["Metadata"] == {"size": "5"}
    info = await store.head_object("dir/a b.txt")
    assert info is not None
    assert (info.size, dict(info.metadata)) == (5, {"size": "5"})


async def test_multipart_round_trip(store: ObjectStore, sync_client: Any, bucket: str) -> None:
    bodies = [random_bytes(5 * MIB, seed=1), b"tail"]
    upload_id = await store.create_multipart(
        "big", metadata={"mode": "100644"}, checksum=Algorithm.CRC32, full_object=False
    )
    parts = [
        await store.upload_part("big", upload_id, n, BytesIO(body), checksum=crc(body))
        for n, body in enumerate(bodies, start=1)
    ]
    assert [p.number for p in parts] == [1, 2]
    stored = await store.complete_multipart("big", upload_id, parts, full_checksum=None)
    assert stored.checksum in (None, composite(p.checksum for p in parts if p.checksum).value)
    assert sync_client.get_object(Bucket=bucket, Key="big")["Body"].read() == b"".join(bodies)
    assert sync_client.head_object(Bucket=bucket, Key="big")["Metadata"] == {"mode": "100644"}


@pytest.mark.parametrize("size", [0, 1, SEND_SLICE_BYTES, SEND_SLICE_BYTES + 1, 5 * MIB + 17])
async def test_a_body_sent_from_its_own_buffer_arrives_whole(
    size: int, store: ObjectStore, sync_client: Any, bucket: str
) -> None:
    data = random_bytes(size, seed=size)
    await store.put_object("single", Body(data), checksum=crc(data), metadata={})
    assert sync_client.get_object(Bucket=bucket, Key="single")["Body"].read() == data
    upload_id = await store.create_multipart("multi", metadata={}, checksum=Algorithm.CRC32, full_object=False)
    part = await store.upload_part("multi", upload_id, 1, Body(data), checksum=crc(data))
    await store.complete_multipart("multi", upload_id, [part], full_checksum=None)
    assert sync_client.get_object(Bucket=bucket, Key="multi")["Body"].read() == data


async def test_abort_leaves_no_upload_and_is_idempotent(store: ObjectStore, sync_client: Any, bucket: str) -> None:
    upload_id = await store.create_multipart("gone", metadata={}, checksum=Algorithm.CRC32, full_object=False)
    await store.upload_part("gone", upload_id, 1, BytesIO(b"x"), checksum=crc(b"x"))
    await store.abort_multipart("gone", upload_id)
    await store.abort_multipart("gone", upload_id)  # a second abort is not an error
    assert sync_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert await store.head_object("gone") is None


async def test_completing_with_a_bogus_part_is_a_store_error(store: ObjectStore) -> None:
    upload_id = await store.create_multipart("bogus", metadata={}, checksum=Algorithm.CRC32, full_object=False)
    with pytest.raises(StoreError):
        await store.complete_multipart("bogus", upload_id, [UploadedPart(1, '"nope"', crc(b""))], full_checksum=None)
    await store.abort_multipart("bogus", upload_id)


async def test_list_objects_streams_every_key_under_the_prefix(store: ObjectStore) -> None:
    for key in ("p/a", "p/b/c", "q/d"):
        await store.put_object(key, BytesIO(key.encode()), checksum=crc(key.encode()), metadata={})
    listed = [(o.key, o.size) async for o in store.list_objects("p/")]
    assert listed == [("p/a", 3), ("p/b/c", 5)]


async def test_preflight_passes_on_a_writable_bucket_and_leaves_nothing(
    either_store: ObjectStore, sync_client: Any, bucket: str
) -> None:
    await either_store.check_readable()
    await either_store.check_writable("probe-key")
    assert sync_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert sync_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "aiobotocore"])
async def test_preflight_on_a_missing_bucket_is_a_bucket_error(
    moto_endpoint: str, credentials: None, lean: bool
) -> None:
    async with open_store("no-such-bucket-anywhere", endpoint_url=moto_endpoint, lean=lean) as store:
        with pytest.raises(BucketError, match="does not exist"):
            await store.check_readable()


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "aiobotocore"])
async def test_preflight_on_a_dead_endpoint_is_an_endpoint_error(credentials: None, lean: bool) -> None:
    async with open_store("b-u-c", endpoint_url="http://127.0.0.1:9", lean=lean) as store:
        with pytest.raises(EndpointError, match="cannot reach"):
            await store.check_readable()


@pytest.mark.parametrize("algorithm", list(Algorithm))
async def test_every_checksum_algorithm_is_sent(
    store: ObjectStore, sync_client: Any, bucket: str, algorithm: Algorithm
) -> None:
    # moto accepts any checksum: that the server refuses a wrong one is tested against SeaweedFS (tests/e2e).
    stored = await store.put_object("k", BytesIO(b"hello"), checksum=checksum_of(algorithm, b"hello"), metadata={})
    assert stored.checksum in (None, checksum_of(algorithm, b"hello").value)
    assert sync_client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"hello"


async def test_special_keys_and_metadata_land_as_sent(either_store: ObjectStore, sync_client: Any, bucket: str) -> None:
    metadata = {"size": "5", "mtime": "1700000000.123456789", "mode": "100644"}
    for n, key in enumerate(KEYS):
        body = f"body {n}".encode()
        stored = await either_store.put_object(key, BytesIO(body), checksum=crc(body), metadata=metadata)
        assert stored.etag
        got = sync_client.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == body
        assert got["Metadata"] == metadata
    listed = {o["Key"] for o in sync_client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed == set(KEYS)


async def test_parts_of_a_special_key_complete(either_store: ObjectStore, sync_client: Any, bucket: str) -> None:
    key = "multi/ünï code+%/part?s"
    bodies = [b"a" * (5 * MIB), b"tail"]
    upload_id = await either_store.create_multipart(
        key, metadata={"mode": "100644"}, checksum=Algorithm.CRC32, full_object=False
    )
    parts = [
        await either_store.upload_part(key, upload_id, n, BytesIO(body), checksum=crc(body))
        for n, body in enumerate(bodies, start=1)
    ]
    await either_store.complete_multipart(key, upload_id, parts, full_checksum=None)
    assert sync_client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"".join(bodies)
    assert sync_client.head_object(Bucket=bucket, Key=key)["Metadata"] == {"mode": "100644"}


async def test_listings_are_the_same_on_both_paths(either_store: ObjectStore, sync_client: Any, bucket: str) -> None:
    keys = [*(f"p/{key}" for key in KEYS), *(f"p/many/{i:04d}" for i in range(1100)), "p-sibling", "other/x"]
    for key in keys:
        sync_client.put_object(Bucket=bucket, Key=key, Body=key.encode()[:10])
    expected = {(k, len(k.encode()[:10])) for k in keys if k.startswith("p/")}

    listed = [(info.key, info.size, info.etag) async for info in either_store.list_objects("p/")]

    assert {(key, size) for key, size, _ in listed} == expected  # all pages, every key decoded
    assert len(listed) == len(expected)
    assert all(etag.strip('"') for _, _, etag in listed)
    top = {info.key async for info in either_store.list_objects("p/", recursive=False)}
    assert top == {k for k in keys if k.startswith("p/") and "/" not in k[2:]}


INVALID_ARGUMENT = b"<Error><Code>InvalidArgument</Code><Message>x-amz-checksum-type not supported</Message></Error>"


async def test_a_store_that_refuses_full_object_checksums_is_asked_for_composite_ones_next() -> None:
    http = Answering(400, INVALID_ARGUMENT)
    store = direct_store_on(http)
    with pytest.raises(StoreError, match="without a full-object checksum") as raised:
        await store.create_multipart("k", metadata={"Mode": "100644"}, checksum=Algorithm.CRC32, full_object=True)
    assert raised.value.retryable
    assert store.full_object_checksums is False
    ((method, target, sent, _),) = http.requests
    assert (method, target) == ("POST", "/b/k?uploads=")
    assert sent["x-amz-meta-mode"] == "100644"
    assert (sent["x-amz-checksum-algorithm"], sent["x-amz-checksum-type"]) == ("CRC32", "FULL_OBJECT")
    assert "x-amz-checksum-type;x-amz-content-sha256;x-amz-date;x-amz-meta-mode" in sent["authorization"]
    with pytest.raises(StoreError) as plain:  # without a full-object checksum asked for, the refusal is final
        await store.create_multipart("k", metadata={}, checksum=Algorithm.CRC32, full_object=False)
    assert not plain.value.retryable


async def test_aborting_an_upload_that_is_already_gone_is_not_an_error() -> None:
    gone = b"<Error><Code>NoSuchUpload</Code><Message>gone</Message></Error>"
    await direct_store_on(Answering(404, gone)).abort_multipart("k", "u")
    with pytest.raises(StoreError) as refused:
        await direct_store_on(Answering(403, b"<Error><Code>AccessDenied</Code></Error>")).abort_multipart("k", "u")
    assert refused.value.denied


async def test_a_part_whose_checksum_the_store_computed_otherwise_is_refused() -> None:
    http = Answering(200, b"")
    http.response.headers.update({"etag": '"e1"', "x-amz-checksum-crc32": crc(b"other").value})
    store = direct_store_on(http)
    with pytest.raises(StoreError, match="no ETag"):
        await direct_store_on(Answering(200, b"")).upload_part("k", "u", 1, Body(b"v"), checksum=crc(b"v"))
    with pytest.raises(VerificationError, match="part 1: store computed CRC32"):
        await store.upload_part("k", "u", 1, Body(b"v"), checksum=crc(b"v"))
    http.response.headers["x-amz-checksum-crc32"] = crc(b"v").value
    part = await store.upload_part("k", "u", 1, Body(b"v"), checksum=crc(b"v"))
    assert part == UploadedPart(1, '"e1"', crc(b"v"))


async def test_a_head_in_checksum_mode_answers_the_stored_crc_on_both_paths(
    either_store: ObjectStore, sync_client: Any, bucket: str
) -> None:
    """What ``--compare checksum`` asks where the listing cannot answer: the whole-object CRC the writer sent."""
    sync_client.put_object(Bucket=bucket, Key="c", Body=b"content", ChecksumAlgorithm="CRC32")
    sync_client.put_object(Bucket=bucket, Key="plain", Body=b"content", ChecksumAlgorithm="CRC32")

    info = await head_object_checksum(either_store, "c")
    plain = await either_store.head_object("plain")

    assert info is not None
    assert plain is not None
    assert info.checksum == crc(b"content")
    assert (info.size, info.etag) == (7, plain.etag)
    assert plain.checksum is None  # not asked for: not in checksum mode
    assert await head_object_checksum(either_store, "missing") is None
