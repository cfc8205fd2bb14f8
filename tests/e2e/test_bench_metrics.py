"""The re-publish benchmark counts requests from SeaweedFS's own metrics: check the names and classes it relies on
against the real server, so a SeaweedFS upgrade that renames them fails here, not silently in a benchmark."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from tools.bench.server_metrics import read_bucket
from tools.seaweedfs import S3Server, running_seaweedfs


@pytest.fixture(scope="module")
def metered_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_seaweedfs(tmp_path_factory.mktemp("seaweedfs-metrics"), metrics=True, stop_timeout_s=0.5) as server:
        yield server


def _client(server: S3Server) -> Any:
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
    )


def test_a_runs_requests_are_counted_by_class_for_its_bucket_only(metered_server: S3Server, tmp_path: Path) -> None:
    assert metered_server.metrics_url is not None
    client = _client(metered_server)
    for name in ("counted", "other"):
        client.create_bucket(Bucket=name)
    before = read_bucket(metered_server.metrics_url, "counted")

    client.put_object(Bucket="counted", Key="a", Body=b"x" * 100)
    client.put_object(Bucket="counted", Key="b", Body=b"y" * 20)
    client.put_object(Bucket="other", Key="a", Body=b"z" * 1000)
    for _ in range(3):
        client.head_object(Bucket="counted", Key="a")
    with pytest.raises(client.exceptions.ClientError):
        client.head_object(Bucket="counted", Key="missing")
    client.get_object(Bucket="counted", Key="b")["Body"].read()
    client.list_objects_v2(Bucket="counted")
    upload = client.create_multipart_upload(Bucket="counted", Key="m")["UploadId"]
    part = client.upload_part(Bucket="counted", Key="m", UploadId=upload, PartNumber=1, Body=b"p" * 7)
    client.complete_multipart_upload(
        Bucket="counted", Key="m", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    )
    client.delete_objects(Bucket="counted", Delete={"Objects": [{"Key": "a"}]})

    delta = read_bucket(metered_server.metrics_url, "counted").minus(before)
    assert delta.requests == {"PUT": 3, "POST": 2, "GET": 1, "HEAD+": 4, "LIST": 1, "DELETE": 1}
    assert delta.errors == 1  # the HEAD of a missing key
    assert delta.bytes_received == 100 + 20 + 7
    assert delta.objects_written == 3
