"""A minimal HTTP/1.1 keep-alive client on asyncio protocols: just enough for the direct path's requests.

aiohttp's request machinery (``ClientSession._request``, its request and response objects, yarl URLs, the
streaming payload writers) is the largest share of a client's CPU per small file, and a PUT of an in-memory body
needs none of it: one write of the head and the body, one parse of a small response. What it does need, and this
does: connections kept alive and reused (a pooled connection the server closed is detected and not reused; one
idle longer than ``IDLE_EXPIRY_S`` is closed; TCP keepalive is on; a request that fails on a reused connection
before any answer arrived is sent again at once on a new one), an ``http://`` proxy as botocore uses one
(absolute-form requests for ``http://`` origins, a ``CONNECT`` tunnel for ``https://`` ones), TLS with botocore's
trust store (``network``), ``Content-Length`` request
bodies, responses framed by ``Content-Length``, chunked encoding or the end of the connection, interim ``1xx``
answers skipped, a connect timeout and a read timeout (counted from when the body has been handed to the kernel,
so a slow link does not time out a large part), and a connection closed whenever a request does not end cleanly
(error, timeout, cancellation).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Final, cast
from urllib.parse import urlsplit

from .framing import Framing, body_framing, parse_chunked, parse_head, proxy_refusal
from .framing import Response as Response  # re-exported: the client's answers and its one error
from .framing import TransportError as TransportError
from .network import NetworkSettings, ProxyRoute
from .network import ssl_context as ssl_context

MAX_HEAD_BYTES: Final = 64 * 1024
MAX_ERROR_BODY_BYTES: Final = 1024 * 1024
SMALL_BODY_BYTES: Final = 64 * 1024
WRITE_SLICE_BYTES: Final = 256 * 1024
# A connection idle this long is closed, not reused: S3's front end closes idle connections after ~20 s and NAT
# gateways and proxies often sooner, silently (no FIN, no RST: a request sent on such a connection waits for the
# read timeout). aiobotocore (aiohttp's keepalive_timeout) keeps them 12 s; so do we.
IDLE_EXPIRY_S: Final = 12.0
# TCP keepalive probes while a connection waits for a slow answer (a CompleteMultipartUpload of a large object):
# the first after 30 s of silence, then every 15 s; 4 unanswered probes (~1.5 min) end the connection. They also
# keep a NAT's mapping alive meanwhile.
KEEPALIVE_IDLE_S: Final = 30
KEEPALIVE_INTERVAL_S: Final = 15
KEEPALIVE_PROBES: Final = 4
# Methods sent again at once when a reused connection turns out dead before any answer: the idempotent ones, as
# aiohttp does (a POST is its caller's to retry: it knows what a second CreateMultipartUpload may leave).
_RESENDABLE: Final = frozenset({"GET", "HEAD", "PUT", "DELETE"})


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, one request at a time; the response is parsed as bytes arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._response: asyncio.Future[Response] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._paused = False
        self._eof = False
        self._bodiless = False
        """The answer to a HEAD: its Content-Length is the object's, no body follows."""
        self.closed = False
        self.keep_alive = True
        self.timed_out = False
        self.idle_since = 0.0

    # -- asyncio.Protocol ------------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not subclasses of asyncio.Transport, so no isinstance check).
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._response is None:
            self.keep_alive = False  # bytes nobody asked for (a 408 before an idle close, say): never reuse
        self._buffer += data
        if len(self._buffer) > MAX_HEAD_BYTES + MAX_ERROR_BODY_BYTES:
            self._fail(TransportError("the answer is too large for a PUT"))
        else:
            self._try_complete()

    def eof_received(self) -> bool:
        self._eof = True
        self.keep_alive = False
        self._try_complete()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.keep_alive = False
        self._eof = True
        self._try_complete()
        self._fail(TransportError(f"the connection was closed before a complete answer ({exc or 'EOF'})"))
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # -- requests --------------------------------------------------------------------------------------------------

    async def request(self, head: bytes, body: bytes, read_timeout_s: float, *, bodiless: bool = False) -> Response:
        """Send ``head`` (request line and headers, CRLF-terminated) and ``body``; the parsed response (one
        without a body, whatever its headers say, if ``bodiless``: the answer to a HEAD)."""
        transport = self._transport
        if transport is None or self.closed or transport.is_closing():
            raise TransportError("the connection is closed")
        self._buffer.clear()
        self._bodiless = bodiless
        answer: asyncio.Future[Response] = self._loop.create_future()
        self._response = answer
        try:
            if len(body) <= SMALL_BODY_BYTES:
                transport.write(head + body)  # one send; the copy costs less than a second system call
            else:
                await self._send_large(transport, head, body)
            # A timer that fails the answer, rather than ``asyncio.timeout``: that costs a Timeout object, a
            # task lookup (a getpid() system call) and a cancellation to undo, per request.
            timer = self._loop.call_later(read_timeout_s, self._time_out, answer, read_timeout_s)
            try:
                return await answer
            finally:
                timer.cancel()
        finally:
            self._response = None
            if not answer.done():
                answer.cancel()
            elif not answer.cancelled():
                answer.exception()  # seen: a failure after a cancellation is not logged as never retrieved

    def _time_out(self, answer: asyncio.Future[Response], read_timeout_s: float) -> None:
        if not answer.done():
            self.keep_alive = False
            self.timed_out = True
            answer.set_exception(TransportError(f"no answer within the read timeout ({read_timeout_s:g} s)"))

    async def _send_large(self, transport: asyncio.Transport, head: bytes, body: bytes) -> None:
        # Slices, each written once the transport has room: what the kernel does not take at once is copied into
        # the transport's buffer, so writing a whole part would hold its bytes twice.
        transport.write(head)
        with memoryview(body) as view:
            for offset in range(0, len(body), WRITE_SLICE_BYTES):
                await self._drain()
                if self.closed:
                    return  # the answer (or the error) says why
                transport.write(view[offset : offset + WRITE_SLICE_BYTES])
        await self._drain()

    async def _drain(self) -> None:
        while self._paused and not self.closed:
            self._drained = self._loop.create_future()
            await self._drained

    def close(self) -> None:
        self.keep_alive = False
        if self._transport is not None and not self.closed:
            self._transport.close()

    @property
    def heard(self) -> bool:
        """Whether any byte of an answer arrived for the last request (the buffer is cleared as each starts)."""
        return bool(self._buffer)

    def socket(self) -> socket.socket | None:
        return None if self._transport is None else self._transport.get_extra_info("socket")

    async def tunnel(self, head: bytes, read_timeout_s: float, ssl_context: ssl.SSLContext, host: str) -> None:
        """Send a proxy's ``CONNECT`` (``head``), then speak TLS to ``host`` through the tunnel it opens."""
        answer = await self.request(head, b"", read_timeout_s, bodiless=True)
        if answer.status // 100 != 2:
            raise TransportError(proxy_refusal(answer.status, answer.headers, b"proxy-authorization" in head))
        transport = self._transport
        assert transport is not None
        loop = self._loop
        tls = await loop.start_tls(transport, self, ssl_context, server_hostname=host)
        if tls is None:
            raise TransportError("the TLS connection through the proxy was closed")
        self._transport = tls
        self.keep_alive = True

    # -- parsing ---------------------------------------------------------------------------------------------------

    def _fail(self, exc: Exception) -> None:
        self.keep_alive = False
        if self._response is not None and not self._response.done():
            self._response.set_exception(exc)

    def _try_complete(self) -> None:
        if self._response is None or self._response.done():
            return
        try:
            response = self._parse()
        except TransportError as exc:
            self._fail(exc)
            return
        if response is not None:
            self._response.set_result(response)

    def _parse(self) -> Response | None:
        buffer = self._buffer
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise TransportError("the answer's head is too large")
                return None
            status, headers, http10 = parse_head(bytes(buffer[:end]))
            if 100 <= status < 200:
                del buffer[: end + 4]  # an interim answer (100 Continue): the real one follows
                continue
            break
        start = end + 4
        framing, length = (Framing.LENGTH, 0) if self._bodiless else body_framing(status, headers)
        if framing == Framing.LENGTH:
            if len(buffer) - start < length:
                return None
            body = bytes(buffer[start : start + length])
            rest = len(buffer) - start - length
        elif framing == Framing.CHUNKED:
            parsed = parse_chunked(buffer, start)
            if parsed is None:
                return None
            body, consumed = parsed
            rest = len(buffer) - consumed
        else:
            if not self._eof:
                return None
            body, rest = bytes(buffer[start:]), 0
            self.keep_alive = False
        connection = headers.get("connection", "").lower()
        if rest or "close" in connection or (http10 and "keep-alive" not in connection):
            self.keep_alive = False
        buffer.clear()
        return Response(status, headers, body)


