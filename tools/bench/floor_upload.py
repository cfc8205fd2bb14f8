"""The floor of our design: our walker, reader and lean PUT per file, and none of the pipeline around them.

Not an uploader anyone should use. It answers one question about the ``small`` set: how much of async-uploader's
client CPU is the irreducible work of a small file in Python (walk, stat, read, CRC32, sign, one HTTP request,
parse the answer) and how much is the pipeline that makes the tool safe to use (progress and events, the state
file, the destination index and its skips, retries, the adaptive concurrency limit, the byte budget, change
detection, the check of the checksum the store answers with, the preflight). It shares the tool's own code for
the first part, so that the difference between the two rows of the table is the second. Run by the benchmark
with our venv's interpreter (the ``floor`` tool).

Files larger than ``SMALL_FILE_MAX_BYTES`` are refused: the floor has no multipart upload.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from async_uploader.cli.process import run_event_loop
from async_uploader.engine.plan import object_metadata
from async_uploader.providers.s3.bucket import BucketClient
from async_uploader.providers.s3.credentials import BotocoreCredentials
from async_uploader.providers.s3.http import HttpClient
from async_uploader.providers.s3.wire import BucketEndpoint
from async_uploader.source.checksum import Algorithm
from async_uploader.source.reader import CACHED_READ_MAX_BYTES, SMALL_FILE_MAX_BYTES, FileReader
from async_uploader.source.scan import FileEntry, walk_tree_batches

QUEUE_SLOTS = 256


class _EnvironmentKeys:
    """Static keys from the standard variables, read as the tool reads them when the environment settles its
    credentials (no botocore session); wrapped, as there, in ``BotocoreCredentials`` for every request."""

    def __init__(self) -> None:
        self.access_key = os.environ["AWS_ACCESS_KEY_ID"]
        self.secret_key = os.environ["AWS_SECRET_ACCESS_KEY"]
        self.token = os.environ.get("AWS_SESSION_TOKEN")

    def get_frozen_credentials(self) -> _EnvironmentKeys:
        return self


async def upload(source: Path, bucket: str, prefix: str, endpoint_url: str, concurrency: int) -> int:
    """Every file below ``source`` to ``prefix/<relative path>``; the number of files sent."""
    http = HttpClient(max_connections=concurrency, connect_timeout_s=10.0, read_timeout_s=60.0)
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    credentials = BotocoreCredentials(_EnvironmentKeys())
    store = BucketClient(http, BucketEndpoint.path_style(endpoint_url, bucket, region), credentials)
    reader = FileReader(cached_read_max_bytes=CACHED_READ_MAX_BYTES)
    queue: asyncio.Queue[FileEntry | None] = asyncio.Queue(QUEUE_SLOTS)
    sent = 0

    async def walk() -> None:
        async for batch in walk_tree_batches(source):
            for item in batch:
                if not isinstance(item, FileEntry):
                    raise SystemExit(f"floor_upload: {item.rel}: {item.reason}")
                if item.size > SMALL_FILE_MAX_BYTES:
                    raise SystemExit(f"floor_upload: {item.rel}: larger than {SMALL_FILE_MAX_BYTES} bytes")
                await queue.put(item)
        for _ in range(concurrency):
            await queue.put(None)

    async def work() -> None:
        nonlocal sent
        while (entry := await queue.get()) is not None:
            chunk = await reader.read(entry.path, size=entry.size, mtime_ns=entry.mtime_ns, algorithm=Algorithm.CRC32)
            metadata = object_metadata(entry.size, entry.mtime_ns, entry.mode)
            await store.put(f"{prefix}/{entry.rel}", chunk.body, checksum=chunk.checksum, metadata=metadata)
            sent += 1

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(walk())
            for _ in range(concurrency):
                group.create_task(work())
    finally:
        reader.close()
        await http.close()
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", type=Path)
    parser.add_argument("bucket")
    parser.add_argument("prefix")
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    # The CLI's own loop and garbage-collector settings, so that neither is a difference between the two.
    count = run_event_loop(
        upload(args.source, args.bucket, args.prefix.strip("/"), args.endpoint_url, args.concurrency)
    )
    print(f"uploaded {count} files", file=sys.stderr)


if __name__ == "__main__":
    main()
