"""moto's S3 server, in this process on a free loopback port: the second S3 implementation the tests run against.

It hides other mistakes than SeaweedFS does: it returns no checksums (the whole-object check cannot confirm
anything), closes the connection after every answer, and takes any credentials.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from moto.server import ThreadedMotoServer

from tools.seaweedfs import S3Server

ACCESS_KEY = SECRET_KEY = "testing"
REGION = "us-east-1"


@contextmanager
def running_moto(data_dir: Path) -> Iterator[S3Server]:
    """moto's server until the block ends, described as the SeaweedFS fixture describes its server (``data_dir``
    is only for that shape: moto keeps everything in memory)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Server(f"http://{host}:{port}", ACCESS_KEY, SECRET_KEY, REGION, data_dir)
    finally:
        server.stop()
