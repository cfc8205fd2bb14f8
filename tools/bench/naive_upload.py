"""The baseline a Python user writes first: asyncio over a thread pool, one boto3 ``upload_file`` per file.

Every file becomes a future up front, so memory grows with the file count; that is the point of the
baseline, not a bug to fix here. Run with the peers venv's interpreter (boto3 is not one of our
dependencies), so it is a standalone script. Credentials come from the standard AWS environment variables.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3  # type: ignore[import-untyped,import-not-found,unused-ignore]
from botocore.config import Config


def walk(source: Path) -> list[tuple[Path, str]]:
    """Every regular file below ``source`` with its key relative to it."""
    found: list[tuple[Path, str]] = []
    for dirpath, _dirs, names in os.walk(source):
        for name in names:
            path = Path(dirpath, name)
            if path.is_file():
                found.append((path, path.relative_to(source).as_posix()))
    return found


async def upload(source: Path, bucket: str, prefix: str, endpoint_url: str, threads: int) -> int:
    # One client shared by all threads (clients are thread-safe), its pool sized to the threads: the
    # default of 10 connections would make the baseline slower for a reason nobody would keep.
    client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, config=Config(max_pool_connections=threads)
    )
    loop = asyncio.get_running_loop()
    files = walk(source)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        await asyncio.gather(
            *(
                loop.run_in_executor(pool, client.upload_file, str(path), bucket, f"{prefix}/{key}")
                for path, key in files
            )
        )
    return len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", type=Path)
    parser.add_argument("bucket")
    parser.add_argument("prefix")
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--threads", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(upload(args.source, args.bucket, args.prefix, args.endpoint_url, args.threads))


if __name__ == "__main__":
    main()
