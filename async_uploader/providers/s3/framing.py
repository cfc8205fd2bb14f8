"""HTTP/1.1 answers as bytes: where a head ends, what it says, where the body ends (``Content-Length``, chunked,
or the end of the connection), for the direct path's client (``http``)."""

from __future__ import annotations

from dataclasses import dataclass


class TransportError(Exception):
    """No usable answer: the connection failed, was reset or closed early, timed out, or spoke no HTTP/1.1."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    """Lower-case names; a repeated header keeps its last value."""
    body: bytes


class Framing:
    """Where the body of the response being read ends."""

    LENGTH, CHUNKED, UNTIL_CLOSE = range(3)


def proxy_refusal(status: int, headers: dict[str, str], with_credentials: bool) -> str:
    """What a proxy's refusal (of a tunnel, or of a request it should have forwarded) means, in one line."""
    if status == 407 and with_credentials:
        return "the proxy refused the credentials in its URL (407 Proxy Authentication Required)"
    if status == 407:
        return "the proxy needs credentials (407 Proxy Authentication Required): give them in its URL"
    return f"the proxy refused the connection ({status})"


def parse_head(head: bytes) -> tuple[int, dict[str, str], bool]:
    """A head without its blank line: the status, the headers (lower-case names), whether it is HTTP/1.0."""
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


def body_framing(status: int, headers: dict[str, str]) -> tuple[int, int]:
    """How the body of an answer with this head ends (a ``Framing``), and its length for ``Framing.LENGTH``."""
    if status in (204, 304):
        return Framing.LENGTH, 0
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return Framing.CHUNKED, 0
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise TransportError(f"invalid Content-Length in the answer: {length[:40]!r}")
        return Framing.LENGTH, int(length)
    return Framing.UNTIL_CLOSE, 0


def parse_chunked(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
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
