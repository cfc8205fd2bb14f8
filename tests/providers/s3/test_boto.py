"""The aiobotocore store (``--lean off``) next to the direct path's, against moto's server: the same objects, and
the same answers read from them."""

from __future__ import annotations

from io import BytesIO
from typing import Any

from async_uploader.providers.s3.boto import BotoStore
from async_uploader.providers.s3.store import DirectStore
from async_uploader.source.checksum import Algorithm, checksum_of
from tests.providers.s3.stores import open_store

MIB = 1024 * 1024


async def test_both_paths_store_the_same_object_attributes(moto_endpoint: str, sync_client: Any, bucket: str) -> None:
    seen = []
    for lean in (True, False):
        async with open_store(bucket, endpoint_url=moto_endpoint, lean=lean) as store:
            await store.put_object(
                f"k-{lean}", BytesIO(b"same"), checksum=checksum_of(Algorithm.CRC32, b"same"), metadata={"a": "1"}
            )
        head = sync_client.head_object(Bucket=bucket, Key=f"k-{lean}")
        seen.append((head["ContentType"], head["ContentLength"], head["ETag"], head["Metadata"]))
    assert seen[0] == seen[1]


async def test_both_paths_read_an_object_head_alike(moto_endpoint: str, sync_client: Any, bucket: str) -> None:
    sync_client.put_object(Bucket=bucket, Key="dir/ü k+", Body=b"12345", Metadata={"mtime": "1.5", "Size": "5"})
    heads = []
    for lean in (True, False):
        async with open_store(bucket, endpoint_url=moto_endpoint, lean=lean) as store:
            heads.append((await store.head_object("dir/ü k+"), await store.head_object("missing"), type(store)))
    assert heads[0][:2] == heads[1][:2]
    assert heads[0][0] is not None
    assert heads[0][0].metadata == {"mtime": "1.5", "size": "5"}
    assert heads[0][1] is None
    assert (heads[0][2], heads[1][2]) == (DirectStore, BotoStore)


async def test_both_paths_list_an_open_uploads_parts_alike(moto_endpoint: str, bucket: str) -> None:
    async with open_store(bucket, endpoint_url=moto_endpoint) as store:
        upload_id = await store.create_multipart("ü/k", metadata={}, checksum=Algorithm.CRC32, full_object=False)
        for number, body in ((1, b"a" * (5 * MIB)), (2, b"tail")):
            await store.upload_part(
                "ü/k", upload_id, number, BytesIO(body), checksum=checksum_of(Algorithm.CRC32, body)
            )
    listed = []
    for lean in (True, False):
        async with open_store(bucket, endpoint_url=moto_endpoint, lean=lean) as store:
            listed.append((await store.list_parts("ü/k", upload_id), type(store)))
    assert listed[0][0] == listed[1][0]
    assert [(p.number, p.size) for p in listed[0][0]] == [(1, 5 * MIB), (2, 4)]
    assert (listed[0][1], listed[1][1]) == (DirectStore, BotoStore)
