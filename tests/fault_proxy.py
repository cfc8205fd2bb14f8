"""A fault-injecting HTTP/1.1 proxy for end-to-end tests: it sits between the uploader and the S3 server.

Each request is read whole (head, then a ``Content-Length`` or chunked body), then forwarded with its response
relayed back, or answered with a fault drawn from ``random.Random(seed)``: the nth new request gets the nth draw
(which request is the nth depends on arrival order). A request that draws a fault gets it again on its next 0 to
``max_streak - 1`` tries (recognised by the request line): botocore retries below the uploader (and aiohttp once
more for a PUT whose connection dropped), so only a streak reaches the uploader's own retry layer.

Faults: ``reset`` sends part of the request on, never all of it, then resets both connections; ``slowdown``
answers 503 SlowDown without forwarding (``internal_error``: 500 InternalError); ``stall`` reads the request
and never answers, until the client gives up; ``lose_response`` lets the server act on the request, then resets
the client instead of answering; ``corrupt`` flips one byte of the request's body on its way to the server (a
``Content-Length`` body; others pass intact). ``fail_next`` forces a fault on the next requests matching a
pattern. ``start_outage(s)`` drops every open connection and, for ``s`` seconds, resets new ones on accept (stop
the real server for "connection refused"). Network behaviours, for every connection: ``idle_drop_s`` drops a
client connection idle that long silently, as a NAT gateway does (no FIN, no RST: what the client sends next is
read and never answered; ``idle_dropped`` is set); ``close_after`` ends each connection after its first answer,
with a bare FIN (``"fin"``) or saying so (``"header"``: ``Connection: close``). ``Expect: 100-continue`` is
answered here and not forwarded (it is never signed). aiobotocore sends every body with ``Content-Length``;
chunked messages are relayed with their framing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import socket
import struct
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Literal, get_args
from urllib.parse import urlsplit

Fault = Literal["reset", "slowdown", "stall", "lose_response", "corrupt", "internal_error"]
FAULTS: Final[tuple[Fault, ...]] = ("reset", "slowdown", "stall")
SLOWDOWN_XML: Final = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)
SLOWDOWN: Final = b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n%s" % (
    len(SLOWDOWN_XML),
    SLOWDOWN_XML,
)
INTERNAL_ERROR_XML: Final = (
    b"<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>"
)
INTERNAL_ERROR: Final = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n%s"
    % (
        len(INTERNAL_ERROR_XML),
        INTERNAL_ERROR_XML,
    )
)
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass(frozen=True, slots=True)
class Message:
    """A request or response head: its raw bytes (through the blank line), first line and lower-cased headers."""

    raw: bytes
    first_line: str
    headers: dict[str, str]

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()


async def read_head(reader: asyncio.StreamReader) -> Message | None:
    """The next head, or ``None`` if the peer closed cleanly between messages."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    first, *lines = raw.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in lines if h)}
    return Message(raw, first, headers)


