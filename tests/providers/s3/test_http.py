"""The direct path's HTTP/1.1 client against small scripted servers: framing, reuse, stale connections, timeouts,
TLS."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from async_uploader.providers.s3.http import Http1Pool, HttpClient, TransportError, ssl_context
from async_uploader.providers.s3.network import ProxyRoute

pytestmark = pytest.mark.every_event_loop

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
HEADERS = {"host": "example", "content-length": "5"}


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return head[0], headers, body


class Server:
    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.port = 0


@asynccontextmanager
async def serving(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    server_state = Server()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_state.connections += 1
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0, ssl=tls)
    server_state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield server_state


def pool_for(server: Server, *, read_timeout_s: float = 5.0, scheme: str = "http", **options: object) -> Http1Pool:
    return Http1Pool(
        scheme=scheme,
        host=str(options.get("host", "127.0.0.1")),
        port=int(options.get("port", server.port)),  # type: ignore[call-overload]
        max_connections=4,
        connect_timeout_s=2.0,
        read_timeout_s=read_timeout_s,
        ssl_context=options.get("ssl_context"),  # type: ignore[arg-type]
        proxy=options.get("proxy"),  # type: ignore[arg-type]
        idle_expiry_s=float(options.get("idle_expiry_s", 60.0)),  # type: ignore[arg-type]
    )


def answering(server: Server, *answers: bytes) -> Handler:
    """Answer each request on a connection with the next answer, keeping the connection open."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            server.requests.append(await read_request(reader))
            writer.write(answer)
            await writer.drain()
        await reader.read()  # until the client closes

    return handler


OK = b'HTTP/1.1 200 OK\r\nETag: "abc"\r\nContent-Length: 0\r\n\r\n'


async def test_a_connection_is_kept_alive_and_reused() -> None:
    state = Server()
    async with serving(answering(state, OK, OK, OK)) as server:
        pool = pool_for(server)
        for n in range(3):
            response = await pool.request("PUT", f"/b/k{n}?partNumber=1", dict(HEADERS), b"hello")
            assert (response.status, response.headers["etag"]) == (200, '"abc"')
        pool.close()
    assert server.connections == 1
    assert [r[0] for r in state.requests] == [f"PUT /b/k{n}?partNumber=1 HTTP/1.1" for n in range(3)]
    assert all(r[2] == b"hello" and r[1]["host"] == "example" for r in state.requests)


