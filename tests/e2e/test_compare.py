"""``--compare size`` against a real SeaweedFS: a tree another tool wrote (objects without our metadata) is adopted
from the listing alone, with no request per file; the default ``mtime`` uploads it again."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import S3Transfer, TransferConfig

import async_uploader
from async_uploader.config import MIB
from async_uploader.events import Event, FileDone, FileSkipped
from tests.e2e.conftest import S3Backend, new_bucket, new_container, read_bucket
from tests.e2e.test_faults import MULTIPART, uploader
from tests.e2e.test_incremental import operation
from tests.e2e.test_upload import assert_bucket_holds
from tests.fault_proxy import FaultProxy
from tests.trees import make_tree, random_bytes, read_tree
from tools.azurite import BlobServer
from tools.seaweedfs import S3Server


def write_in_parts(
    client: Any, bucket: str, key: str, data: bytes, part_size: int, *, full_crc32: bool = False
) -> None:
    """A multipart upload in parts of ``part_size``; with ``full_crc32``, carrying the whole object's CRC32 (as
    botocore's FULL_OBJECT checksums, which aws-cli and rclone send)."""
    crc = {"ChecksumAlgorithm": "CRC32"} if full_crc32 else {}
    create = {**crc, "ChecksumType": "FULL_OBJECT"} if full_crc32 else {}
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    parts = []
    for number, offset in enumerate(range(0, len(data), part_size), start=1):
        body = data[offset : offset + part_size]
        answer = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body, **crc)
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        if full_crc32:
            parts[-1]["ChecksumCRC32"] = answer["ChecksumCRC32"]
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})


async def test_compare_size_adopts_a_tree_another_tool_wrote_and_mtime_uploads_it_again(
    tmp_path: Path, bucket: str, s3_server: S3Server, s3_client: Any
) -> None:
    source = tmp_path / "src"
    files = {f"d{i % 3}/f{i}.txt": f"file {i}".encode() for i in range(30)}
    files.update({"top.txt": b"top", "empty": b"", "big.bin": random_bytes(11 * MIB, seed=2)})
    make_tree(source, files)
    # As `aws s3 sync` would: no metadata of ours, and its own part size for the large file (an ETag ending -2).
    for rel, data in files.items():
        if rel != "big.bin":
            s3_client.put_object(Bucket=bucket, Key=f"site/{rel}", Body=data)
    write_in_parts(s3_client, bucket, "site/big.bin", files["big.bin"], 8 * MIB)
    assert s3_client.head_object(Bucket=bucket, Key="site/big.bin")["ETag"].endswith('-2"')
    options: dict[str, Any] = {**MULTIPART, "state_file": tmp_path / "state.sqlite3"}
    events: list[Event] = []

    async with FaultProxy(s3_server.endpoint_url) as proxy, uploader(s3_server, proxy.url) as up:
        adopted = await up.upload(source, f"s3://{bucket}/site", compare="size", on_event=events.append, **options)
        sent = Counter(operation(line) for line in proxy.request_lines)

        again = await up.upload(source, f"s3://{bucket}/site", **options)

    assert (adopted.uploaded, adopted.skipped, adopted.failed) == (0, len(files), 0)
    assert {e.path: e.reason for e in events if isinstance(e, FileSkipped)} == dict.fromkeys(files, "unchanged")
    # The bucket check, the listings, the open multipart uploads: no HEAD or GET of any object, no write.
    assert set(sent) == {"HeadBucket", "ListObjectsV2", "ListMultipartUploads"}
    assert (again.uploaded, again.skipped, again.failed) == (len(files), 0, 0)
    assert s3_client.head_object(Bucket=bucket, Key="site/top.txt")["Metadata"]["size"] == "3"
    assert_bucket_holds(s3_client, bucket, "site/", source)


def object_requests(lines: list[str]) -> list[str]:
    """The HEADs and GETs of object keys among a front's request lines (listings are GETs of the bucket)."""
    return [line for line in lines if operation(line) in {"HeadObject", "GET object"}]


