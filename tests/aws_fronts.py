"""Fronts that make a local S3 server (SeaweedFS) answer some requests the way AWS does: a bucket in another
region, and roles with restricted rights.

Each front reads a request whole, then either answers it itself or forwards it to the server and relays the
answer. ``RegionFront`` refuses a request signed for any region but the bucket's, as S3 does: 301
``PermanentRedirect`` or 400 ``AuthorizationHeaderMalformed`` (with ``x-amz-bucket-region``; a HEAD has no body).
``RoleFront`` answers 403 ``AccessDenied`` to the operations its role may not call.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Sequence
from types import TracebackType
from typing import Final, Literal, Self
from urllib.parse import urlsplit

from tests.fault_proxy import Message, read_body, read_head, reset

Refusal = Literal["301", "400"]
Operation = Literal[
    "HeadBucket",
    "ListObjectsV2",
    "ListMultipartUploads",
    "HeadObject",
    "PutObject",
    "CreateMultipartUpload",
    "AbortMultipartUpload",
]
_SCOPE: Final = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/s3/aws4_request")


def _answer(status: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{name}: {value}" for name, value in headers.items())]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def operation_of(request: Message) -> str:
    """The S3 operation of a path-style request to a bucket (enough for the fronts' rules)."""
    method, target = request.first_line.split()[:2]
    path, _, query = target.partition("?")
    names = {pair.partition("=")[0] for pair in query.split("&") if pair}
    object_request = path.strip("/").count("/") > 0
    if method == "HEAD":
        return "HeadObject" if object_request else "HeadBucket"
    if method == "GET" and not object_request:
        return "ListMultipartUploads" if "uploads" in names else "ListObjectsV2"
    if method == "DELETE" and "uploadId" in names:
        return "AbortMultipartUpload"
    if method == "POST":
        return "CompleteMultipartUpload" if "uploadId" in names else "CreateMultipartUpload"
    if method == "GET" and "uploadId" in names:
        return "ListParts"
    return "UploadPart" if "partNumber" in names else f"{method.title()}Object"


class Front:
    """``async with SomeFront(upstream_url) as front:``, clients use ``front.url``. ``requests`` lists every
    request as ``(request line, Host, the region it was signed for)``."""

    def __init__(self, upstream: str, *, host: str = "127.0.0.1") -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._host = host
        self.requests: list[tuple[str, str, str]] = []
        self.counts: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[object]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._port = 0

    @property
    def port(self) -> int:
        assert self._port, "start the front first"
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            reset(writer)
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def refusal(self, request: Message, signed_for: str) -> bytes | None:
        """The front's own answer to ``request``, or ``None`` to forward it."""
        return None

    def upstream_head(self, request: Message, body: bytes) -> bytes:
        """The head sent on to the server: the client's, without ``Expect`` (answered here)."""
        return b"".join(line for line in request.raw.splitlines(True) if not line.lower().startswith(b"expect:"))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while (request := await read_head(reader)) is not None:
                scope = _SCOPE.search(request.headers.get("authorization", ""))
                signed_for = scope.group(1) if scope else ""
                self.requests.append((request.first_line, request.headers.get("host", ""), signed_for))
                refused = self.refusal(request, signed_for)
                expects = request.headers.get("expect", "").lower() == "100-continue"
                if refused is not None:
                    self.counts["refused"] += 1
                    if not expects:  # with 100-continue, the body never comes: answered, then closed
                        await read_body(reader, request)
                    writer.write(refused)
                    await writer.drain()
                    if expects:
                        return
                    continue
                if expects:
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = await read_body(reader, request)
                if upstream is None:
                    upstream = await asyncio.open_connection(*self._upstream)
                if await self._forward(request, body, writer, upstream):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            reset(writer)
            if upstream is not None:
                reset(upstream[1])

    async def _forward(
        self,
        request: Message,
        body: bytes,
        writer: asyncio.StreamWriter,
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> bool:
        """Relay one request and its answer; True when the connection must end. The Host header is the
        server's: what the client signed (a virtual-hosted name, say) is checked, not re-signed."""
        up_reader, up_writer = upstream
        head = self.upstream_head(request, body)
        up_writer.write(head + body)
        await up_writer.drain()
        while (response := await read_head(up_reader)) is not None and response.first_line.split()[1].startswith("1"):
            pass
        if response is None:
            raise ConnectionResetError("the server closed the connection without answering")
        bodiless = request.first_line.startswith("HEAD ") or response.first_line.split()[1] in {"204", "304"}
        response_body = b"" if bodiless else await read_body(up_reader, response, until_eof=True)
        self.counts["forwarded"] += 1
        writer.write(response.raw + response_body)
        await writer.drain()
        delimited = bodiless or response.chunked or "content-length" in response.headers
        return "close" in response.headers.get("connection", "").lower() or not delimited


class RegionFront(Front):
    """The bucket is in ``region``: a request signed for any other is refused as S3 refuses it (``how``)."""

    def __init__(self, upstream: str, region: str, how: Refusal, **options: str) -> None:
        super().__init__(upstream, **options)
        self.region = region
        self.how = how

    def refusal(self, request: Message, signed_for: str) -> bytes | None:
        if signed_for == self.region:
            return None
        headers = {"x-amz-bucket-region": self.region, "Content-Type": "application/xml"}
        head = request.first_line.startswith("HEAD ")
        if self.how == "301":
            xml = (
                "<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be "
                "addressed using the specified endpoint.</Message><Endpoint>s3.test</Endpoint></Error>"
            )
            return _answer("301 Moved Permanently", headers, b"" if head else xml.encode())
        xml = (
            "<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is malformed; the "
            f"region '{signed_for}' is wrong; expecting '{self.region}'</Message><Region>{self.region}</Region></Error>"
        )
        return _answer("400 Bad Request", headers, b"" if head else xml.encode())


class RoleFront(Front):
    """Credentials whose role may not call ``denied``: each such request is answered 403 ``AccessDenied``."""

    def __init__(self, upstream: str, denied: Sequence[Operation], **options: str) -> None:
        super().__init__(upstream, **options)
        self.denied = frozenset(denied)

    def refusal(self, request: Message, signed_for: str) -> bytes | None:
        operation = operation_of(request)
        if operation not in self.denied:
            return None
        self.counts[f"denied {operation}"] += 1
        xml = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        return _answer(
            "403 Forbidden", {"Content-Type": "application/xml"}, b"" if operation.startswith("Head") else xml
        )


class VirtualHostFront(Front):
    """A store that takes virtual-hosted requests (``Host: {bucket}.{domain}``) before a server that takes only
    path-style ones: each is checked to be virtual-hosted, then sent on path style, signed again with the server's
    keys (the front plays the store, which checks the client's signature; this one checks where it went)."""

    def __init__(self, upstream: str, domain: str, keys: tuple[str, str], region: str) -> None:
        super().__init__(upstream, host=domain)
        self.domain, self._keys, self._region = domain, keys, region

    def upstream_head(self, request: Message, body: bytes) -> bytes:
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        method, target, _ = request.first_line.split(" ", 2)
        name = request.headers["host"].rpartition(":")[0]
        if name.endswith(f".{self.domain}"):
            target = f"/{name[: -len(self.domain) - 1]}{target}"
        upstream_host = f"{self._upstream[0]}:{self._upstream[1]}"
        kept = {
            name: value
            for name, value in request.headers.items()
            if name not in {"authorization", "x-amz-date", "host", "expect"}
        }
        signed = AWSRequest(method=method, url=f"http://{upstream_host}{target}", headers=kept, data=body)
        S3SigV4Auth(Credentials(*self._keys), "s3", self._region).add_auth(signed)
        lines = [f"{method} {target} HTTP/1.1", f"Host: {upstream_host}"]
        lines += [f"{name}: {value}" for name, value in signed.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
