"""``--compare size`` against a real SeaweedFS: a tree another tool wrote (objects without our metadata) is adopted
from the listing alone, with no request per file; the default ``mtime`` uploads it again."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from async_uploader.config import MIB
from async_uploader.events import Event, FileSkipped
from tests.e2e.test_faults import MULTIPART, uploader
from tests.e2e.test_incremental import operation
from tests.e2e.test_upload import assert_bucket_holds
from tests.fault_proxy import FaultProxy
from tests.trees import make_tree, random_bytes
from tools.seaweedfs import S3Server


def write_in_parts(client: Any, bucket: str, key: str, data: bytes, part_size: int) -> None:
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for number, offset in enumerate(range(0, len(data), part_size), start=1):
        body = data[offset : offset + part_size]
        etag = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
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
