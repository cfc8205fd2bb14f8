"""A minimal HTTP/1.1 keep-alive client on asyncio protocols: just enough for the direct path's requests.

aiohttp's request machinery (``ClientSession._request``, its request and response objects, yarl URLs, the
streaming payload writers) is the largest share of a client's CPU per small file, and a PUT of an in-memory body
needs none of it: one write of the head and the body, one parse of a small response. What it does need, and this
does: connections kept alive and reused (a pooled connection the server closed is detected and not reused; the
caller tries a request that fails on one once more), TLS with a verifying context, ``Content-Length`` request
bodies, responses framed by ``Content-Length``, chunked encoding or the end of the connection, interim ``1xx``
answers skipped, a connect timeout and a read timeout (counted from when the body has been handed to the kernel,
so a slow link does not time out a large part), and a connection closed whenever a request does not end cleanly
(error, timeout, cancellation).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Final, cast
from urllib.parse import urlsplit

MAX_HEAD_BYTES: Final = 64 * 1024
MAX_ERROR_BODY_BYTES: Final = 1024 * 1024
SMALL_BODY_BYTES: Final = 64 * 1024
WRITE_SLICE_BYTES: Final = 256 * 1024


class TransportError(Exception):
    """No usable answer: the connection failed, was reset or closed early, timed out, or spoke no HTTP/1.1."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    """Lower-case names; a repeated header keeps its last value."""
    body: bytes


class _Framing:
    """Where the body of the response being read ends."""

    LENGTH, CHUNKED, UNTIL_CLOSE = range(3)


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
            status, headers, http10 = _parse_head(bytes(buffer[:end]))
            if 100 <= status < 200:
                del buffer[: end + 4]  # an interim answer (100 Continue): the real one follows
                continue
            break
        start = end + 4
        framing, length = (_Framing.LENGTH, 0) if self._bodiless else _framing(status, headers)
        if framing == _Framing.LENGTH:
            if len(buffer) - start < length:
                return None
            body = bytes(buffer[start : start + length])
            rest = len(buffer) - start - length
        elif framing == _Framing.CHUNKED:
            parsed = _parse_chunked(buffer, start)
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


def _parse_head(head: bytes) -> tuple[int, dict[str, str], bool]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise TransportError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise TransportError(f"malformed header line in the answer: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return int(code), headers, version == "HTTP/1.0"


def _framing(status: int, headers: dict[str, str]) -> tuple[int, int]:
    if status in (204, 304):
        return _Framing.LENGTH, 0
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _Framing.CHUNKED, 0
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise TransportError(f"invalid Content-Length in the answer: {length[:40]!r}")
        return _Framing.LENGTH, int(length)
    return _Framing.UNTIL_CLOSE, 0


def _parse_chunked(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """The body and the bytes consumed up to the end of the trailers, or ``None`` if not all here yet."""
    body = bytearray()
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size_text = bytes(buffer[position:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise TransportError(f"invalid chunk size in the answer: {size_text[:40]!r}") from None
        position = line_end + 2
        if size == 0:
            break
        if len(buffer) < position + size + 2:
            return None
        body += buffer[position : position + size]
        position += size + 2
    while True:  # trailers, up to an empty line
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        if line_end == position:
            return bytes(body), line_end + 2
        position = line_end + 2


class Http1Pool:
    """Keep-alive connections to one origin (scheme, host, port), at most ``max_connections`` at once."""

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
    ) -> None:
        self._scheme = scheme
        self._host = host
        self._port = port
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._ssl = ssl_context if scheme == "https" else None
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                )
        except TimeoutError:
            raise TransportError(
                f"could not connect to {self._host}:{self._port} within {self._connect_timeout_s:g} s"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(f"could not connect to {self._host}:{self._port}: {exc}") from exc
        self._open.add(connection)
        return connection

    def _reusable(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.keep_alive and not connection.closed:
                return connection
            self._discard(connection)
        return None

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)

    async def request(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """One request; ``target`` is the encoded path and query, ``headers`` include ``host``."""
        head = "".join([f"{method} {target} HTTP/1.1\r\n", *(f"{k}: {v}\r\n" for k, v in headers.items()), "\r\n"])
        async with self._slots:
            connection = self._reusable() or await self._connect()
            try:
                response = await connection.request(
                    head.encode("latin-1"), body, self._read_timeout_s, bodiless=method == "HEAD"
                )
            except BaseException:
                self._discard(connection)  # its state is unknown: never reuse it
                raise
            if connection.keep_alive and not connection.closed:
                self._idle.append(connection)
            else:
                self._discard(connection)
            return response

    def close(self) -> None:
        for connection in self._open:
            connection.close()
        self._open.clear()
        self._idle.clear()


def ssl_context(verify: bool | str) -> ssl.SSLContext:
    """The TLS settings botocore would use: its CA bundle (a path), or no verification when ``verify`` is false."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)


class HttpClient:
    """A connection's HTTP client: one keep-alive pool per origin, opened on first use, all closed together."""

    def __init__(
        self, *, max_connections: int, connect_timeout_s: float, read_timeout_s: float, verify: bool | str = True
    ) -> None:
        self._max_connections = max_connections
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._pools: dict[str, Http1Pool] = {}

    def _pool(self, origin: str) -> Http1Pool:
        pool = self._pools.get(origin)
        if pool is None:
            parts = urlsplit(origin)
            https = parts.scheme == "https"
            if https and self._ssl is None:
                self._ssl = ssl_context(self._verify)
            pool = self._pools[origin] = Http1Pool(
                scheme=parts.scheme,
                host=parts.hostname or "",
                port=parts.port or (443 if https else 80),
                max_connections=self._max_connections,
                connect_timeout_s=self._connect_timeout_s,
                read_timeout_s=self._read_timeout_s,
                ssl_context=self._ssl,
            )
        return pool

    async def request(self, origin: str, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """One request to ``origin`` + ``target`` (encoded path and query). Raises ``TransportError``."""
        return await self._pool(origin).request(method, target, headers, body)

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
