"""Real network set-ups in front of SeaweedFS, on both paths: a forward proxy that is the only route, a TLS front
with a private CA, proxy credentials; every misconfiguration one line and exit 2."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import async_uploader
from async_uploader.providers.s3 import http
from tests.e2e.conftest import read_bucket
from tests.e2e.test_upload import assert_bucket_holds
from tests.fault_proxy import FaultProxy
from tests.proxy_front import INVALID_HOST, CertificateAuthority, ForwardProxy, TlsFront, make_ca
from tests.trees import make_tree
from tools.seaweedfs import S3Server

LEAN = pytest.mark.parametrize("lean", ["on", "off"], ids=["lean", "aiobotocore"])
FILES = {f"d{n % 3}/f{n}.txt": f"file {n}".encode() * 40 for n in range(12)}


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


async def run_cli(env: dict[str, str], *args: str) -> Outcome:
    """The CLI in a subprocess, without blocking the loop the fronts run on."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "async_uploader",
        "upload",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        out, err = await process.communicate()
    assert process.returncode is not None
    return Outcome(process.returncode, out.decode(), err.decode())


def assert_one_line_exit_2(outcome: Outcome, *expected: str) -> str:
    """Exit 2 with one line on stderr (no traceback) that says each of ``expected``."""
    assert outcome.code == 2, outcome
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, outcome.stderr
    assert "Traceback" not in outcome.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def seaweed_port(server: S3Server) -> int:
    port = urlsplit(server.endpoint_url).port
    assert port is not None
    return port


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return make_ca(tmp_path_factory.mktemp("ca"))


@LEAN
async def test_an_upload_through_the_only_route_goes_through_the_proxy(
    tmp_path: Path, server_env: dict[str, str], s3_server: S3Server, s3_client: Any, bucket: str, lean: str
) -> None:
    tree = tmp_path / "src"
    make_tree(tree, FILES)
    async with ForwardProxy({INVALID_HOST: seaweed_port(s3_server)}) as proxy:
        env = dict(server_env, HTTP_PROXY=proxy.url)
        endpoint = f"http://{INVALID_HOST}:{seaweed_port(s3_server)}"
        outcome = await run_cli(env, str(tree), f"s3://{bucket}/p/", "--endpoint-url", endpoint, "--lean", lean)
    assert outcome.code == 0, outcome
    assert_bucket_holds(s3_client, bucket, "p/", tree)
    # The name resolves nowhere but in the proxy: every request went through it, in absolute form.
    assert proxy.counts["requests"] >= len(FILES) + 1
    assert all(line.split()[1].startswith(f"http://{INVALID_HOST}:") for line in proxy.targets)


async def test_no_proxy_sends_the_requests_direct(
    tmp_path: Path, server_env: dict[str, str], s3_server: S3Server, s3_client: Any, bucket: str
) -> None:
    tree = tmp_path / "src"
    make_tree(tree, FILES)
    async with ForwardProxy({}) as proxy:
        env = dict(server_env, http_proxy=proxy.url, no_proxy="localhost,127.0.0.1")
        outcome = await run_cli(env, str(tree), f"s3://{bucket}/", "--endpoint-url", s3_server.endpoint_url)
    assert outcome.code == 0, outcome
    assert_bucket_holds(s3_client, bucket, "", tree)
    assert proxy.targets == []


