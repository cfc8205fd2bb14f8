"""Small fronts that play the network for end-to-end tests: a forward proxy, and a TLS front with a private CA.

``ForwardProxy`` answers absolute-form HTTP requests and ``CONNECT`` tunnels, resolving the made-up names it is
given (``s3.test.invalid``) to a loopback port, so that a client can only reach them through it; it may require
Basic credentials, and counts what it saw. ``TlsFront`` terminates TLS with a certificate of a CA made in the test
(``make_ca``) and relays the bytes to a plain-HTTP server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import ipaddress
import ssl
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.fault_proxy import Message, read_body, read_head

INVALID_HOST = "s3.test.invalid"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.write_eof()


class _Front:
    """A server on a free loopback port whose connection handlers all end with it."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def _start(self, tls: ssl.SSLContext | None = None) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=tls)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
            pass
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            self._writers.discard(writer)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class ForwardProxy(_Front):
    """``async with ForwardProxy({"s3.test.invalid": 8333}) as proxy:``, clients use ``proxy.url``.

    ``names`` maps host names to loopback ports (any other name is refused with 502, so nothing leaks out);
    with ``credentials`` (``user:password``) a request without them gets 407. ``counts``: ``requests`` (absolute
    form), ``connects``, ``refused`` (407); ``targets`` lists every request line as received.
    """

    def __init__(self, names: dict[str, int], credentials: str | None = None) -> None:
        super().__init__()
        self._names = names
        self._authorization = "Basic " + base64.b64encode(credentials.encode()).decode() if credentials else None
        self.counts: Counter[str] = Counter()
        self.targets: list[str] = []

    async def __aenter__(self) -> ForwardProxy:
        await self._start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _port_of(self, authority: str) -> int | None:
        host, _, port = authority.rpartition(":")
        mapped = self._names.get(host.strip("[]").lower())
        return mapped if mapped is not None and port.isdigit() else None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstreams: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        try:
            while (request := await read_head(reader)) is not None:
                self.targets.append(request.first_line)
                method, target, _ = request.first_line.split(" ", 2)
                if self._authorization and request.headers.get("proxy-authorization") != self._authorization:
                    self.counts["refused"] += 1  # the body, if any, is not read: the connection ends here
                    writer.write(
                        b"HTTP/1.1 407 Proxy Authentication Required\r\nConnection: close\r\n"
                        b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
                    )
                    await writer.drain()
                    return
                if method == "CONNECT":
                    await self._tunnel(target, reader, writer)
                    return
                await self._forward(request, target, reader, writer, upstreams)
        finally:
            for _, upstream in upstreams.values():
                upstream.close()

    async def _tunnel(self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts["connects"] += 1
        port = self._port_of(target)
        if port is None:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()

    async def _forward(
        self,
        request: Message,
        target: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstreams: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]],
    ) -> None:
        self.counts["requests"] += 1
        lines = request.raw.decode("latin-1").split("\r\n")
        if request.headers.get("expect", "").lower() == "100-continue":
            # Answered here (the body is read whole before it is forwarded), and not forwarded.
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            lines = [line for line in lines if not line.lower().startswith("expect:")]
        body = await read_body(reader, request)
        scheme, _, rest = target.partition("://")
        authority, slash, path = rest.partition("/")
        port = self._port_of(authority if ":" in authority else f"{authority}:80")
        if scheme != "http" or port is None:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        method, _, version = lines[0].split(" ", 2)
        kept = [line for line in lines[1:] if not line.lower().startswith("proxy-")]
        head = "\r\n".join([f"{method} {slash}{path} {version}", *kept]).encode("latin-1")
        if port not in upstreams:
            upstreams[port] = await asyncio.open_connection("127.0.0.1", port)
        up_reader, up_writer = upstreams[port]
        up_writer.write(head + body)
        await up_writer.drain()
        response = await read_head(up_reader)
        if response is None:
            raise ConnectionResetError("the server closed the connection")
        bodiless = method == "HEAD" or response.first_line.split()[1] in {"204", "304"}
        response_body = b"" if bodiless else await read_body(up_reader, response, until_eof=True)
        writer.write(response.raw + response_body)
        await writer.drain()


class TlsFront(_Front):
    """``async with TlsFront(ca, upstream_port) as front:``: TLS on ``front.port``, relayed to the plain server."""

    def __init__(self, ca: CertificateAuthority, upstream_port: int) -> None:
        super().__init__()
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(ca.server_cert, ca.server_key)
        self._upstream_port = upstream_port

    async def __aenter__(self) -> TlsFront:
        await self._start(self._tls)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()


@dataclass(frozen=True)
class CertificateAuthority:
    """PEM files: the CA's certificate (the bundle a client trusts) and a server certificate it signed."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_ca(directory: Path, names: tuple[str, ...] = ("localhost", INVALID_HOST)) -> CertificateAuthority:
    """A private CA and a server certificate for ``names`` and 127.0.0.1, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "async-uploader test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    authority = CertificateAuthority(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    authority.ca_cert.write_bytes(ca.public_bytes(pem))
    authority.server_cert.write_bytes(server.public_bytes(pem))
    authority.server_key.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return authority
