"""One function per uploader that turns "upload this tree to this bucket" into an argv and an environment.

Each peer runs the way its documentation tells a user to upload a folder, in its quiet mode, with its
parallelism set to our default of 64 requests where it has one knob for it: raised for rclone (4) and the
AWS CLI (10), since beating a peer held back by a timid default would flatter us, and lowered for s5cmd
(256), so the comparison is of engines, not of connection counts. Part sizes stay at each tool's default.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tools.bench.peers import PeerInstall
from tools.seaweedfs import S3Server

PEER_CONCURRENCY = 64
NAIVE_THREADS = 32
OUR_TOOL = "ours"
OUR_TOOLS = (OUR_TOOL, "rerun", "rerun-nostate", "ours-botocore", "ours-asyncio", "floor")
"""Ours, ours re-run over the unchanged tree (with and without its state file), ours with --lean off and on
asyncio's own loop, and the floor of our design: no peer install needed."""
_SCRIPTS_DIR = Path(__file__).resolve().parent
# Anything inherited from the caller's shell that could point a tool at real AWS, another profile or a proxy.
_INHERITED_PREFIXES = ("AWS_", "RCLONE_", "S3_")


@dataclass(frozen=True, slots=True)
class UploadJob:
    """One upload to measure: every file below ``source`` to ``s3://bucket/prefix/<relative path>``."""

    source: Path
    bucket: str
    prefix: str
    server: S3Server
    scratch_dir: Path
    cache_dir: Path
    """The run's own ``XDG_CACHE_HOME``: where our tool keeps its state file, fresh for every run."""


@dataclass(frozen=True, slots=True)
class Invocation:
    """A process to launch; ``argv[0]`` is absolute so nothing depends on PATH."""

    argv: tuple[str, ...]
    env: dict[str, str]
    setup: tuple[Invocation, ...] = ()
    """Run first, unmeasured, in the same bucket: the first upload of a re-run benchmark."""


def tool_env(job: UploadJob, **extra: str) -> dict[str, str]:
    """The caller's environment minus anything pointing a tool elsewhere, plus the job's server and ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(_INHERITED_PREFIXES)}
    env.update(job.server.env())
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


def ours(job: UploadJob, peers: PeerInstall) -> Invocation:
    """async-uploader from the dev venv, with its defaults, exactly as a user would type it."""
    argv = (sys.executable, "-m", "async_uploader", "upload", str(job.source), f"s3://{job.bucket}/{job.prefix}")
    return Invocation(
        (*argv, "--endpoint-url", job.server.endpoint_url, "-q"), tool_env(job, XDG_CACHE_HOME=str(job.cache_dir))
    )


def ours_rerun(job: UploadJob, peers: PeerInstall) -> Invocation:
    """The same upload again over an unchanged tree, from the machine that made the first (its state file)."""
    first = ours(job, peers)
    return Invocation(first.argv, first.env, setup=(first,))


def ours_rerun_without_state(job: UploadJob, peers: PeerInstall) -> Invocation:
    """The same re-run from a machine that never uploaded the tree (a fresh CI runner): ``--no-state``."""
    first = ours(job, peers)
    return Invocation((*first.argv, "--no-state"), first.env, setup=(first,))


def ours_botocore(job: UploadJob, peers: PeerInstall) -> Invocation:
    """async-uploader with ``--lean off``: file bodies through aiobotocore, as before the lean data path."""
    invocation = ours(job, peers)
    return Invocation((*invocation.argv, "--lean", "off"), invocation.env)


def ours_asyncio(job: UploadJob, peers: PeerInstall) -> Invocation:
    """async-uploader on asyncio's own event loop even where uvloop is installed."""
    invocation = ours(job, peers)
    return Invocation(invocation.argv, {**invocation.env, "ASYNC_UPLOADER_EVENT_LOOP": "asyncio"})


def floor(job: UploadJob, peers: PeerInstall) -> Invocation:
    """Our walker, reader and lean PUT per file without the pipeline around them: see ``floor_upload.py``."""
    argv = (
        sys.executable, str(_SCRIPTS_DIR / "floor_upload.py"), str(job.source), job.bucket, job.prefix,
        "--endpoint-url", job.server.endpoint_url, "--concurrency", str(PEER_CONCURRENCY),
    )  # fmt: skip
    return Invocation(argv, tool_env(job))


