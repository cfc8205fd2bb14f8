"""Run one command from a small process and write its ``wait4`` rusage as JSON: a minimal GNU ``time``.

Why not ``Popen`` + ``wait4`` straight from the benchmark: on Linux a child's ``ru_maxrss`` includes the
memory it had before ``exec``, and a child of the benchmark starts as a copy of the benchmark (with
``vfork``, as Python uses, it is the benchmark's own peak RSS). ``/bin/true`` launched from a process that
once touched 300 MiB reports 311 MiB. Forked from this script instead (run with ``python -S -I`` and
importing almost nothing), a child starts from about 5 MiB, below every tool we measure.

Usage: ``python -S -I launch.py RESULT.json PROGRAM [ARG...]`` with PROGRAM an absolute path; the
environment, stdin, stdout and stderr pass through to PROGRAM unchanged. Stdlib only, so it runs under
any interpreter.
"""

from __future__ import annotations

import os
import sys
import time

EXIT_EXEC_FAILED = 127


def main() -> int:
    result_path, argv = sys.argv[1], sys.argv[2:]
    started = time.monotonic()
    pid = os.fork()  # fork, not vfork: the child's pre-exec memory is this small process's current pages
    if pid == 0:
        try:
            os.execve(argv[0], argv, os.environ)
        except OSError as err:
            os.write(2, f"launch.py: cannot run {argv[0]}: {err}\n".encode())
        os._exit(EXIT_EXEC_FAILED)
    _pid, status, usage = os.wait4(pid, 0)
    wall_s = time.monotonic() - started
    import json  # only now, so the child never carries it

    result = {
        "exit_code": os.waitstatus_to_exitcode(status),
        "wall_s": wall_s,
        "user_s": usage.ru_utime,
        "system_s": usage.ru_stime,
        "max_rss_kib": usage.ru_maxrss,
    }
    with open(result_path, "w") as out:
        json.dump(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