async def read_body(reader: asyncio.StreamReader, head: Message, *, until_eof: bool = False) -> bytes:
    """The body as framed on the wire. Without a length or chunking a request has none; a response runs to EOF."""
    if head.chunked:
        framed = []
        while size := int((line := await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            framed += [line, await reader.readexactly(size + 2)]
        framed.append(line)
        while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
            framed.append(trailer)
        return b"".join([*framed, b"\r\n"])
    if "content-length" in head.headers:
        return await reader.readexactly(int(head.headers["content-length"]))
    return await reader.read() if until_eof else b""


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), not a FIN: what a crashed peer or a middlebox does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """``async with FaultProxy(upstream_url, seed=1, fault_rate=0.2) as proxy:``, clients use ``proxy.url``.

    ``fault_rate`` may change at any time; ``only`` (a regex) limits faults to matching request lines and
    ``max_faults`` caps them. ``counts`` tallies requests, forwarded ones, each fault, held requests, and
    connections ``dropped`` or ``refused`` by outages; ``request_lines`` lists every request as it arrived.
    """

    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        fault_rate: float = 0.0,
        faults: Sequence[Fault] = FAULTS,
        max_streak: int = 1,
        only: str = "",
        max_faults: int | None = None,
        idle_drop_s: float | None = None,
        close_after: Literal["fin", "header"] | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.fault_rate, self.faults, self.only = fault_rate, tuple(faults), re.compile(only)
        self.max_streak, self.max_faults = max_streak, max_faults
        self.counts: Counter[str] = Counter()
        self.request_lines: list[str] = []
        self._rng = random.Random(seed)
        self._streaks: dict[str, tuple[Fault, int]] = {}
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[object]] = set()
        self._open: dict[asyncio.StreamWriter, Connection | None] = {}  # client connection -> its upstream one
        self._in_flight: dict[asyncio.StreamWriter, bytes] = {}  # client connection -> head of its open request
        self._hold: tuple[re.Pattern[bytes], asyncio.Event] | None = None
        self._hold_left = 0
        self._outage_until = 0.0
        self.idle_drop_s, self.close_after = idle_drop_s, close_after
        self.idle_dropped = asyncio.Event()
        self._forced: list[tuple[re.Pattern[str], Fault]] = []

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the proxy first"
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._hold is not None:
            self._hold[1].set()
        self._drop_all()  # every handler then ends on its own, through its ``finally``
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _drop_all(self) -> None:
        for client, upstream in list(self._open.items()):
            reset(client)
            if upstream is not None:
                reset(upstream[1])

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def injected(self) -> int:
        return sum(self.counts[fault] for fault in get_args(Fault))

    def start_outage(self, seconds: float) -> None:
        """Drop every open connection now, and reset new ones on accept for ``seconds``."""
        self._outage_until = asyncio.get_running_loop().time() + seconds
        self.counts["outages"] += 1
        self.counts["dropped"] += len(self._open)
        self._drop_all()

    def hold(self, pattern: str, count: int = 1) -> asyncio.Event:
        """Keep the next ``count`` requests whose head matches ``pattern`` from the server until the event is set."""
        self._hold, self._hold_left = (re.compile(pattern.encode()), asyncio.Event()), count
        return self._hold[1]

    def fail_next(self, pattern: str, fault: Fault, count: int = 1) -> None:
        """The next ``count`` requests whose request line matches ``pattern`` get ``fault``, whatever the draw."""
        self._forced += [(re.compile(pattern), fault)] * count

    def in_flight(self, pattern: str) -> int:
        """Requests received and not yet answered whose head matches ``pattern``."""
        return sum(re.search(pattern.encode(), head) is not None for head in self._in_flight.values())

    def _draw(self, request_line: str) -> tuple[Fault | None, float]:
        for at, (pattern, forced) in enumerate(self._forced):
            if pattern.search(request_line):
                del self._forced[at]
                return forced, 0.5
        if (streak := self._streaks.pop(request_line, None)) is not None:
            if streak[1] > 1:
                self._streaks[request_line] = (streak[0], streak[1] - 1)
            return streak[0], 0.5
        # Four numbers per new request whatever the outcome, so the schedule depends only on the seed and n.
        rng = self._rng
        roll, fault, cut, repeats = rng.random(), rng.choice(self.faults), rng.random(), rng.randrange(self.max_streak)
        chosen = roll < self.fault_rate and self.only.search(request_line) is not None
        if not chosen or (self.max_faults is not None and self.injected >= self.max_faults):
            return None, cut
        if repeats:
            self._streaks[request_line] = (fault, repeats)
        return fault, cut

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._open[writer] = upstream = None
        try:
            if asyncio.get_running_loop().time() < self._outage_until:
                self.counts["refused"] += 1
                return
            while (request := await self._next_request(reader, served=upstream is not None)) is not None:
                self.counts["requests"] += 1
                self.request_lines.append(request.first_line)
                self._in_flight[writer] = request.raw
                fault, cut = self._draw(request.first_line)
                if upstream is None:
                    self._open[writer] = upstream = await asyncio.open_connection(*self._upstream)
                if await self._exchange(request, fault, cut, (reader, writer), upstream):
                    return
                del self._in_flight[writer]
                if self.close_after is not None:
                    self.counts["closed_after_answer"] += 1
                    writer.close()  # a FIN after the answer: the reset in ``finally`` finds it closed
                    await writer.wait_closed()
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a side went away: the client sees its connection end, as with a real server
        finally:
            self._handlers.discard(task)
            self._open.pop(writer, None)
            self._in_flight.pop(writer, None)
            reset(writer)
            if upstream is not None:
                reset(upstream[1])

    async def _next_request(self, reader: asyncio.StreamReader, *, served: bool) -> Message | None:
        """The next request's head; with ``idle_drop_s``, on a connection idle that long after an answer, ``None``
        once the client gives up on it, having read (and dropped) all it sent meanwhile."""
        if self.idle_drop_s is None or not served:
            return await read_head(reader)
        try:
            async with asyncio.timeout(self.idle_drop_s):
                return await read_head(reader)
        except TimeoutError:
            self.counts["idle_dropped"] += 1
            self.idle_dropped.set()
            while await reader.read(65536):
                pass  # a black hole, until the client closes
            return None

    async def _exchange(
        self, request: Message, fault: Fault | None, cut: float, client: Connection, upstream: Connection
    ) -> bool:
        """One request; True when the connection must end (a fault, or the server closes it)."""
        (reader, writer), (up_reader, up_writer) = client, upstream
        head = request.raw
        if request.headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            head = b"".join(line for line in head.splitlines(True) if not line.lower().startswith(b"expect:"))
        if fault == "reset":
            self.counts["reset"] += 1
            length = 0 if request.chunked else int(request.headers.get("content-length", 0))
            partial = head + await reader.readexactly(int(length * cut)) if length else head[: int(len(head) * cut)]
            up_writer.write(partial)
            await up_writer.drain()
            return True
        body = await read_body(reader, request)
        if fault == "corrupt" and body and not request.chunked:
            self.counts["corrupt"] += 1
            at = min(int(len(body) * cut), len(body) - 1)
            body = body[:at] + bytes([body[at] ^ 0xFF]) + body[at + 1 :]
        if fault in ("slowdown", "internal_error"):
            self.counts[fault] += 1
            writer.write(SLOWDOWN if fault == "slowdown" else INTERNAL_ERROR)
            await writer.drain()
            return False
        if fault == "stall":
            self.counts["stall"] += 1
            await reader.read()  # until the client gives up and closes
            return True
        if self._hold is not None and self._hold_left > 0 and self._hold[0].search(head):
            self._hold_left -= 1
            self.counts["held"] += 1
            await self._hold[1].wait()
        up_writer.write(head + body)
        await up_writer.drain()
        while (response := await read_head(up_reader)) is not None and response.first_line.split()[1].startswith("1"):
            pass  # an interim answer the client did not ask us for
        if response is None:
            raise ConnectionResetError("the server closed the connection without answering")
        bodiless = request.first_line.startswith("HEAD ") or response.first_line.split()[1] in {"204", "304"}
        response_body = b"" if bodiless else await read_body(up_reader, response, until_eof=True)
        if fault == "lose_response":
            self.counts["lose_response"] += 1
            return True
        self.counts["forwarded"] += 1
        if self.close_after == "header":
            response = Message(response.raw[:-2] + b"Connection: close\r\n\r\n", response.first_line, response.headers)
        writer.write(response.raw + response_body)
        await writer.drain()
        delimited = bodiless or response.chunked or "content-length" in response.headers
        return "close" in response.headers.get("connection", "").lower() or not delimited