@LEAN
async def test_proxy_credentials_are_sent_and_never_shown(
    tmp_path: Path, server_env: dict[str, str], s3_server: S3Server, s3_client: Any, bucket: str, lean: str
) -> None:
    tree = tmp_path / "src"
    make_tree(tree, FILES)
    port = seaweed_port(s3_server)
    endpoint = f"http://{INVALID_HOST}:{port}"
    async with ForwardProxy({INVALID_HOST: port}, credentials="user:s3cr3t-pw") as proxy:
        proxy_url = proxy.url.replace("http://", "http://user:s3cr3t-pw@")
        args = (str(tree), f"s3://{bucket}/", "--endpoint-url", endpoint, "--lean", lean)
        good = await run_cli(dict(server_env, HTTP_PROXY=proxy_url), *args, "-v")
        wrong = await run_cli(dict(server_env, HTTP_PROXY=proxy_url.replace("s3cr3t-pw", "wr0ng-pw")), *args)
        missing = await run_cli(dict(server_env, HTTP_PROXY=proxy.url), *args)
    assert good.code == 0, good
    assert_bucket_holds(s3_client, bucket, "", tree)
    for outcome in (good, wrong, missing):
        assert "s3cr3t-pw" not in outcome.stdout + outcome.stderr
        assert "wr0ng-pw" not in outcome.stdout + outcome.stderr
    assert wrong.code == missing.code == 2, (wrong, missing)
    if lean == "on":
        assert_one_line_exit_2(wrong, "proxy refused the credentials")
        assert_one_line_exit_2(missing, "proxy needs credentials")
    else:
        assert_one_line_exit_2(missing, "407")


@LEAN
async def test_a_refused_or_unknown_proxy_is_one_line(
    tmp_path: Path, server_env: dict[str, str], s3_server: S3Server, bucket: str, lean: str
) -> None:
    tree = tmp_path / "src"
    make_tree(tree, {"a.txt": b"a"})
    endpoint = f"http://{INVALID_HOST}:{seaweed_port(s3_server)}"
    args = (str(tree), f"s3://{bucket}/", "--endpoint-url", endpoint, "--lean", lean, "--connect-timeout", "5")
    async with ForwardProxy({}) as proxy:
        closed_port = proxy.port  # nothing listens here once the proxy is gone
    refused = await run_cli(dict(server_env, HTTP_PROXY=f"http://127.0.0.1:{closed_port}"), *args)
    unknown = await run_cli(dict(server_env, HTTP_PROXY="http://proxy.test.invalid:3128"), *args)
    assert_one_line_exit_2(refused)
    assert_one_line_exit_2(unknown)


@LEAN
async def test_a_private_ca_from_aws_ca_bundle_is_trusted(
    tmp_path: Path,
    server_env: dict[str, str],
    s3_server: S3Server,
    s3_client: Any,
    bucket: str,
    authority: CertificateAuthority,
    lean: str,
) -> None:
    tree = tmp_path / "src"
    make_tree(tree, FILES)
    async with TlsFront(authority, seaweed_port(s3_server)) as front:
        env = dict(server_env, AWS_CA_BUNDLE=str(authority.ca_cert))
        endpoint = f"https://localhost:{front.port}"
        outcome = await run_cli(env, str(tree), f"s3://{bucket}/", "--endpoint-url", endpoint, "--lean", lean)
    assert outcome.code == 0, outcome
    assert_bucket_holds(s3_client, bucket, "", tree)


async def test_a_profiles_ca_bundle_is_trusted(
    tmp_path: Path,
    server_env: dict[str, str],
    s3_server: S3Server,
    s3_client: Any,
    bucket: str,
    authority: CertificateAuthority,
) -> None:
    tree = tmp_path / "src"
    make_tree(tree, FILES)
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\nca_bundle = {authority.ca_cert}\n")
    async with TlsFront(authority, seaweed_port(s3_server)) as front:
        env = dict(server_env, AWS_CONFIG_FILE=str(config))
        endpoint = f"https://localhost:{front.port}"
        outcome = await run_cli(env, str(tree), f"s3://{bucket}/", "--endpoint-url", endpoint)
    assert outcome.code == 0, outcome
    assert_bucket_holds(s3_client, bucket, "", tree)


@LEAN
async def test_an_untrusted_or_missing_ca_bundle_is_one_line(
    tmp_path: Path,
    server_env: dict[str, str],
    s3_server: S3Server,
    bucket: str,
    authority: CertificateAuthority,
    lean: str,
) -> None:
    tree = tmp_path / "src"
    make_tree(tree, {"a.txt": b"a"})
    async with TlsFront(authority, seaweed_port(s3_server)) as front:
        args = (str(tree), f"s3://{bucket}/", "--endpoint-url", f"https://localhost:{front.port}", "--lean", lean)
        untrusted = await run_cli(server_env, *args)
        missing = await run_cli(dict(server_env, AWS_CA_BUNDLE=str(tmp_path / "no-such.pem")), *args)
        directory = await run_cli(dict(server_env, AWS_CA_BUNDLE=str(tmp_path)), *args)
    assert_one_line_exit_2(untrusted, "certificate verify failed")
    assert_one_line_exit_2(missing, "no-such.pem", "does not exist")
    assert_one_line_exit_2(directory, "is a directory")


