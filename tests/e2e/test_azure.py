"""The Azure provider against Azurite, where its behaviour is its own: MD5 verification, aborts that delete
nothing, public containers refused, credentials that are never anonymous."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from io import BytesIO

import pytest

from async_uploader.errors import BucketError, ConfigError, VerificationError
from async_uploader.providers import azure
from async_uploader.providers.registry import ConnectOptions, provider_for
from async_uploader.source.checksum import Algorithm, Checksum
from tests.e2e.conftest import new_container, read_container
from tools.azurite import BlobServer

CRC = Checksum(Algorithm.CRC32, "AAAAAA==")  # the engine's; Azure checks the MD5 the provider adds
OPTIONS = ConnectOptions(max_connections=4, connect_timeout_s=5, read_timeout_s=30)


@pytest.fixture
async def store(azurite: BlobServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[azure.AzureStore]:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    async with provider_for("az")(OPTIONS) as connection:
        yield connection.store(new_container(azurite))


async def test_a_body_whose_md5_does_not_match_is_refused(
    store: azure.AzureStore, azurite: BlobServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(azure, "_md5", lambda body: b"\0" * 16)  # as if the bytes changed on the way
    with pytest.raises(VerificationError, match="MD5"):
        await store.put_object("k", BytesIO(b"payload"), checksum=CRC, metadata={})
    upload_id = await store.create_multipart("big", metadata={}, checksum=Algorithm.CRC32, full_object=False)
    with pytest.raises(VerificationError, match="MD5"):
        await store.upload_part("big", upload_id, 1, BytesIO(b"part"), checksum=CRC)
    assert read_container(azurite, store.container) == {}


async def test_abort_leaves_the_object_already_there(store: azure.AzureStore, azurite: BlobServer) -> None:
    await store.put_object("k", BytesIO(b"old"), checksum=CRC, metadata={"size": "3"})
    upload_id = await store.create_multipart("k", metadata={"size": "6"}, checksum=Algorithm.CRC32, full_object=False)
    await store.upload_part("k", upload_id, 1, BytesIO(b"new"), checksum=CRC)
    assert [(p.number, p.size) for p in await store.list_parts("k", upload_id)] == [(1, 3)]

    await store.abort_multipart("k", upload_id)

    assert read_container(azurite, store.container) == {"k": (b"old", {"size": "3"})}


async def test_blocks_commit_in_part_order_with_the_metadata_of_the_create(
    store: azure.AzureStore, azurite: BlobServer
) -> None:
    upload_id = await store.create_multipart("k", metadata={"mode": "100644"}, checksum=None, full_object=False)
    second = await store.upload_part("k", upload_id, 2, BytesIO(b"world"), checksum=None)
    first = await store.upload_part("k", upload_id, 1, BytesIO(b"hello "), checksum=None)
    stored = await store.complete_multipart("k", upload_id, [second, first], full_checksum=None)
    info = await store.head_object("k")
    assert info is not None
    assert (info.size, info.etag, dict(info.metadata)) == (11, stored.etag, {"mode": "100644"})
    assert read_container(azurite, store.container) == {"k": (b"hello world", {"mode": "100644"})}


async def test_listing_with_and_without_recursion(store: azure.AzureStore) -> None:
    for key in ("p/a", "p/sub/b", "p/sub/deeper/c", "q/x"):
        await store.put_object(key, BytesIO(key.encode()), checksum=None, metadata={})
    assert sorted(o.key for o in [o async for o in store.list_objects("p/")]) == ["p/a", "p/sub/b", "p/sub/deeper/c"]
    assert [o.key async for o in store.list_objects("p/", recursive=False)] == ["p/a"]
    (listed,) = [o async for o in store.list_objects("p/a")]
    head = await store.head_object("p/a")
    assert head is not None
    assert (listed.size, listed.etag) == (head.size, head.etag)  # the state file compares the two
    assert await store.head_object("p/none") is None


async def test_a_public_container_is_refused(azurite: BlobServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.create_container("public-container", public_access="blob")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    async with provider_for("az")(OPTIONS) as connection:
        with pytest.raises(BucketError, match="anonymous read access"):
            await connection.store("public-container").check_readable()


async def test_a_connection_string_without_a_key_or_sas_is_refused(
    azurite: BlobServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", f"BlobEndpoint={azurite.account_url};")
    with pytest.raises(ConfigError, match="anonymous access is never used"):
        async with provider_for("az")(OPTIONS):
            pass


def test_without_the_extra_az_is_a_one_line_config_error() -> None:
    code = (
        "import sys; sys.modules['azure.storage.blob'] = None\n"
        "from async_uploader.providers.registry import provider_for\n"
        "try:\n    provider_for('az')\nexcept Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.startswith("ConfigError az:// destinations need the Azure SDK")
    assert "pip install 'async-uploader[azure]'" in done.stdout
