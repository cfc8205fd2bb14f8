"""The lean data path against a real SeaweedFS (and moto, for awkward names and multipart), next to the aiobotocore
path: same objects, same errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

import aiobotocore.session
import pytest

import async_uploader
from async_uploader.config import MIB
from async_uploader.errors import StoreError, VerificationError
from async_uploader.events import Event, FileDone
from async_uploader.providers.base import ObjectStore
from async_uploader.source.checksum import Algorithm, checksum_of
from tests.e2e.conftest import S3Backend
from tests.e2e.test_faults import RotatingCredentials, rotating_session
from tests.e2e.test_upload import assert_bucket_holds, run_cli
from tests.providers.s3.stores import open_store
from tests.trees import make_tree, random_bytes
from tools.seaweedfs import S3Server

AWKWARD_NAMES = [
    "plain.txt",
    "spaces  in  name/a b.txt",
    "ünïcödé/日本語 ファイル/emoji 🎉.txt",
    "odd/+plus%25percent~tilde=eq&amp;semi?q#hash",
    'quotes/it\'s "quoted" (paren) [brackets] {braces}!*@,$',
    "trailing dot./x.",
    "x" * 200 + "/" + "y" * 200,
]


@asynccontextmanager
async def s3_store(
    server: S3Server, bucket: str, *, lean: bool, secret_key: str | None = None, session: Any = None
) -> AsyncIterator[ObjectStore]:
    """The store of ``bucket`` over the application's ``session`` (one with the server's keys unless given)."""
    if session is None:
        session = _session(server, secret_key)
    async with open_store(
        bucket, endpoint_url=server.endpoint_url, region=server.region, session=session, lean=lean
    ) as store:
        yield store


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "aiobotocore"])
async def test_awkward_names_and_multipart_land_byte_for_byte(
    tmp_path: Path, s3_backend: S3Backend, lean: bool
) -> None:
    """On SeaweedFS and on moto, on either path; each file says how it was verified: by the checksum SeaweedFS
    answers, by size only on moto, which answers none."""
    make_tree(tmp_path, {name: f"body of {name}".encode() for name in AWKWARD_NAMES})
    make_tree(tmp_path, {"big/ünï code+%.bin": random_bytes(10 * MIB, seed=7), "empty": b""})
    server = s3_backend.server
    events: list[Event] = []
    async with async_uploader.Uploader(
        endpoint_url=server.endpoint_url, region=server.region, session=_session(server), lean=lean
    ) as up:
        result = await up.upload(
            tmp_path, s3_backend.url("p q+"), multipart_threshold="5MiB", part_size="5MiB", on_event=events.append
        )
    assert (result.uploaded, result.failed) == (len(AWKWARD_NAMES) + 2, 0), result.failures
    assert_bucket_holds(s3_backend.client, s3_backend.bucket, "p q+/", tmp_path)
    done = {e.path: e for e in events if isinstance(e, FileDone)}
    assert done["big/ünï code+%.bin"].parts == 2
    assert {e.verified for e in done.values()} == {s3_backend.verified}
    assert result.checked_by_size == (0 if s3_backend.returns_checksums else len(done))


def imported_modules(importtime_stderr: str) -> set[str]:
    """The modules a ``python -X importtime`` run imported, from what it wrote to stderr."""
    return {line.rpartition("|")[2].strip() for line in importtime_stderr.splitlines() if "import time:" in line}


def _session(server: S3Server, secret_key: str | None = None) -> Any:
    session = aiobotocore.session.AioSession()
    session.set_credentials(server.access_key, secret_key or server.secret_key)
    return session


def sent_by_botocore(session: Any) -> list[str]:
    """The S3 operations botocore sends from now on, for every client of ``session``."""
    sent: list[str] = []
    session.register("before-send.s3", lambda event_name, **_: sent.append(event_name.rpartition(".")[2]))
    return sent


async def test_the_lean_path_is_the_one_taken(bucket: str, s3_server: S3Server, s3_client: Any) -> None:
    session = _session(s3_server)
    sent = sent_by_botocore(session)
    async with s3_store(s3_server, bucket, lean=True, session=session) as store:
        await store.put_object("k", BytesIO(b"v"), checksum=checksum_of(Algorithm.CRC32, b"v"), metadata={"size": "1"})
    assert "PutObject" not in sent
    assert s3_client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "aiobotocore"])
async def test_a_wrong_checksum_is_refused_as_a_verification_error(
    bucket: str, s3_server: S3Server, s3_client: Any, lean: bool
) -> None:
    async with s3_store(s3_server, bucket, lean=lean) as store:
        with pytest.raises(VerificationError, match="BadDigest"):
            await store.put_object(
                "bad", BytesIO(b"body"), checksum=checksum_of(Algorithm.CRC32, b"other"), metadata={}
            )
        upload_id = await store.create_multipart("bad-part", metadata={}, checksum=Algorithm.CRC32, full_object=False)
        with pytest.raises(VerificationError):
            await store.upload_part(
                "bad-part", upload_id, 1, BytesIO(b"body"), checksum=checksum_of(Algorithm.CRC32, b"other")
            )
        await store.abort_multipart("bad-part", upload_id)
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


async def test_bad_credentials_fail_a_body_as_the_aiobotocore_path_does(bucket: str, s3_server: S3Server) -> None:
    messages = []
    for lean in (True, False):
        async with s3_store(s3_server, bucket, lean=lean, secret_key="not-the-secret-key") as store:
            with pytest.raises(StoreError) as raised:
                await store.put_object("k", BytesIO(b"v"), checksum=checksum_of(Algorithm.CRC32, b"v"), metadata={})
            messages.append((str(raised.value), raised.value.retryable, type(raised.value)))
            upload_id = "no-such-upload"
            with pytest.raises(StoreError) as raised:
                await store.upload_part("k", upload_id, 1, BytesIO(b"v"), checksum=checksum_of(Algorithm.CRC32, b"v"))
            messages.append((str(raised.value), raised.value.retryable, type(raised.value)))
    assert messages[:2] == messages[2:]
    assert "credentials rejected (SignatureDoesNotMatch" in messages[0][0]


async def test_credentials_are_read_again_for_every_request(bucket: str, s3_server: S3Server, s3_client: Any) -> None:
    """Refreshable credentials: once they rotate (here to a key the server does not know), the very next body is
    signed with the new key; nothing was cached from the first."""
    rotation = RotatingCredentials((s3_server.access_key, s3_server.secret_key), ("UNKNOWNKEY0000000000", "z" * 40))
    session = rotating_session(rotation)
    sent = sent_by_botocore(session)
    async with s3_store(s3_server, bucket, lean=True, session=session) as store:
        await store.put_object("before", BytesIO(b"1"), checksum=checksum_of(Algorithm.CRC32, b"1"), metadata={})
        assert "PutObject" not in sent  # the lean path's, signed with the credentials botocore holds
        rotation.expire_soon()
        with pytest.raises(StoreError, match="credentials rejected"):
            await store.put_object("after", BytesIO(b"2"), checksum=checksum_of(Algorithm.CRC32, b"2"), metadata={})
    assert rotation.refreshes == 1
    assert [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]] == ["before"]


@pytest.mark.parametrize("lean", ["off", "on"])
def test_cli_parts_read_into_reused_buffers_land_byte_for_byte_on_either_path(
    lean: str, tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    """``--lean off`` sends through aiobotocore, whose aiohttp may still hold a part's buffer when the part is
    done: such a buffer must never be read into again. A 10 MiB budget and 5 MiB parts make every later part
    of the 21 MiB file a candidate for a reused buffer."""
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"a", "ü/b c.txt": b"b", "big.bin": random_bytes(21 * MIB, seed=3)})
    result = run_cli(
        server_env, str(source), f"s3://{bucket}/{lean}", "--endpoint-url", s3_server.endpoint_url,
        "--lean", lean, "--multipart-threshold", "5MiB", "--part-size", "5MiB", "--max-memory", "10MiB",
        "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert_bucket_holds(s3_client, bucket, f"{lean}/", tmp_path / "src")


@pytest.mark.parametrize("event_loop", ["asyncio", "default"])
def test_cli_runs_on_either_event_loop(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any, event_loop: str
) -> None:
    """uvloop when installed (the default), asyncio's own loop when ASYNC_UPLOADER_EVENT_LOOP=asyncio."""
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"a", "sub/ü b.txt": b"b", "big.bin": random_bytes(6 * MIB, seed=4)})
    env = dict(server_env)
    if event_loop == "asyncio":
        env["ASYNC_UPLOADER_EVENT_LOOP"] = "asyncio"
    result = run_cli(
        env, str(source), f"s3://{bucket}/{event_loop}", "--endpoint-url", s3_server.endpoint_url,
        "--multipart-threshold", "5MiB", "--part-size", "5MiB", "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert_bucket_holds(s3_client, bucket, f"{event_loop}/", source)


async def test_uploads_a_create_botocore_tried_twice_may_have_left_are_swept(
    bucket: str, s3_server: S3Server, s3_client: Any
) -> None:
    """botocore tries a create again when the first try's answer was lost, though its upload may exist: a multipart
    create on the aiobotocore path aborts what the first try left, and keeps the second's."""
    lose = {"big"}

    def lose_first_answer(request_dict: dict[str, Any], **_: Any) -> int | None:
        key = request_dict["url_path"].partition("?")[0].rsplit("/", 1)[-1]
        if key in lose:
            lose.discard(key)
            return 0  # try again at once, as after an answer that never came
        return None  # botocore decides

    session = _session(s3_server)
    session.register("needs-retry.s3.CreateMultipartUpload", lose_first_answer)
    async with s3_store(s3_server, bucket, lean=False, session=session) as store:
        upload_id = await store.create_multipart("big", metadata={}, checksum=Algorithm.CRC32, full_object=False)
    assert lose == set()
    uploads = s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(upload["Key"], upload["UploadId"]) for upload in uploads] == [("big", upload_id)]
    s3_client.abort_multipart_upload(Bucket=bucket, Key="big", UploadId=upload_id)