class Http1Pool:
    """Keep-alive connections to one origin (scheme, host, port), at most ``max_connections`` at once, directly or
    through ``proxy``."""

    def __init__(
        self,
        *,
        scheme: str,
        host: str,
        port: int,
        max_connections: int,
        connect_timeout_s: float,
        read_timeout_s: float,
        ssl_context: ssl.SSLContext | None,
        proxy: ProxyRoute | None = None,
        idle_expiry_s: float = IDLE_EXPIRY_S,
    ) -> None:
        self._scheme = scheme
        self._host = host
        self._port = port
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._ssl = ssl_context if scheme == "https" else None
        self._proxy = proxy
        self._idle_expiry_s = idle_expiry_s
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        # An http:// origin through a proxy: requests in absolute form, with the proxy's credentials; an https://
        # one goes through a tunnel, where requests are as on a direct connection.
        self._forwarded = proxy is not None and self._ssl is None
        bracketed = f"[{host}]" if ":" in host else host
        authority = bracketed if port == (443 if scheme == "https" else 80) else f"{bracketed}:{port}"
        self._target_prefix = f"{scheme}://{authority}" if self._forwarded else ""
        self._proxy_head = (
            f"proxy-authorization: {proxy.authorization}\r\n" if proxy is not None and proxy.authorization else ""
        )
        self._authority = f"{bracketed}:{port}"
        self._forward_head = self._proxy_head if self._forwarded else ""

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        proxy = self._proxy
        host, port = (proxy.host, proxy.port) if proxy is not None else (self._host, self._port)
        where = f"{self._host}:{self._port}" + (f" through the proxy {proxy.name}" if proxy is not None else "")
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                tls_now = self._ssl if proxy is None else None
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop),
                    host,
                    port,
                    ssl=tls_now,
                    server_hostname=self._host if tls_now is not None else None,
                )
                _keep_alive(connection)
                if proxy is not None and self._ssl is not None:
                    head = f"CONNECT {self._authority} HTTP/1.1\r\nhost: {self._authority}\r\n{self._proxy_head}\r\n"
                    await connection.tunnel(head.encode("latin-1"), self._read_timeout_s, self._ssl, self._host)
        except TimeoutError:
            if connection is not None:
                connection.close()
            raise TransportError(f"could not connect to {where} within {self._connect_timeout_s:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            if connection is not None:
                connection.close()
            raise TransportError(f"could not connect to {where}: {exc}") from exc
        except BaseException:
            if connection is not None:
                connection.close()
            raise
        self._open.add(connection)
        return connection

    def _reusable(self) -> _Connection | None:
        idle = self._idle
        if not idle:
            return None
        oldest_usable = asyncio.get_running_loop().time() - self._idle_expiry_s
        while idle:
            connection = idle.pop()
            if connection.idle_since <= oldest_usable:
                # Idle too long, and every connection under it in the stack longer still: close them all.
                self._discard(connection)
                self._drop_idle()
                return None
            if connection.keep_alive and not connection.closed:
                return connection
            self._discard(connection)
        return None

    def _drop_idle(self) -> None:
        for connection in self._idle:
            self._discard(connection)
        self._idle.clear()

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)

    async def request(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """One request; ``target`` is the encoded path and query, ``headers`` include ``host``.

        A reused connection that fails before any byte of an answer (the server or a middlebox closed it while
        it sat idle) gets the request again at once on a new connection, for an idempotent ``method``; the
        connections that idled beside it are closed too.
        """
        head = "".join(
            [
                f"{method} {self._target_prefix}{target} HTTP/1.1\r\n",
                *(f"{k}: {v}\r\n" for k, v in headers.items()),
                self._forward_head,
                "\r\n",
            ]
        ).encode("latin-1")
        async with self._slots:
            connection = self._reusable()
            if connection is not None:
                try:
                    return await self._exchange(connection, method, head, body)
                except TransportError:
                    if connection.heard or connection.timed_out or method not in _RESENDABLE:
                        raise
                    self._drop_idle()
            return await self._exchange(await self._connect(), method, head, body)

    async def _exchange(self, connection: _Connection, method: str, head: bytes, body: bytes) -> Response:
        try:
            response = await connection.request(head, body, self._read_timeout_s, bodiless=method == "HEAD")
        except BaseException:
            self._discard(connection)  # its state is unknown: never reuse it
            raise
        if connection.keep_alive and not connection.closed:
            connection.idle_since = connection._loop.time()
            self._idle.append(connection)
        else:
            self._discard(connection)
        if response.status == 407 and self._forwarded:
            raise TransportError(proxy_refusal(407, response.headers, self._proxy_head != ""))
        return response

    def close(self) -> None:
        for connection in self._open:
            connection.close()
        self._open.clear()
        self._idle.clear()


def _keep_alive(connection: _Connection) -> None:
    """TCP keepalive on the connection's socket, with probe timings where the platform lets us set them."""
    sock = connection.socket()
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (
            ("TCP_KEEPIDLE", KEEPALIVE_IDLE_S),
            ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_S),
            ("TCP_KEEPCNT", KEEPALIVE_PROBES),
        ):
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
    except OSError:
        pass  # a socket that refuses the options still works


