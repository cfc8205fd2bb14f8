"""``--request-payer requester`` against a front that plays a requester-pays bucket (moto behind it): every request,
the preflight's included, must say that the requester pays, on the direct path and through botocore alike."""

from __future__ import annotations

import http.client
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest

from async_uploader.config import MIB
from tests.e2e.test_headers import client, keys, moto, moto_bucket, moto_env  # noqa: F401 (fixtures)
from tests.e2e.test_upload import run_cli
from tests.trees import make_tree, random_bytes

DENIED: bytes = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
)


class _RequesterPaysFront(http.server.BaseHTTPRequestHandler):
    """Forwards to moto what says ``x-amz-request-payer: requester``; answers anything else 403 AccessDenied, as S3
    answers another account on a requester-pays bucket. Remembers each request and whether it said so."""

    upstream = ""
    seen: ClassVar[list[tuple[str, str, bool]]]
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        length = str(len(data))
        for name, value in headers:
            if name.lower() == "content-length" and self.command == "HEAD":
                length = value  # the object's size, which a HEAD answers without the body
            elif name.lower() not in {"content-length", "transfer-encoding", "connection"}:
                self.send_header(name, value)
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        pays = self.headers.get("x-amz-request-payer") == "requester"
        self.seen.append((self.command, self.path, pays))
        if not pays:
            self._answer(403, [("Content-Type", "application/xml")], DENIED)
            return
        target = urlsplit(self.upstream)
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        try:
            connection.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
            answer = connection.getresponse()
            self._answer(answer.status, answer.getheaders(), answer.read())
        finally:
            connection.close()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward


@pytest.fixture
def front(moto: str) -> Iterator[tuple[str, list[tuple[str, str, bool]]]]:  # noqa: F811
    """The front's URL, and the requests it has seen."""
    seen: list[tuple[str, str, bool]] = []
    handler = type("Front", (_RequesterPaysFront,), {"upstream": moto, "seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("lean", ["on", "off"])
def test_a_requester_pays_bucket_takes_an_upload_only_with_request_payer(
    tmp_path: Path,
    front: tuple[str, list[tuple[str, str, bool]]],
    moto_env: dict[str, str],  # noqa: F811
    client: Any,  # noqa: F811
    moto_bucket: str,  # noqa: F811
    lean: str,
) -> None:
    url, seen = front
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"a", "site/index.html": b"<p>", "big.bin": random_bytes(6 * MIB, seed=3)})
    args = (
        str(source), f"s3://{moto_bucket}/p", "--endpoint-url", url, "--lean", lean, "--retries", "1",
        "--multipart-threshold", "5MiB", "--part-size", "5MiB", "--no-state",
    )  # fmt: skip
    refused = run_cli(moto_env, *args)
    assert refused.returncode == 2, refused.stderr
    # The preflight's refused listing is a warning (a write-only role may still upload); the refused first write
    # ends the run with one error line, no traceback.
    errors = [line for line in refused.stderr.splitlines() if line.startswith("async-uploader: error:")]
    assert len(errors) == 1, refused.stderr
    assert "Traceback" not in refused.stderr
    assert keys(client, moto_bucket) == []

    seen.clear()
    done = run_cli(moto_env, *args, "--request-payer", "requester")
    assert done.returncode == 0, done.stderr
    assert sorted(keys(client, moto_bucket)) == ["p/a.txt", "p/big.bin", "p/site/index.html"]
    again = run_cli(moto_env, *args, "--request-payer", "requester", "--summary-format", "json")
    assert again.returncode == 0, again.stderr
    assert '"skipped": 3' in again.stdout
    cleaned = run_cli(moto_env, f"s3://{moto_bucket}/p", "--endpoint-url", url, "--request-payer", "requester",
                      command="cleanup")  # fmt: skip
    assert cleaned.returncode == 0, cleaned.stderr

    methods = {method for method, _, _ in seen}
    assert {"HEAD", "GET", "PUT", "POST"} <= methods  # the preflight, listings, puts, multipart control and parts
    assert any("partNumber=" in path for _, path, _ in seen)
    assert [request for request in seen if not request[2]] == []


def test_request_payer_on_azure_is_refused_before_any_request(tmp_path: Path, moto_env: dict[str, str]) -> None:  # noqa: F811
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"a"})
    result = run_cli(
        moto_env, str(source), "az://container", "--account-url", "http://127.0.0.1:9/devstoreaccount1",
        "--request-payer", "requester",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "async-uploader: error: --request-payer: not supported for az:// destinations (Azure has no requester pays)"
    ]


def test_request_payer_takes_only_requester(tmp_path: Path, moto_env: dict[str, str]) -> None:  # noqa: F811
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"a"})
    result = run_cli(moto_env, str(source), "s3://bucket", "--request-payer", "owner")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["async-uploader: error: --request-payer takes requester, got 'owner'"]