def s5cmd(job: UploadJob, peers: PeerInstall) -> Invocation:
    """``cp 'SRC/*' DEST/`` keeps the relative paths below SRC; ``--log error`` drops its line per file."""
    argv = (
        str(peers.executables["s5cmd"]), "--endpoint-url", job.server.endpoint_url, "--log", "error",
        "--numworkers", str(PEER_CONCURRENCY), "cp", f"{job.source}/*", f"s3://{job.bucket}/{job.prefix}/",
    )  # fmt: skip
    return Invocation(argv, tool_env(job))


def rclone(job: UploadJob, peers: PeerInstall) -> Invocation:
    """The remote ``bench:`` lives only in environment variables; ``--config ""`` keeps any rclone.conf out."""
    argv = (
        str(peers.executables["rclone"]), "copy", str(job.source), f"bench:{job.bucket}/{job.prefix}",
        "--transfers", str(PEER_CONCURRENCY), "--checkers", str(PEER_CONCURRENCY), "--config", "",
    )  # fmt: skip
    return Invocation(argv, tool_env(job, **rclone_remote_env(job)))


def rclone_remote_env(job: UploadJob) -> dict[str, str]:
    """The rclone remote ``bench:`` pointing at the job's server, as environment variables."""
    return {
        "RCLONE_CONFIG_BENCH_TYPE": "s3",
        "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
        "RCLONE_CONFIG_BENCH_ENDPOINT": job.server.endpoint_url,
        "RCLONE_CONFIG_BENCH_REGION": job.server.region,
        "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": job.server.access_key,
        "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": job.server.secret_key,
    }


def write_aws_config(scratch_dir: Path) -> Path:
    """The AWS CLI takes its transfer concurrency (default 10) only from a config file, so give it one."""
    path = scratch_dir / "aws-config"
    path.write_text(f"[default]\ns3 =\n    max_concurrent_requests = {PEER_CONCURRENCY}\n")
    return path


def aws(job: UploadJob, peers: PeerInstall) -> Invocation:
    """``aws s3 cp --recursive``, the command most users reach for first."""
    argv = (
        str(peers.executables["aws"]), "s3", "cp", "--recursive", str(job.source), f"s3://{job.bucket}/{job.prefix}",
        "--endpoint-url", job.server.endpoint_url, "--only-show-errors",
    )  # fmt: skip
    return Invocation(argv, tool_env(job, AWS_CONFIG_FILE=str(job.scratch_dir / "aws-config")))


def obstore(job: UploadJob, peers: PeerInstall) -> Invocation:
    """obstore (Rust object_store) driven from Python: see ``obstore_upload.py``."""
    script = _SCRIPTS_DIR / "obstore_upload.py"
    argv = (
        str(peers.executables["obstore"]), str(script), str(job.source), job.bucket, job.prefix,
        "--endpoint-url", job.server.endpoint_url, "--concurrency", str(PEER_CONCURRENCY),
    )  # fmt: skip
    return Invocation(argv, tool_env(job))


def naive(job: UploadJob, peers: PeerInstall) -> Invocation:
    """boto3 in a thread pool: see ``naive_upload.py``."""
    script = _SCRIPTS_DIR / "naive_upload.py"
    argv = (
        str(peers.executables["naive"]), str(script), str(job.source), job.bucket, job.prefix,
        "--endpoint-url", job.server.endpoint_url, "--threads", str(NAIVE_THREADS),
    )  # fmt: skip
    return Invocation(argv, tool_env(job))


# In table order: ours first, then the Go tools, then the Python ones.
UPLOADERS: dict[str, Callable[[UploadJob, PeerInstall], Invocation]] = {
    OUR_TOOL: ours,
    "rerun": ours_rerun,
    "rerun-nostate": ours_rerun_without_state,
    "ours-botocore": ours_botocore,
    "ours-asyncio": ours_asyncio,
    "floor": floor,
    "s5cmd": s5cmd,
    "rclone": rclone,
    "aws": aws,
    "obstore": obstore,
    "naive": naive,
}

# Run only when named in --tools: comparisons of our own options, not peers.
OPT_IN_TOOLS: frozenset[str] = frozenset({"ours-botocore", "ours-asyncio", "floor"})

# How each tool is named in the tables; versions are listed once, above them.
LABELS: dict[str, str] = {
    OUR_TOOL: "async-uploader",
    "rerun": "async-uploader no-op re-run",
    "rerun-nostate": "async-uploader no-op re-run, no state",
    "ours-botocore": "async-uploader --lean off",
    "ours-asyncio": "async-uploader on asyncio's loop",
    "floor": "floor: our per-file work, no pipeline",
    "s5cmd": "s5cmd",
    "rclone": "rclone",
    "aws": "aws s3 cp",
    "obstore": "obstore",
    "naive": "naive boto3",
}
