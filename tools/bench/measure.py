"""Measure one uploader process from the outside, identically for every tool, plus the server's share.

The client's numbers come from ``wait4`` (in ``launch.py``, which says why it is a separate process): the
kernel's rusage covers the child and every descendant it waited for, so CPU is the whole tool whatever it
is written in, and peak RSS is its largest process, with no sampling and no instrumentation in the tool.
The server's CPU comes from ``/proc``: a tool that makes the server work harder (more requests, smaller
parts) is not faster on a real deployment, so that cost is reported too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tools.bench.records import ProcessUsage
from tools.bench.uploaders import Invocation

_LAUNCHER = Path(__file__).resolve().parent / "launch.py"
_CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_QUIET_WINDOW_S = 0.5
_QUIET_CPU_FRACTION = 0.05


def _stat_fields(pid: str) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, which may itself hold spaces and parentheses."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone between listing and reading
        return None
    return raw[raw.rindex(")") + 2 :].split()


class ServerCpu:
    """CPU seconds used so far by every process in the sessions of the server's ``weed`` processes.

    ``running_seaweedfs`` starts weed in a session of its own, so a session id names the whole server (weed
    itself, anything it forks) and nothing else: not other weed servers on the machine, such as a test run's,
    and not us. Each process is counted once; exited children that weed reaped show up in its cutime/cstime.
    """

    def __init__(self, data_dir: Path) -> None:
        self.sessions = self._sessions_of_server(data_dir)
        if not self.sessions:
            msg = f"no weed process found with -dir={data_dir}"
            raise RuntimeError(msg)

    @staticmethod
    def _sessions_of_server(data_dir: Path) -> set[str]:
        marker = f"-dir={data_dir}".encode()
        sessions: set[str] = set()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"weed") and marker in argv:
                fields = _stat_fields(pid)
                if fields is not None:
                    sessions.add(fields[3])  # field 6 of stat: the session id
        return sessions

    def seconds(self) -> float:
        ticks = 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            fields = _stat_fields(pid)
            if fields is not None and fields[3] in self.sessions:
                ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
        return ticks / _CLOCK_TICKS_PER_S

    def wait_until_quiet(self, timeout_s: float = 30.0) -> bool:
        """Wait for the server to finish background work (bucket deletion, flushes) left by the last run.

        Otherwise that work would be billed to the next run's server CPU and slow its wall time. Returns
        False if the server was still busy after ``timeout_s``: the run goes ahead, with a note.
        """
        deadline = time.monotonic() + timeout_s
        before = self.seconds()
        while time.monotonic() < deadline:
            time.sleep(_QUIET_WINDOW_S)
            now = self.seconds()
            if now - before <= _QUIET_WINDOW_S * _QUIET_CPU_FRACTION:
                return True
            before = now
        return False


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def launcher_argv(result_path: Path, argv: tuple[str, ...]) -> list[str]:
    """Wrap ``argv`` in ``launch.py``, which forks it from a small process and reports its rusage."""
    return [sys.executable, "-S", "-I", str(_LAUNCHER), str(result_path), *argv]


def run_measured(
    invocation: Invocation, *, cwd: Path, log_path: Path, timeout_s: float, server: ServerCpu
) -> ProcessUsage:
    """Run the tool under ``launch.py``; kill its whole process group if ``timeout_s`` passes or on Ctrl-C.

    The launcher and the tool get a session of their own, so killing the group ends the tool and anything
    it started. Output goes to ``log_path``, so a chatty tool pays for writing a file, not for a terminal.
    """
    result_path = log_path.with_suffix(".usage.json")
    result_path.unlink(missing_ok=True)
    timed_out = False
    with log_path.open("wb") as log:
        server_before = server.seconds()
        started = time.monotonic()
        proc = subprocess.Popen(
            launcher_argv(result_path, invocation.argv),
            env=invocation.env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            proc.wait()
        except BaseException:  # Ctrl-C: do not leave the tool uploading on its own
            _kill_group(proc.pid)
            proc.wait()
            raise
        fallback_wall_s = time.monotonic() - started
        server_cpu_s = server.seconds() - server_before
    if not result_path.is_file():  # killed, so no rusage: report what is known
        return ProcessUsage(proc.returncode, timed_out, fallback_wall_s, 0.0, 0.0, 0, server_cpu_s)
    usage = json.loads(result_path.read_text())
    result_path.unlink()
    return ProcessUsage(
        exit_code=int(usage["exit_code"]),
        timed_out=timed_out,
        wall_s=float(usage["wall_s"]),
        user_s=float(usage["user_s"]),
        system_s=float(usage["system_s"]),
        max_rss_kib=int(usage["max_rss_kib"]),
        server_cpu_s=server_cpu_s,
    )


def rss_floor_kib(scratch_dir: Path) -> int:
    """Peak RSS that ``launch.py`` reports for a program that does nothing: below it, numbers mean nothing."""
    result_path = scratch_dir / "rss-floor.usage.json"
    true = shutil.which("true") or "/bin/true"
    subprocess.run(launcher_argv(result_path, (true,)), check=True)
    floor = int(json.loads(result_path.read_text())["max_rss_kib"])
    result_path.unlink()
    return floor