async def test_the_client_keeps_a_pool_per_origin_and_closes_them_together() -> None:
    hung_up: list[asyncio.Event] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer every request until the client hangs up."""
        closed = asyncio.Event()
        hung_up.append(closed)
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(5)
                writer.write(OK)
                await writer.drain()
        finally:
            closed.set()

    async with serving(serve) as first, serving(serve) as second:
        http = HttpClient(max_connections=4, connect_timeout_s=2.0, read_timeout_s=5.0)
        for server in (first, first, second):
            response = await http.request(f"http://127.0.0.1:{server.port}", "PUT", "/b/k", dict(HEADERS), b"hello")
            assert response.status == 200
        assert (first.connections, second.connections) == (1, 1)
        await http.close()
        async with asyncio.timeout(5):
            for event in hung_up:
                await event.wait()


async def test_chunked_and_interim_answers_are_read_whole() -> None:
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\n<Erro\r\n10\r\nr><Code>X</Code>\r\n3\r\n<M/\r\n0\r\nTrailer: t\r\n\r\n"
    )
    state = Server()
    async with serving(answering(state, chunked, OK)) as server:
        pool = pool_for(server)
        first = await pool.request("PUT", "/k", dict(HEADERS), b"hello")
        second = await pool.request("PUT", "/k", dict(HEADERS), b"hello")
        pool.close()
    assert (first.status, first.body) == (400, b"<Error><Code>X</Code><M/")
    assert second.status == 200
    assert server.connections == 1


async def test_an_answer_without_length_ends_with_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 500 Oops\r\n\r\n<html>down</html>")
        await writer.drain()

    async with serving(handler) as server:
        pool = pool_for(server)
        response = await pool.request("PUT", "/k", dict(HEADERS), b"hello")
        again = await pool.request("PUT", "/k", dict(HEADERS), b"hello")
        pool.close()
    assert (response.status, response.body, again.status) == (500, b"<html>down</html>", 500)
    assert server.connections == 2


async def test_connection_close_is_honoured() -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    async with serving(answering(Server(), closing)) as server:
        pool = pool_for(server)
        for _ in range(2):
            assert (await pool.request("PUT", "/k", dict(HEADERS), b"hello")).body == b"ok"
        pool.close()
    assert server.connections == 2


async def test_a_connection_the_server_dropped_while_idle_is_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()  # and close, as an idle timeout would

    async with serving(handler) as server:
        pool = pool_for(server)
        await pool.request("PUT", "/k", dict(HEADERS), b"hello")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not pool._idle[0].closed:  # the client has seen the close
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        assert (await pool.request("PUT", "/k", dict(HEADERS), b"hello")).status == 200
        pool.close()
    assert server.connections == 2


async def test_a_connection_dropped_mid_request_is_a_transport_error_and_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if server.connections == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
            await writer.drain()
            return  # closed with the body cut short
        writer.write(OK)
        await writer.drain()
        await reader.read()

    async with serving(handler) as server:
        pool = pool_for(server)
        with pytest.raises(TransportError, match="closed before a complete answer"):
            await pool.request("PUT", "/k", dict(HEADERS), b"hello")
        assert (await pool.request("PUT", "/k", dict(HEADERS), b"hello")).status == 200
        pool.close()


async def test_no_answer_is_a_read_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()

    async with serving(handler) as server:
        pool = pool_for(server, read_timeout_s=0.2)
        with pytest.raises(TransportError, match="read timeout"):
            await pool.request("PUT", "/k", dict(HEADERS), b"hello")
        pool.close()


async def test_a_refused_connection_is_a_transport_error() -> None:
    async with serving(answering(Server())) as server:
        port = server.port
    pool = pool_for(Server(), host="127.0.0.1")
    pool._port = port  # nothing listens there any more
    with pytest.raises(TransportError, match="could not connect"):
        await pool.request("PUT", "/k", dict(HEADERS), b"hello")


async def test_a_large_body_is_sent_whole_to_a_slow_reader() -> None:
    body = bytes(range(256)) * (8 * 4096)  # 8 MiB

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
        got = bytearray()
        while len(got) < length:
            got += await reader.read(65536)
            await asyncio.sleep(0)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + (b"y" if got == body else b"n"))
        await writer.drain()
        await reader.read()

    async with serving(handler) as server:
        pool = pool_for(server, read_timeout_s=2.0)
        headers = {"host": "example", "content-length": str(len(body))}
        assert (await pool.request("PUT", "/k", headers, body)).body == b"y"
        pool.close()


async def test_a_cancelled_request_leaves_no_connection_to_reuse() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()

    async with serving(handler) as server:
        pool = pool_for(server)
        task = asyncio.create_task(pool.request("PUT", "/k", dict(HEADERS), b"hello"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not server.connections:
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool._idle == []
        assert pool._open == set()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    return directory


async def test_tls_verifies_against_the_given_bundle(certificate: Path) -> None:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(certificate / "cert.pem", certificate / "key.pem")
    async with serving(answering(Server(), OK, OK), tls=server_tls) as server:
        trusting = pool_for(
            server, scheme="https", host="localhost", ssl_context=ssl_context(str(certificate / "cert.pem"))
        )
        assert (await trusting.request("PUT", "/k", dict(HEADERS), b"hello")).status == 200
        trusting.close()
        default = pool_for(server, scheme="https", host="localhost", ssl_context=ssl_context(True))
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            await default.request("PUT", "/k", dict(HEADERS), b"hello")
        default.close()


async def test_bytes_sent_to_an_idle_connection_make_it_unusable() -> None:
    answered = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        if server.connections == 1:
            await answered.wait()  # the connection is idle in the pool now
            writer.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")  # unasked, left open
            await writer.drain()
        await reader.read()

    async with serving(handler) as server:
        pool = pool_for(server)
        await pool.request("PUT", "/k", dict(HEADERS), b"hello")
        assert len(pool._idle) == 1
        answered.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while pool._idle[0].keep_alive:  # until the client has read the unasked bytes
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        assert (await pool.request("PUT", "/k", dict(HEADERS), b"hello")).status == 200
        pool.close()
    assert server.connections == 2


async def test_an_http_origin_through_a_proxy_is_asked_in_absolute_form_with_credentials() -> None:
    state = Server()
    async with serving(answering(state, OK, OK)) as proxy:
        route = ProxyRoute("127.0.0.1", proxy.port, "Basic dTpw")
        pool = pool_for(proxy, host="s3.test.invalid", proxy=route, port=8333)
        for _ in range(2):
            assert (await pool.request("PUT", "/b/k?x=1", dict(HEADERS), b"hello")).status == 200
        pool.close()
    assert [r[0] for r in state.requests] == ["PUT http://s3.test.invalid:8333/b/k?x=1 HTTP/1.1"] * 2
    assert all(r[1]["proxy-authorization"] == "Basic dTpw" and r[2] == b"hello" for r in state.requests)
    assert proxy.connections == 1


async def test_a_407_from_the_proxy_says_it_needs_credentials() -> None:
    refusal = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
    async with serving(answering(Server(), refusal, refusal)) as proxy:
        pool = pool_for(proxy, host="s3.test.invalid", proxy=ProxyRoute("127.0.0.1", proxy.port))
        with pytest.raises(TransportError, match="the proxy needs credentials"):
            await pool.request("PUT", "/k", dict(HEADERS), b"hello")
        pool.close()


async def test_an_https_origin_goes_through_a_connect_tunnel(certificate: Path) -> None:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(certificate / "cert.pem", certificate / "key.pem")
    tunnels: list[str] = []

    async def proxy_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, headers, _ = await read_request(reader)
        tunnels.append(f"{line} {headers.get('proxy-authorization')}")
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await writer.start_tls(server_tls)
        for _ in range(2):
            line, headers, body = await read_request(reader)
            assert (line, body) == ("PUT /k HTTP/1.1", b"hello")
            writer.write(OK)
            await writer.drain()
        await reader.read()

    async with serving(proxy_handler) as proxy:
        pool = pool_for(
            proxy,
            scheme="https",
            host="localhost",
            ssl_context=ssl_context(str(certificate / "cert.pem")),
            proxy=ProxyRoute("127.0.0.1", proxy.port, "Basic dTpw"),
            port=9443,
        )
        for _ in range(2):
            assert (await pool.request("PUT", "/k", dict(HEADERS), b"hello")).status == 200
        pool.close()
    assert tunnels == ["CONNECT localhost:9443 HTTP/1.1 Basic dTpw"]


async def test_a_connection_idle_too_long_is_not_reused() -> None:
    async with serving(answering(Server(), OK, OK)) as server:
        pool = pool_for(server, idle_expiry_s=0.0)
        for _ in range(2):
            await pool.request("PUT", "/k", dict(HEADERS), b"hello")
        pool.close()
    assert server.connections == 2


@pytest.mark.parametrize("method", ["PUT", "POST"])
async def test_a_reused_connection_closed_before_an_answer_is_resent_on_a_new_one(method: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        await read_request(reader)  # the second request on this connection: closed unanswered, as a stale one
        if server.connections > 1:
            await reader.read()

    async with serving(handler) as server:
        pool = pool_for(server)
        await pool.request(method, "/k", dict(HEADERS), b"hello")
        if method == "PUT":
            assert (await pool.request(method, "/k", dict(HEADERS), b"hello")).status == 200
            assert server.connections == 2
        else:  # not idempotent: its caller decides
            with pytest.raises(TransportError, match="closed before a complete answer"):
                await pool.request(method, "/k", dict(HEADERS), b"hello")
        pool.close()