class HttpClient:
    """A connection's HTTP client: one keep-alive pool per origin, opened on first use, all closed together.

    ``network`` holds what botocore honours on the wire (trust store, proxies, client certificate); each origin's
    proxy is decided when its pool is created, so a request pays nothing for it.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        connect_timeout_s: float,
        read_timeout_s: float,
        network: NetworkSettings | None = None,
        idle_expiry_s: float | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._network = network or NetworkSettings()
        self._idle_expiry_s = IDLE_EXPIRY_S if idle_expiry_s is None else idle_expiry_s
        self._ssl: ssl.SSLContext | None = None
        self._pools: dict[str, Http1Pool] = {}

    def _pool(self, origin: str) -> Http1Pool:
        pool = self._pools.get(origin)
        if pool is None:
            parts = urlsplit(origin)
            https = parts.scheme == "https"
            network = self._network
            if https and self._ssl is None:
                try:
                    self._ssl = ssl_context(network.verify, network.client_cert)
                except (OSError, ssl.SSLError) as exc:
                    raise TransportError(f"cannot set up TLS: {exc}") from exc
            try:
                proxy = network.proxy_for(origin)
            except ValueError as exc:
                raise TransportError(str(exc)) from None  # the connection checks this before any request
            pool = self._pools[origin] = Http1Pool(
                scheme=parts.scheme,
                host=parts.hostname or "",
                port=parts.port or (443 if https else 80),
                max_connections=self._max_connections,
                connect_timeout_s=self._connect_timeout_s,
                read_timeout_s=self._read_timeout_s,
                ssl_context=self._ssl,
                proxy=proxy,
                idle_expiry_s=self._idle_expiry_s,
            )
        return pool

    async def request(self, origin: str, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """One request to ``origin`` + ``target`` (encoded path and query). Raises ``TransportError``."""
        return await self._pool(origin).request(method, target, headers, body)

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
