"""A fault-injecting HTTP/1.1 proxy for end-to-end tests: it sits between the uploader and the S3 server.

Each request is read whole (head, then a ``Content-Length`` or chunked body) and then, by a seeded schedule,
forwarded to the server with its response relayed back, or answered with a fault. The nth request always gets
the nth draw of ``random.Random(seed)``; which request is the nth depends on the order requests arrive in.
A request that draws a fault gets the same fault on its next 0 to ``max_streak - 1`` tries too (retries are
recognised by their request line): botocore makes two attempts itself, so only a streak of two or more reaches
the uploader's own retry layer.

Faults: ``reset`` sends a part of the body on to the server, then resets both connections (the client sees a
reset mid-body, the server a truncated request); ``slowdown`` answers 503 SlowDown without forwarding;
``stall`` reads the request and never answers, until the client gives up (set a short read timeout);
``lose_response`` forwards the request, lets the server act on it, then resets the client instead of answering.
``start_outage(seconds)`` drops every open connection and, for that long, resets new ones as soon as they are
accepted (a connection-level outage; stopping the real server gives the "connection refused" flavour).

``Expect: 100-continue`` is answered by the proxy and not forwarded (``Expect`` is never signed). The client
sends bodies with ``Content-Length``; chunked bodies, either way, are relayed with their framing unchanged.
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
from typing import Final, Literal
from urllib.parse import urlsplit

Fault = Literal["reset", "slowdown", "stall", "lose_response"]
FAULTS: Final[tuple[Fault, ...]] = ("reset", "slowdown", "stall")
SLOWDOWN_XML: Final = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass(frozen=True, slots=True)
class Message:
    """A request or response head: raw bytes (through the blank line), first line, lower-cased headers."""

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
    """The body as framed on the wire; a message with neither length nor chunking has none, or (a response)
    runs to the end of the connection."""
    if head.chunked:
        framed: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            framed.append(size_line)
            if int(size_line.split(b";")[0], 16) == 0:
                break
            framed.append(await reader.readexactly(int(size_line.split(b";")[0], 16) + 2))
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
    """``async with FaultProxy(upstream_url, seed=1, fault_rate=0.2) as proxy:`` then point clients at ``proxy.url``.

    ``fault_rate`` may be changed at any time (0 lets everything through); ``only`` (a regex) limits faults to
    matching request lines, ``max_faults`` caps how many are injected. ``counts`` tallies requests, what was
    forwarded, each fault injected, and connections ``refused`` or ``dropped`` by an outage.
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
    ) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.fault_rate = fault_rate
        self.faults = tuple(faults)
        self.max_streak = max_streak
        self.only = re.compile(only)
        self.max_faults = max_faults
        self._streaks: dict[str, tuple[Fault, int]] = {}
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[object]] = set()
        self._outage_until = 0.0

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the proxy first"
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for handler in list(self._handlers):
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def injected(self) -> int:
        return sum(self.counts[name] for name in ("reset", "slowdown", "stall", "lose_response"))

    @property
    def in_outage(self) -> bool:
        return asyncio.get_running_loop().time() < self._outage_until

    def start_outage(self, seconds: float) -> None:
        """Drop every open connection now, and reset new ones on accept for ``seconds``."""
        self._outage_until = asyncio.get_running_loop().time() + seconds
        self.counts["outages"] += 1
        self.counts["dropped"] += len(self._clients)
        for writer in list(self._clients):
            reset(writer)

    def _draw(self, request_line: str) -> tuple[Fault | None, float]:
        if (streak := self._streaks.pop(request_line, None)) is not None:
            if streak[1] > 1:
                self._streaks[request_line] = (streak[0], streak[1] - 1)
            return streak[0], 0.5
        # Four numbers per new request whatever the outcome, so the schedule depends only on the seed and n.
        roll, fault, cut = self._rng.random(), self._rng.choice(self.faults), self._rng.random()
        repeats = self._rng.randrange(self.max_streak)
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
        self._clients.add(writer)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            if self.in_outage:
                self.counts["refused"] += 1
                return
            while (request := await read_head(reader)) is not None:
                self.counts["requests"] += 1
                fault, cut = self._draw(request.first_line)
                upstream = upstream or await asyncio.open_connection(*self._upstream)
                if await self._exchange(request, fault, cut, reader, writer, upstream):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # either side went away: the client sees its connection end, as it would with a real server
        finally:
            self._clients.discard(writer)
            self._handlers.discard(task)
            reset(writer)
            if upstream is not None:
                reset(upstream[1])

    async def _exchange(
        self,
        request: Message,
        fault: Fault | None,
        cut: float,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> bool:
        """One request; returns True when the connection must end (a fault, or the server closes it)."""
        head = request.raw
        if request.headers.get("expect", "").lower() == "100-continue":
            writer.write(CONTINUE)
            head = b"".join(line for line in head.splitlines(keepends=True) if not line.lower().startswith(b"expect:"))
        up_reader, up_writer = upstream
        if fault == "reset":
            self.counts["reset"] += 1
            # Never the whole request: the server must not act on it (``lose_response`` is the fault for that).
            length = 0 if request.chunked else int(request.headers.get("content-length", 0))
            partial = head + await reader.readexactly(int(length * cut)) if length else head[: int(len(head) * cut)]
            up_writer.write(partial)
            await up_writer.drain()
            return True
        body = await read_body(reader, request)
        if fault == "slowdown":
            self.counts["slowdown"] += 1
            writer.write(
                b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(SLOWDOWN_XML), SLOWDOWN_XML)
            )
            await writer.drain()
            return False
        if fault == "stall":
            self.counts["stall"] += 1
            await reader.read()  # until the client times out and closes
            return True
        up_writer.write(head + body)
        await up_writer.drain()
        response = await read_head(up_reader)
        while response is not None and response.first_line.split()[1].startswith("1"):
            response = await read_head(up_reader)  # an interim answer the client did not ask us for
        if response is None:
            raise ConnectionResetError("the server closed the connection without answering")
        status = int(response.first_line.split()[1])
        bodiless = request.first_line.startswith("HEAD ") or status in {204, 304}
        response_body = b"" if bodiless else await read_body(up_reader, response, until_eof=True)
        if fault == "lose_response":
            self.counts["lose_response"] += 1
            return True
        self.counts["forwarded"] += 1
        writer.write(response.raw + response_body)
        await writer.drain()
        delimited = bodiless or response.chunked or "content-length" in response.headers
        return "close" in response.headers.get("connection", "").lower() or not delimited
