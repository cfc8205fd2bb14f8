"""Upload a tree with obstore the way a Python user would: walk it, one ``put_async`` per file, a semaphore.

Run by the benchmark with the peers venv's interpreter (obstore is not one of our dependencies), so it is a
standalone script: stdlib plus obstore. Credentials come from the standard AWS environment variables.

It ends with ``os._exit``: on Python 3.11, about one run in five otherwise dies with SIGABRT after every
upload has finished, when a tokio worker thread wakes the closed event loop during interpreter shutdown
and CPython's ``pthread_exit`` of that foreign thread cannot unwind through Rust frames.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import obstore  # type: ignore[import-not-found,unused-ignore]
from obstore.store import S3Store  # type: ignore[import-not-found,unused-ignore]


def walk(source: Path) -> list[tuple[Path, str]]:
    """Every regular file below ``source`` with its key relative to it, listed up front as most scripts do."""
    found: list[tuple[Path, str]] = []
    for dirpath, _dirs, names in os.walk(source):
        for name in names:
            path = Path(dirpath, name)
            if path.is_file():
                found.append((path, path.relative_to(source).as_posix()))
    return found


async def upload(source: Path, bucket: str, prefix: str, endpoint_url: str, concurrency: int) -> int:
    store = S3Store(
        bucket,
        prefix=prefix,
        endpoint=endpoint_url,
        access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        client_options={"allow_http": True},
    )
    limit = asyncio.Semaphore(concurrency)

    async def put_one(path: Path, key: str) -> None:
        async with limit:
            await obstore.put_async(store, key, path)

    files = walk(source)
    async with asyncio.TaskGroup() as group:
        for path, key in files:
            group.create_task(put_one(path, key))
    return len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", type=Path)
    parser.add_argument("bucket")
    parser.add_argument("prefix")
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(upload(args.source, args.bucket, args.prefix, args.endpoint_url, args.concurrency))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter finalization: see the module docstring


if __name__ == "__main__":
    main()
