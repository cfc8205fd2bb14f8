"""The same from an anyio application (asyncio backend: aiobotocore is asyncio-only, so trio cannot work).

Shows cancellation too: a deadline cancels the upload, which aborts the multipart uploads in flight.

    python examples/embed_anyio.py ./big-tree s3://bucket/prefix [--endpoint-url URL] [--deadline 30]
"""

from __future__ import annotations

import argparse

import anyio

import async_uploader


async def main(source: str, destination: str, endpoint_url: str | None, deadline_s: float) -> int:
    with anyio.move_on_after(deadline_s) as scope:
        result = await async_uploader.upload(source, destination, endpoint_url=endpoint_url, concurrency=16)
    if scope.cancelled_caught:
        print(f"gave up after {deadline_s} s; nothing half-uploaded is left behind")
        return 1
    print(f"{result.uploaded} files, {result.bytes_uploaded} bytes in {result.elapsed_s:.1f} s")
    return 0 if result.ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("destination")
    parser.add_argument("--endpoint-url")
    parser.add_argument("--deadline", type=float, default=3600.0)
    args = parser.parse_args()
    raise SystemExit(
        anyio.run(main, args.source, args.destination, args.endpoint_url, args.deadline, backend="asyncio")
    )
