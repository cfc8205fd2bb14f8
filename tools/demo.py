"""``make demo``: start a local S3 server, make a sample tree, upload it with the live display, show the result.

Runs the real CLI in a subprocess attached to this terminal, exactly as a user would type it, so what the demo
shows is what users get. Everything it starts it stops; everything it writes is under a temporary directory.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import botocore.session

from tools.seaweedfs import S3Server, running_seaweedfs

MIB = 1024 * 1024
SMALL_FILES = 3000
LARGE_FILES = {"media/video-a.bin": 48 * MIB, "media/dataset-b.bin": 80 * MIB}
BUCKET = "demo-bucket"
PREFIX = "sample"


def make_sample_tree(root: Path, seed: int = 42) -> tuple[int, int]:
    """A deterministic tree: thousands of small files in nested folders, plus a couple of multipart-sized ones."""
    rng = random.Random(seed)
    total = 0
    for i in range(SMALL_FILES):
        path = root / f"project-{i % 5}" / f"module-{i % 37}" / f"file-{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        size = rng.randint(0, 16 * 1024)
        path.write_bytes(rng.randbytes(size))
        total += size
    for rel, size in LARGE_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            for _ in range(size // MIB):
                f.write(rng.randbytes(MIB))
        total += size
    (root / ".hidden-config").write_text("hidden files are uploaded too\n")
    (root / "empty-file").touch()
    (root / "Unicode names, café 日本").mkdir()
    (root / "Unicode names, café 日本" / "naïve résumé.txt").write_text("names are kept byte for byte\n")
    return SMALL_FILES + len(LARGE_FILES) + 3, total + 30 + 29


def plain_client(server: S3Server) -> Any:
    """A synchronous botocore client for the demo's own set-up and checks, apart from the tool under show."""
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
    )


def show_result(server: S3Server, expected_files: int) -> bool:
    client = plain_client(server)
    count = size = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{PREFIX}/"):
        for item in page.get("Contents", ()):
            count += 1
            size += item["Size"]
    print(f"\nThe bucket s3://{BUCKET}/{PREFIX}/ now holds {count} objects, {size / MIB:.1f} MiB.")
    for key in (f"{PREFIX}/media/dataset-b.bin", f"{PREFIX}/project-0/module-0/file-00000.txt"):
        head = client.head_object(Bucket=BUCKET, Key=key)
        print(f"  {key}: ETag {head['ETag']}, metadata {head['Metadata']}")
    ok = count == expected_files
    print("Demo OK: every file is in the bucket." if ok else f"Demo FAILED: expected {expected_files} objects.")
    return ok


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="async-uploader-demo-") as work:
        source = Path(work) / "sample-tree"
        print("Making a sample tree...", flush=True)
        files, total = make_sample_tree(source)
        print(f"  {files} files, {total / MIB:.1f} MiB in {source}")
        print("Starting a local SeaweedFS S3 server...", flush=True)
        with running_seaweedfs(Path(work) / "seaweedfs") as server:
            print(f"  endpoint {server.endpoint_url}, private bucket {BUCKET!r}")
            plain_client(server).create_bucket(Bucket=BUCKET)
            command = [
                sys.executable, "-m", "async_uploader", "upload", str(source), f"s3://{BUCKET}/{PREFIX}",
                "--endpoint-url", server.endpoint_url,
            ]  # fmt: skip
            print(f"\n$ async-uploader upload {source} s3://{BUCKET}/{PREFIX} --endpoint-url {server.endpoint_url}")
            # The state file of this throw-away server stays in the demo's folder, not in the user's cache.
            env = {**os.environ, **server.env(), "XDG_CACHE_HOME": str(Path(work) / "cache")}
            code = subprocess.run(command, env=env, check=False).returncode
            if code != 0:
                print(f"Demo FAILED: async-uploader exited with {code}")
                return code
            if not show_result(server, files):
                return 1
            print("\nThe same command again: nothing has changed, so nothing is sent but the listing.")
            print(f"$ async-uploader upload {source} s3://{BUCKET}/{PREFIX} --endpoint-url {server.endpoint_url}")
            again = subprocess.run(command, env=env, check=False).returncode
            if again != 0:
                print(f"Demo FAILED: the re-run exited with {again}")
            return again


if __name__ == "__main__":
    sys.exit(main())