def rewrite_mtimes(root: Path, offset_s: int = 1000) -> None:
    """As a fresh `git checkout` does: every file gets a new mtime, its content unchanged."""
    for path in root.rglob("*"):
        if path.is_file():
            st = path.stat()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + offset_s * 1_000_000_000))


def change_content(path: Path) -> None:
    """Same size, other bytes: only the content can tell."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def compared_by_path(events: list[Event]) -> dict[str, tuple[str, str | None]]:
    return {
        e.path: ("skipped" if isinstance(e, FileSkipped) else "uploaded", e.compared)
        for e in events
        if isinstance(e, FileSkipped | FileDone)
    }


async def test_compare_checksum_uploads_exactly_the_changed_files_of_a_fresh_checkout_from_the_listing(
    tmp_path: Path, s3_backend: S3Backend
) -> None:
    """A CI runner's checkout: every mtime new, no state file, 3 files changed (one multipart), same sizes. The
    listed ETags decide, single put and multipart alike: exactly 3 uploads, and no HEAD or GET of any object but
    the HEAD that checks the changed multipart file after its completion, as any multipart upload does."""
    source = tmp_path / "src"
    files = {f"d{i % 3}/f{i}.txt": f"file {i}".encode() * (i + 1) for i in range(12)}
    files.update({"empty": b"", "big.bin": random_bytes(6 * MIB, seed=4), "big2.bin": random_bytes(6 * MIB, seed=5)})
    make_tree(source, files)
    server, bucket = s3_backend.server, s3_backend.bucket
    events: list[Event] = []

    async with FaultProxy(server.endpoint_url) as proxy, uploader(server, proxy.url) as up:
        first = await up.upload(source, f"s3://{bucket}/site", state_file=tmp_path / "ci1.sqlite3", **MULTIPART)
        assert (first.uploaded, first.failed) == (len(files), 0)
        rewrite_mtimes(source)
        for rel in ("d0/f0.txt", "d1/f4.txt", "big.bin"):
            change_content(source / rel)
        proxy.request_lines.clear()

        again = await up.upload(
            source,
            f"s3://{bucket}/site",
            compare="checksum",
            state_file=tmp_path / "ci2.sqlite3",  # a fresh runner remembers nothing
            on_event=events.append,
            **MULTIPART,
        )
        sent = list(proxy.request_lines)

    assert (again.uploaded, again.skipped, again.failed) == (3, len(files) - 3, 0)
    assert again.compared == {"md5": len(files) - 2, "multipart-md5": 2}
    compared = compared_by_path(events)
    assert {rel for rel, (status, _) in compared.items() if status == "uploaded"} == {
        "d0/f0.txt",
        "d1/f4.txt",
        "big.bin",
    }
    assert compared["big.bin"] == ("uploaded", "multipart-md5")
    assert compared["d0/f0.txt"] == ("uploaded", "md5")
    assert compared["big2.bin"] == ("skipped", "multipart-md5")
    assert compared["d2/f2.txt"] == compared["empty"] == ("skipped", "md5")
    assert [operation(line) for line in object_requests(sent)] == ["HeadObject"]
    assert "/site/big.bin" in object_requests(sent)[0]
    # The bytes are the tree's; a skipped object keeps the mtime metadata of the upload that wrote it.
    stored = read_bucket(s3_backend.client, bucket, "site/")
    assert {key: body for key, (body, _) in stored.items()} == {
        f"site/{rel}": data for rel, data in read_tree(source).items()
    }


async def test_compare_checksum_skips_an_unchanged_file_by_its_remembered_stat_without_reading_it(
    tmp_path: Path, s3_server: S3Server, bucket: str
) -> None:
    """Size, mtime and listed ETag as this machine remembers them: the file is not read (git's index). Shown by
    an edit that keeps the size and puts the mtime back, which only reading the file would see."""
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"a", "b.txt": b"bb"})
    state = tmp_path / "state.sqlite3"
    events: list[Event] = []
    async with uploader(s3_server) as up:
        await up.upload(source, f"s3://{bucket}/p", compare="checksum", state_file=state)
        st = (source / "a.txt").stat()
        (source / "a.txt").write_bytes(b"z")
        os.utime(source / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
        again = await up.upload(
            source, f"s3://{bucket}/p", compare="checksum", state_file=state, on_event=events.append
        )

    assert (again.uploaded, again.skipped, again.failed) == (0, 2, 0)
    assert compared_by_path(events) == {"a.txt": ("skipped", "stat"), "b.txt": ("skipped", "stat")}


def write_with_boto3(client: Any, bucket: str, key: str, path: Path, part_size: int) -> None:
    """As `aws s3 sync` does: boto3's transfer manager, its own multipart threshold and part size, no metadata of
    ours."""
    config = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size, use_threads=False)
    S3Transfer(client, config).upload_file(str(path), bucket, key)


async def test_compare_checksum_adopts_a_tree_boto3_wrote_with_other_part_sizes(
    tmp_path: Path, s3_backend: S3Backend
) -> None:
    """boto3 with 5 MiB and 16 MiB parts, ours 8 MiB: the multipart ETags are recomputed for the part size that
    gives their part count, all in one read of each file; nothing is uploaded, no object is read or HEADed."""
    source = tmp_path / "src"
    files = {f"f{i}.txt": f"small {i}".encode() for i in range(6)}
    files.update({"b5.bin": random_bytes(13 * MIB, seed=6), "b16.bin": random_bytes(17 * MIB, seed=7)})
    make_tree(source, files)
    server, client, bucket = s3_backend.server, s3_backend.client, s3_backend.bucket
    for rel in files:
        part_size = {"b5.bin": 5 * MIB, "b16.bin": 16 * MIB}.get(rel, 8 * MIB)
        write_with_boto3(client, bucket, f"pub/{rel}", source / rel, part_size)
    assert client.head_object(Bucket=bucket, Key="pub/b5.bin")["ETag"].endswith('-3"')
    assert client.head_object(Bucket=bucket, Key="pub/b16.bin")["ETag"].endswith('-2"')
    events: list[Event] = []

    async with FaultProxy(server.endpoint_url) as proxy, uploader(server, proxy.url) as up:
        adopted = await up.upload(
            source,
            f"s3://{bucket}/pub",
            compare="checksum",
            part_size="8MiB",
            state_file=tmp_path / "state.sqlite3",
            on_event=events.append,
        )
        sent = list(proxy.request_lines)

    assert (adopted.uploaded, adopted.skipped, adopted.failed) == (0, len(files), 0)
    compared = compared_by_path(events)
    assert compared["b5.bin"] == compared["b16.bin"] == ("skipped", "multipart-md5")
    assert compared["f0.txt"] == ("skipped", "md5")
    assert object_requests(sent) == []


async def test_compare_checksum_under_sse_kms_uses_the_state_file_then_one_head_with_the_stored_crc(
    tmp_path: Path, moto_server: S3Server, moto_client: Any
) -> None:
    """Under SSE-KMS an ETag is no MD5. The state file's remembered checksum decides where its ETag is the listed
    one (no request); a runner without state asks one HEAD per file, in checksum mode, for the CRC the upload sent
    (SeaweedFS has no KMS; moto keeps the FULL_OBJECT CRC of a multipart upload, but not the checksum a single put
    sent as a value, which S3 keeps: those files cannot be compared there, and go up again)."""
    bucket = new_bucket(moto_client)
    source = tmp_path / "src"
    files = {f"f{i}.txt": f"kms {i}".encode() for i in range(4)}
    files["big.bin"] = random_bytes(6 * MIB, seed=8)
    make_tree(source, files)
    state = tmp_path / "state.sqlite3"
    options: dict[str, Any] = {**MULTIPART, "compare": "checksum", "sse": "aws:kms"}
    with_state: list[Event] = []
    without_state: list[Event] = []

    async with FaultProxy(moto_server.endpoint_url) as proxy, uploader(moto_server, proxy.url) as up:
        first = await up.upload(source, f"s3://{bucket}/k", state_file=state, **options)
        assert (first.uploaded, first.failed) == (len(files), 0)
        rewrite_mtimes(source)
        change_content(source / "f1.txt")
        proxy.request_lines.clear()
        remembered = await up.upload(
            source, f"s3://{bucket}/k", state_file=state, on_event=with_state.append, **options
        )
        by_state = list(proxy.request_lines)
        rewrite_mtimes(source)
        proxy.request_lines.clear()
        fresh = await up.upload(
            source, f"s3://{bucket}/k", state_file=tmp_path / "fresh.sqlite3", on_event=without_state.append, **options
        )
        by_head = list(proxy.request_lines)

    assert (remembered.uploaded, remembered.skipped) == (1, len(files) - 1)
    assert compared_by_path(with_state) == {
        **dict.fromkeys(files, ("skipped", "state-checksum")),
        "f1.txt": ("uploaded", "state-checksum"),
    }
    assert object_requests(by_state) == []
    assert (fresh.uploaded, fresh.skipped) == (len(files) - 1, 1)
    assert compared_by_path(without_state) == {
        **dict.fromkeys(files, ("uploaded", "no-checksum")),
        "big.bin": ("skipped", "stored-checksum"),
    }
    assert Counter(operation(line) for line in object_requests(by_head)) == {"HeadObject": len(files)}


async def test_compare_checksum_asks_the_stored_crc_of_a_multipart_object_no_tried_part_size_wrote(
    tmp_path: Path, s3_server: S3Server, s3_client: Any, bucket: str
) -> None:
    """21 MiB in 6 MiB parts: 4 parts, which none of the part sizes tried gives. One HEAD asks the whole-object
    CRC the writer sent, rather than sending 21 MiB again."""
    source = tmp_path / "src"
    make_tree(source, {"odd.bin": random_bytes(21 * MIB, seed=9)})
    write_in_parts(s3_client, bucket, "o/odd.bin", (source / "odd.bin").read_bytes(), 6 * MIB, full_crc32=True)
    assert s3_client.head_object(Bucket=bucket, Key="o/odd.bin")["ETag"].endswith('-4"')
    events: list[Event] = []

    async with FaultProxy(s3_server.endpoint_url) as proxy, uploader(s3_server, proxy.url) as up:
        result = await up.upload(source, f"s3://{bucket}/o", compare="checksum", on_event=events.append)
        sent = list(proxy.request_lines)

    assert compared_by_path(events) == {"odd.bin": ("skipped", "stored-checksum")}
    assert result.uploaded == 0
    assert [operation(line) for line in object_requests(sent)] == ["HeadObject"]


async def test_compare_checksum_on_azure_uses_the_listed_content_md5_then_the_state_file(
    tmp_path: Path, azurite: BlobServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blob stored by one put is listed with its Content-MD5: that answers. A blob committed from blocks has none,
    and Azure keeps no CRC: the state file's checksum answers for this machine's uploads; without it, uploaded."""
    for name, value in azurite.env().items():
        monkeypatch.setenv(name, value)
    container = new_container(azurite)
    source = tmp_path / "src"
    files = {"a.txt": b"alpha", "d/b.txt": b"beta", "big.bin": random_bytes(6 * MIB, seed=10)}
    make_tree(source, files)
    state = tmp_path / "state.sqlite3"
    options: dict[str, Any] = {**MULTIPART, "compare": "checksum"}
    with_state: list[Event] = []
    without_state: list[Event] = []

    first = await async_uploader.upload(source, f"az://{container}/p", state_file=state, **options)
    assert (first.uploaded, first.failed) == (3, 0)
    rewrite_mtimes(source)
    change_content(source / "a.txt")
    await async_uploader.upload(source, f"az://{container}/p", state_file=state, on_event=with_state.append, **options)
    rewrite_mtimes(source)
    fresh = tmp_path / "fresh.sqlite3"
    await async_uploader.upload(
        source, f"az://{container}/p", state_file=fresh, on_event=without_state.append, **options
    )

    assert compared_by_path(with_state) == {
        "a.txt": ("uploaded", "md5"),
        "d/b.txt": ("skipped", "md5"),
        "big.bin": ("skipped", "state-checksum"),
    }
    assert compared_by_path(without_state) == {
        "a.txt": ("skipped", "md5"),
        "d/b.txt": ("skipped", "md5"),
        "big.bin": ("uploaded", "no-checksum"),
    }