@LEAN
async def test_tls_through_a_connect_tunnel(
    tmp_path: Path,
    server_env: dict[str, str],
    s3_server: S3Server,
    s3_client: Any,
    bucket: str,
    authority: CertificateAuthority,
    lean: str,
) -> None:
    tree = tmp_path / "src"
    make_tree(tree, FILES)
    front = TlsFront(authority, seaweed_port(s3_server))
    async with front, ForwardProxy({INVALID_HOST: front.port}, credentials="u:tunnel-pw") as proxy:
        env = dict(
            server_env,
            HTTPS_PROXY=proxy.url.replace("http://", "http://u:tunnel-pw@"),
            AWS_CA_BUNDLE=str(authority.ca_cert),
        )
        endpoint = f"https://{INVALID_HOST}:{front.port}"
        outcome = await run_cli(env, str(tree), f"s3://{bucket}/", "--endpoint-url", endpoint, "--lean", lean)
    assert outcome.code == 0, outcome
    assert "tunnel-pw" not in outcome.stdout + outcome.stderr
    assert_bucket_holds(s3_client, bucket, "", tree)
    assert proxy.counts["connects"] >= 1
    assert proxy.counts["requests"] == 0


# -- dead pooled connections --------------------------------------------------------------------------------------


@pytest.fixture
def direct_env(server_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's keys in this process's environment: the library's lean path then needs no botocore client."""
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in server_env.items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)


@pytest.mark.usefixtures("direct_env")
async def test_a_reused_uploader_does_not_wait_on_connections_a_nat_dropped(
    tmp_path: Path, s3_server: S3Server, s3_client: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http, "IDLE_EXPIRY_S", 0.5)  # the front drops them after 1 s; S3 and NATs after ~20 s+
    first, second = tmp_path / "first", tmp_path / "second"
    make_tree(first, FILES)
    make_tree(second, {f"again/{name}": body for name, body in FILES.items()})
    async with FaultProxy(s3_server.endpoint_url, idle_drop_s=1.0) as proxy:
        options = {"endpoint_url": proxy.url, "region": s3_server.region, "read_timeout": 30.0}
        async with async_uploader.Uploader(**options) as up:
            assert (await up.upload(first, f"s3://{bucket}/")).failed == 0
            async with asyncio.timeout(15):
                await proxy.idle_dropped.wait()  # the pooled connections are dead now, silently
            started = time.monotonic()
            result = await up.upload(second, f"s3://{bucket}/")
            took = time.monotonic() - started
    assert (result.uploaded, result.failed) == (len(FILES), 0), result.failures
    assert took < 15, f"the second run waited {took:.1f} s on dead connections"
    assert len(read_bucket(s3_client, bucket)) == 2 * len(FILES)


@pytest.mark.usefixtures("direct_env")
@pytest.mark.parametrize("close_after", ["fin", "header"])
@LEAN
async def test_connections_closed_after_every_answer_cost_nothing(
    tmp_path: Path, s3_server: S3Server, s3_client: Any, bucket: str, close_after: Any, lean: str
) -> None:
    source = tmp_path / "src"
    make_tree(source, FILES)
    async with FaultProxy(s3_server.endpoint_url, close_after=close_after) as proxy:
        options = {"endpoint_url": proxy.url, "region": s3_server.region, "lean": lean == "on"}
        async with async_uploader.Uploader(**options) as up:
            result = await up.upload(source, f"s3://{bucket}/")
    assert (result.uploaded, result.failed, result.retries) == (len(FILES), 0, 0), result.failures
    assert_bucket_holds(s3_client, bucket, "", source)
    assert proxy.counts["closed_after_answer"] == proxy.counts["forwarded"]
