"""Embedding async-uploader in an asyncio application: one Uploader, several uploads, live events.

    AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... python examples/embed_asyncio.py ./dist s3://bucket/releases/1.0 \\
        [--endpoint-url http://127.0.0.1:8333]
"""

from __future__ import annotations

import argparse
import asyncio

import async_uploader
from async_uploader.events import FileDone, FileFailed, RunFinished


async def main(source: str, destination: str, endpoint_url: str | None) -> int:
    result = None
    async with async_uploader.Uploader(endpoint_url=endpoint_url, concurrency=32) as uploader:
        # The application keeps serving while the upload runs: events arrive as an async iterator.
        async for event in uploader.events(source, destination):
            if isinstance(event, FileDone):
                print(f"stored {event.key} ({event.size} bytes)")
            elif isinstance(event, FileFailed):
                print(f"FAILED {event.path}: {event.reason}")
            elif isinstance(event, RunFinished):
                result = event.result
        # A second run over the same connection pool, with a callback instead of an iterator.
        again = await uploader.upload(source, destination + "-copy", on_event=lambda e: None)
    assert result is not None, "every run ends with RunFinished"
    print(f"{result.uploaded} uploaded, {result.failed} failed; copy: {again.uploaded} uploaded")
    return 0 if result.ok and again.ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("destination")
    parser.add_argument("--endpoint-url")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.source, args.destination, args.endpoint_url)))
