"""Bucket bookkeeping around each measured run: create it before, check what landed after, drop it.

A plain synchronous botocore client, deliberately not our own S3 code: the check that a run uploaded every
file must not share a bug with the tool being checked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import botocore.session
from botocore.exceptions import ClientError

from tools.seaweedfs import S3Server

_READ_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Listing:
    """What a paginated listing found under a prefix."""

    objects: int
    total_bytes: int


class BucketKeeper:
    """Creates, lists and deletes the benchmark's buckets on one server."""

    def __init__(self, server: S3Server) -> None:
        self._client: Any = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=server.endpoint_url,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name=server.region,
        )

    def create(self, bucket: str, *, warm_key: str) -> None:
        """Create the bucket and write one object at ``warm_key`` so the server has grown its volumes.

        SeaweedFS makes a bucket's volumes on its first write, which stalls the first requests (0.2 s alone,
        about 1 s under 64 concurrent ones): a one-time cost of a new bucket, not of the tool under test,
        so it is paid here, outside the measurement. ``warm_key`` must lie outside the listed prefix.
        """
        self._client.create_bucket(Bucket=bucket)
        self._client.put_object(Bucket=bucket, Key=warm_key, Body=b"warm-up")

    def list_prefix(self, bucket: str, prefix: str) -> Listing:
        objects = total = 0
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
            for item in page.get("Contents", ()):
                objects += 1
                total += int(item["Size"])
        return Listing(objects, total)

    def object_md5(self, bucket: str, key: str) -> str | None:
        """The MD5 of the object's bytes as downloaded (None if there is no such object): an ETag is not proof."""
        try:
            body = self._client.get_object(Bucket=bucket, Key=key)["Body"]
        except ClientError:
            return None
        digest = hashlib.md5(usedforsecurity=False)
        for chunk in iter(lambda: body.read(_READ_CHUNK_BYTES), b""):
            digest.update(chunk)
        return digest.hexdigest()

    def delete(self, bucket: str) -> str | None:
        """Drop the bucket and its objects to give the disk back; return why not, if the server refused.

        SeaweedFS deletes a non-empty bucket (its collection) in one call, which is what keeps a full run
        of every tool, dataset and repetition within the disk; a server that insists on an empty bucket
        just keeps the data.
        """
        try:
            self._client.delete_bucket(Bucket=bucket)
        except ClientError as err:
            return f"bucket {bucket} not deleted: {err}"
        return None