def test_an_upload_never_imports_aiobotocore(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    """Bucket check, listings, write probe, bodies and a multipart upload's create and complete all on the lean
    path: aiobotocore, aiohttp and botocore's clients (~0.4 s of CPU before a large file's first part could
    leave) are for resuming an upload (ListParts) and for ``--lean off`` only."""
    source = tmp_path / "src"
    files = {f"d{i % 3}/f{i}.txt": f"file {i}".encode() for i in range(40)}
    files["big.bin"] = random_bytes(11 * MIB, seed=7)
    make_tree(source, files)
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "async_uploader", "upload", str(source), f"s3://{bucket}/small",
         "--endpoint-url", s3_server.endpoint_url, "--no-progress", "--part-size", "5MiB",
         "--multipart-threshold", "5MiB"],
        env=server_env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    imported = imported_modules(result.stderr)
    assert "async_uploader.providers.s3.store" in imported
    assert not {name for name in imported if name.split(".")[0] in {"aiobotocore", "aiohttp"}}
    assert "botocore.session" not in imported  # the environment alone settled the credentials
    assert_bucket_holds(s3_client, bucket, "small/", source)
    head = s3_client.head_object(Bucket=bucket, Key="small/big.bin", ChecksumMode="ENABLED")
    assert head["ContentLength"] == 11 * MIB
    assert head["Metadata"]["size"] == str(11 * MIB)
