"""Start and stop Azurite, Microsoft's Azure Storage emulator, for tests of the Azure provider.

Azurite comes from the npm registry: ``ensure_azurite`` installs it once into a local folder (``.azurite/`` at
the repository root, gitignored, reused afterwards), so a fresh machine needs only Node and npm. Only the blob
service is started, on a free loopback port, with the well-known development account, and its data in a
temporary directory. Stdlib-only, like ``tools/seaweedfs.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tools.seaweedfs import _free_ports, _log_tail, _responds, _stop

if TYPE_CHECKING:
    from collections.abc import Iterator

AZURITE_VERSION = "3.37.0"
"""3.37 is the first to read the Python SDK's blob batch (a multipart boundary with ``=``): ``--delete``'s."""
AZURITE_PACKAGE = f"azurite@{AZURITE_VERSION}"
INSTALL_DIR = Path(__file__).resolve().parent.parent / ".azurite"
INSTALL_TIMEOUT_S = 600.0
# Azurite's published development account: the same name and key on every machine, never a secret.
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_HOST = "127.0.0.1"
_POLL_INTERVAL_S = 0.1
_ENTRY = Path("node_modules", "azurite", "dist", "src", "blob", "main.js")


@dataclass(frozen=True, slots=True)
class BlobServer:
    """Everything a client needs to reach the emulator's blob service."""

    account_url: str
    account: str
    key: str
    data_dir: Path

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};"
            f"BlobEndpoint={self.account_url};"
        )

    def env(self) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}


def missing_tools() -> str | None:
    """Why Azurite cannot be installed and run here, or ``None``."""
    absent = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    return f"{' and '.join(absent)} not found on PATH (Azurite needs Node.js)" if absent else None


def ensure_azurite(install_dir: Path = INSTALL_DIR) -> Path:
    """Install Azurite into ``install_dir`` unless it is there already; return its blob server's entry script.

    A file lock keeps parallel sessions from running two installs into the same folder.
    """
    entry = install_dir / _ENTRY
    install_dir.mkdir(parents=True, exist_ok=True)
    with (install_dir / ".install-lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not entry.is_file() or _installed_version(install_dir) != AZURITE_VERSION:
            npm = shutil.which("npm")
            if npm is None:
                raise RuntimeError(missing_tools() or "npm not found")
            done = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(install_dir), AZURITE_PACKAGE],
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
                check=False,
            )
            if done.returncode != 0 or not entry.is_file():
                tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
                raise RuntimeError(f"npm install {AZURITE_PACKAGE} failed ({done.returncode}):\n{tail}")
    return entry


def _installed_version(install_dir: Path) -> str | None:
    try:
        return str(json.loads((install_dir / "node_modules/azurite/package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def _wait_ready(proc: subprocess.Popen[bytes], url: str, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while _responds(url) is None:  # any HTTP answer (an auth error included) means it is serving
        if proc.poll() is not None:
            raise RuntimeError(f"azurite exited with code {proc.returncode} during startup:\n{_log_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"Azurite not ready after {timeout_s:g} s; log tail:\n{_log_tail(log)}")
        time.sleep(_POLL_INTERVAL_S)


@contextlib.contextmanager
def running_azurite(
    data_dir: Path | None = None, *, startup_timeout_s: float = 60.0, stop_timeout_s: float = 5.0
) -> Iterator[BlobServer]:
    """Yield a ready blob service on a free loopback port; stopped (and its data removed) on exit."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError(missing_tools() or "node not found")
    entry = ensure_azurite()
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="azurite-")))
        data_dir = data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        (port,) = _free_ports(1)
        server = BlobServer(f"http://{_HOST}:{port}/{DEV_ACCOUNT}", DEV_ACCOUNT, DEV_KEY, data_dir)
        log_path = data_dir / "azurite.log"
        log = stack.enter_context(log_path.open("wb"))
        command = [
            node,
            str(entry),
            "--blobHost",
            _HOST,
            "--blobPort",
            str(port),
            "--skipApiVersionCheck",  # the SDK may be newer than the emulator
            "--disableProductStyleUrl",
            "--disableTelemetry",
            "--silent",
            # Metadata and blobs in memory: several times faster than its on-disk database on a busy machine,
            # and nothing to clean up. Its debug log and working directory stay in ``data_dir``.
            "--inMemoryPersistence",
        ]
        proc = subprocess.Popen(
            command,
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_ready(proc, server.account_url + "?comp=list", startup_timeout_s, log_path)
            yield server
        finally:
            _stop(proc, stop_timeout_s)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    """Run Azurite in the foreground for manual poking with the CLI."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data-dir", type=Path, help="keep data here (default: temporary, deleted on exit)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with running_azurite(args.data_dir) as server:
        for name, value in server.env().items():
            print(f"export {name}={shlex.quote(value)}")
        print(f"# blob service at {server.account_url}; Ctrl-C to stop", file=sys.stderr, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
