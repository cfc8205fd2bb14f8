"""How objects are stored, read back from real servers: Content-Type by extension, header flags and rules,
encryption, storage class, tags, ACL (moto server, AWS-faithful for these headers), Azure's content settings, tier
and metadata (Azurite), and a front that plays a bucket policy denying writes without SSE-KMS."""

from __future__ import annotations

import base64
import http.client
import http.server
import itertools
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import botocore.session
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from async_uploader.config import MIB
from tests.e2e.conftest import new_container
from tests.e2e.test_upload import run_cli
from tests.trees import make_tree, random_bytes
from tools.azurite import BlobServer
from tools.seaweedfs import S3Server

_numbers = itertools.count()
WEB_TREE = {
    "index.html": b"<!doctype html><title>x</title>",
    "assets/app.3f2a.js": b"console.log(1)",
    "assets/app.3f2a.mjs": b"export {}",
    "assets/site.css": b"body{}",
    "assets/logo.svg": b"<svg/>",
    "assets/photo.webp": b"RIFF",
    "assets/font.woff2": b"wOF2",
    "assets/app.wasm": b"\0asm",
    "data/feed.json": b"{}",
    "data/app.js.map": b"{}",
    "docs/README.md": b"# hi",
    "docs/conf.yaml": b"a: 1",
    "blob.unknownext": b"?",
    "Makefile": b"all:",
}


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    """moto's S3 server of this module (apart from the suite's other moto fixtures)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def moto_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.startswith("AZURE_")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    env["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-aws-credentials")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


@pytest.fixture
def client(moto: str) -> Any:
    return botocore.session.Session().create_client(
        "s3", endpoint_url=moto, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture
def moto_bucket(client: Any) -> str:
    name = f"headers-{os.getpid()}-{next(_numbers)}"
    client.create_bucket(Bucket=name)
    return name


def keys(client: Any, bucket: str) -> list[str]:
    return [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.mark.parametrize("lean", ["on", "off"])
def test_a_web_tree_gets_each_extensions_type_the_flags_and_the_rules(
    tmp_path: Path, moto: str, moto_env: dict[str, str], client: Any, moto_bucket: str, lean: str
) -> None:
    source = tmp_path / "site"
    make_tree(source, {**WEB_TREE, "big.bin": random_bytes(6 * MIB, seed=3)})
    rules = tmp_path / "rules"
    rules.write_text("# hashed assets never change\nassets/**:Cache-Control: max-age=31536000, immutable\n")
    result = run_cli(
        moto_env, str(source), f"s3://{moto_bucket}/site", "--endpoint-url", moto, "--lean", lean,
        "--multipart-threshold", "5MiB", "--part-size", "5MiB",
        "--cache-control", "max-age=300", "--content-language", "en", "--content-disposition", "inline",
        "--header-rules", str(rules), "--header-rule", "*.html:Cache-Control: no-cache",
        "--header-rule", "*.html:Content-Type: text/html; charset=utf-8",
        "--metadata", "team=web", "--metadata", "build=42",
        "--sse", "aws:kms", "--sse-kms-key-id", "alias/site", "--storage-class", "STANDARD_IA",
        "--tags", "project=site&env=prod", "--acl", "bucket-owner-full-control",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected_types = {
        "index.html": "text/html; charset=utf-8",
        "assets/app.3f2a.js": "text/javascript",
        "assets/app.3f2a.mjs": "text/javascript",
        "assets/site.css": "text/css",
        "assets/logo.svg": "image/svg+xml",
        "assets/photo.webp": "image/webp",
        "assets/font.woff2": "font/woff2",
        "assets/app.wasm": "application/wasm",
        "data/feed.json": "application/json",
        "data/app.js.map": "application/json",
        "docs/README.md": "text/markdown",
        "docs/conf.yaml": "application/yaml",
        "blob.unknownext": "application/octet-stream",
        "Makefile": "application/octet-stream",
        "big.bin": "application/octet-stream",
    }
    for rel, content_type in expected_types.items():
        head = client.head_object(Bucket=moto_bucket, Key=f"site/{rel}")
        assert head["ContentType"] == content_type, rel
        cache = {"index.html": "no-cache"}.get(
            rel, "max-age=31536000, immutable" if rel.startswith("assets/") else None
        )
        assert head["CacheControl"] == (cache or "max-age=300"), rel
        assert head["ContentLanguage"] == "en"
        assert head["ContentDisposition"] == "inline"
        assert head["Metadata"]["team"] == "web"
        assert head["Metadata"]["build"] == "42"
        assert set(head["Metadata"]) >= {"size", "mtime", "mode"}
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"].endswith("alias/site")
        assert head["StorageClass"] == "STANDARD_IA"
        tags = client.get_object_tagging(Bucket=moto_bucket, Key=f"site/{rel}")["TagSet"]
        assert {t["Key"]: t["Value"] for t in tags} == {"project": "site", "env": "prod"}
    assert client.head_object(Bucket=moto_bucket, Key="site/big.bin")["ETag"].endswith('-2"')


def test_no_guess_mime_type_and_a_forced_type(
    tmp_path: Path, moto: str, moto_env: dict[str, str], client: Any, moto_bucket: str
) -> None:
    source = tmp_path / "src"
    make_tree(source, {"a.html": b"x", "b.js": b"y"})
    assert run_cli(moto_env, str(source), f"s3://{moto_bucket}/n", "--endpoint-url", moto,
                   "--no-guess-mime-type").returncode == 0  # fmt: skip
    assert run_cli(moto_env, str(source), f"s3://{moto_bucket}/f", "--endpoint-url", moto,
                   "--content-type", "text/plain").returncode == 0  # fmt: skip
    for key in ("n/a.html", "n/b.js"):
        assert client.head_object(Bucket=moto_bucket, Key=key)["ContentType"] == "binary/octet-stream"  # S3's own
    for key in ("f/a.html", "f/b.js"):
        assert client.head_object(Bucket=moto_bucket, Key=key)["ContentType"] == "text/plain"


@pytest.mark.parametrize("lean", ["on", "off"])
def test_sse_c_objects_read_back_only_with_the_key_and_a_rerun_skips_them(
    tmp_path: Path, s3_server: S3Server, server_env: dict[str, str], s3_client: Any, bucket: str, lean: str
) -> None:
    # SeaweedFS, not moto: moto stores SSE-C objects as plain ones, and serves them without the key.
    source = tmp_path / "src"
    make_tree(source, {"small.txt": b"secret", "big.bin": random_bytes(6 * MIB, seed=4)})
    key = bytes(range(32))
    key_file = tmp_path / "key.b64"
    key_file.write_text(base64.b64encode(key).decode() + "\n")
    args = (str(source), f"s3://{bucket}/c", "--endpoint-url", s3_server.endpoint_url, "--lean", lean,
            "--no-state", "--multipart-threshold", "5MiB", "--part-size", "5MiB",
            "--sse-c-key-file", str(key_file))  # fmt: skip
    result = run_cli(server_env, *args)
    assert result.returncode == 0, result.stderr
    assert base64.b64encode(key).decode() not in result.stdout + result.stderr
    for name in ("c/small.txt", "c/big.bin"):
        with pytest.raises(ClientError):
            s3_client.get_object(Bucket=bucket, Key=name)
        got = s3_client.get_object(Bucket=bucket, Key=name, SSECustomerAlgorithm="AES256", SSECustomerKey=key)
        assert got["Body"].read() == (source / name[2:]).read_bytes()
    again = run_cli(server_env, *args, "--summary-format", "json")  # no state: a HEAD per object, with the key
    assert again.returncode == 0, again.stderr
    assert '"skipped": 2' in again.stdout, again.stdout


@pytest.mark.parametrize("acl", ["public-read", "public-read-write", "authenticated-read"])
def test_a_public_acl_is_refused_and_nothing_is_uploaded(
    tmp_path: Path, moto: str, moto_env: dict[str, str], client: Any, moto_bucket: str, acl: str
) -> None:
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"a"})
    result = run_cli(moto_env, str(source), f"s3://{moto_bucket}", "--endpoint-url", moto, "--acl", acl)
    assert result.returncode == 2
    assert "never makes data public" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert keys(client, moto_bucket) == []


class _PolicyFront(http.server.BaseHTTPRequestHandler):
    """Forwards to moto, but answers a write without ``x-amz-server-side-encryption: aws:kms`` as AWS answers one
    a bucket policy denies: 403 AccessDenied, "explicit deny in a resource-based policy"."""

    upstream = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        is_write = self.command == "PUT" or (self.command == "POST" and "uploads" in self.path.partition("?")[2])
        is_part = "partNumber=" in self.path
        if is_write and not is_part and self.headers.get("x-amz-server-side-encryption") != "aws:kms":
            denied = (
                b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code><Message>User: "
                b"arn:aws:iam::123456789012:user/ci is not authorized to perform: s3:PutObject on resource: "
                b"arn:aws:s3:::bucket/key with an explicit deny in a resource-based policy</Message></Error>"
            )
            self.send_response(403)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(denied)))
            self.end_headers()
            self.wfile.write(denied)
            return
        target = urlsplit(self.upstream)
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        try:
            connection.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
            answer = connection.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in {"content-length", "transfer-encoding", "connection"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            connection.close()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward


@pytest.fixture
def policy_front(moto: str) -> Iterator[str]:
    handler = type("Front", (_PolicyFront,), {"upstream": moto})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("lean", ["on", "off"])
def test_a_policy_requiring_sse_kms_is_named_and_met_with_sse(
    tmp_path: Path, policy_front: str, moto_env: dict[str, str], client: Any, moto_bucket: str, lean: str
) -> None:
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"a", "b.html": b"b"})
    args = (str(source), f"s3://{moto_bucket}", "--endpoint-url", policy_front, "--lean", lean, "--retries", "1")
    refused = run_cli(moto_env, *args)
    assert refused.returncode == 2, refused.stderr
    assert "explicit deny" in refused.stderr
    assert "--sse aws:kms" in refused.stderr
    assert keys(client, moto_bucket) == []
    done = run_cli(moto_env, *args, "--sse", "aws:kms")
    assert done.returncode == 0, done.stderr
    assert sorted(keys(client, moto_bucket)) == ["a.txt", "b.html"]
    assert client.head_object(Bucket=moto_bucket, Key="b.html")["ServerSideEncryption"] == "aws:kms"


@pytest.fixture
def blob_env(azurite: BlobServer, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.startswith("AZURE_")}
    env.update(azurite.env())
    return env


def test_azure_stores_content_settings_tier_and_metadata(
    tmp_path: Path, azurite: BlobServer, blob_env: dict[str, str]
) -> None:
    from azure.storage.blob import ContainerClient

    container = new_container(azurite)
    source = tmp_path / "src"
    make_tree(source, {"index.html": b"<p>", "app.js": b"1", "big.bin": random_bytes(6 * MIB, seed=5)})
    result = run_cli(
        blob_env, str(source), f"az://{container}/w", "--multipart-threshold", "5MiB", "--part-size", "5MiB",
        "--cache-control", "max-age=60", "--header-rule", "*.html:Cache-Control: no-cache",
        "--content-language", "en", "--metadata", "team=web", "--access-tier", "cool", "--tags", "project=site",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with ContainerClient.from_connection_string(azurite.connection_string, container) as blobs:
        for name, content_type, cache in [
            ("w/index.html", "text/html", "no-cache"),
            ("w/app.js", "text/javascript", "max-age=60"),
            ("w/big.bin", "application/octet-stream", "max-age=60"),
        ]:
            properties = blobs.get_blob_client(name).get_blob_properties()
            assert properties.content_settings.content_type == content_type, name
            assert properties.content_settings.cache_control == cache, name
            assert properties.content_settings.content_language == "en"
            assert properties.metadata["team"] == "web"
            assert properties.blob_tier == "Cool", name
            assert blobs.get_blob_client(name).get_blob_tags() == {"project": "site"}


@pytest.mark.parametrize("option", [("--sse", "AES256"), ("--storage-class", "GLACIER"), ("--acl", "private")])
def test_an_s3_only_option_on_azure_is_refused_before_any_upload(
    tmp_path: Path, azurite: BlobServer, blob_env: dict[str, str], option: tuple[str, str]
) -> None:
    from azure.storage.blob import ContainerClient

    container = new_container(azurite)
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"a"})
    result = run_cli(blob_env, str(source), f"az://{container}", *option)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"async-uploader: error: {option[0]}: not supported for az:// destinations"
    ]
    with ContainerClient.from_connection_string(azurite.connection_string, container) as blobs:
        assert list(blobs.list_blobs()) == []
