"""Who re-publishes, and how: for each tool, an unmeasured first publish and the measured second one.

Every tool publishes the original tree with its own command first, so the objects it then compares against
are the ones it wrote itself (its metadata, its part size), and re-publishes the mutated tree (see
``mutation.py``) with the same command into the same bucket. Peers run their ``sync`` command, the one
their documentation gives for this job, with the same parallelism as in the main benchmark (``uploaders.py``).
Our re-publish runs as a fresh CI runner does: with an empty cache folder, so no state file from the first
publish; the content comparison is ``--compare COMPARE_MODE``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tools.bench.peers import PeerInstall
from tools.bench.uploaders import PEER_CONCURRENCY, Invocation, UploadJob, ours, rclone_remote_env, tool_env
from tools.seaweedfs import S3Server

COMPARE_MODE = "checksum"
"""What our re-publish passes to ``--compare``: the one switch of this scenario (``--compare`` overrides it)."""
OUR_FULL = "ours-full"
OUR_NOOP = "ours-noop"
OUR_REPUBLISH = "ours-republish"


@dataclass(frozen=True, slots=True)
class RepublishJob:
    """Publish ``original`` to ``s3://bucket/prefix/``, then re-publish ``mutated`` there."""

    original: Path
    mutated: Path
    bucket: str
    prefix: str
    server: S3Server
    scratch_dir: Path
    cache_dir: Path
    """Our first publish's ``XDG_CACHE_HOME`` (its state file lives there)."""
    fresh_cache_dir: Path
    """Our re-publish's ``XDG_CACHE_HOME``: empty, as on a new runner."""
    compare: str = COMPARE_MODE

    def upload_job(self, source: Path, cache_dir: Path) -> UploadJob:
        return UploadJob(source, self.bucket, self.prefix, self.server, self.scratch_dir, cache_dir)


@dataclass(frozen=True, slots=True)
class RepublishSteps:
    """What to run: ``first`` unmeasured (None: the bucket starts empty), then ``measured``.

    ``mutated`` says which tree the measured run reads, so which tree the bucket must match afterwards; when it
    is the mutated one, its mtimes are set to now between the two steps.
    """

    first: Invocation | None
    measured: Invocation
    mutated: bool


def ours_full(job: RepublishJob, peers: PeerInstall) -> RepublishSteps:
    """Reference: the whole mutated tree into an empty bucket, as a first publish."""
    return RepublishSteps(None, ours(job.upload_job(job.mutated, job.cache_dir), peers), mutated=True)


def ours_noop(job: RepublishJob, peers: PeerInstall) -> RepublishSteps:
    """Reference: the same command again over the unchanged tree, from the machine that has the state file."""
    first = ours(job.upload_job(job.original, job.cache_dir), peers)
    return RepublishSteps(first, first, mutated=False)


def ours_republish(job: RepublishJob, peers: PeerInstall) -> RepublishSteps:
    """The job: the mutated tree from a runner with no state file, the content deciding (``--compare``)."""
    first = ours(job.upload_job(job.original, job.cache_dir), peers)
    again = ours(job.upload_job(job.mutated, job.fresh_cache_dir), peers)
    return RepublishSteps(first, Invocation((*again.argv, "--compare", job.compare), again.env), mutated=True)


def _aws_sync(job: RepublishJob, peers: PeerInstall, source: Path) -> Invocation:
    argv = (
        str(peers.executables["aws"]), "s3", "sync", str(source), f"s3://{job.bucket}/{job.prefix}",
        "--endpoint-url", job.server.endpoint_url, "--only-show-errors",
    )  # fmt: skip
    upload = job.upload_job(source, job.cache_dir)
    return Invocation(argv, tool_env(upload, AWS_CONFIG_FILE=str(job.scratch_dir / "aws-config")))


def aws_sync(job: RepublishJob, peers: PeerInstall) -> RepublishSteps:
    """``aws s3 sync``: uploads a file whose size differs or whose mtime is newer than the object."""
    return RepublishSteps(_aws_sync(job, peers, job.original), _aws_sync(job, peers, job.mutated), mutated=True)


def _s5cmd_sync(job: RepublishJob, peers: PeerInstall, source: Path) -> Invocation:
    argv = (
        str(peers.executables["s5cmd"]), "--endpoint-url", job.server.endpoint_url, "--log", "error",
        "--numworkers", str(PEER_CONCURRENCY), "sync", f"{source}/", f"s3://{job.bucket}/{job.prefix}/",
    )  # fmt: skip
    return Invocation(argv, tool_env(job.upload_job(source, job.cache_dir)))


def s5cmd_sync(job: RepublishJob, peers: PeerInstall) -> RepublishSteps:
    """``s5cmd sync``: like the AWS CLI's, size and mtime decide."""
    return RepublishSteps(_s5cmd_sync(job, peers, job.original), _s5cmd_sync(job, peers, job.mutated), mutated=True)


def _rclone_sync(job: RepublishJob, peers: PeerInstall, source: Path) -> Invocation:
    argv = (
        str(peers.executables["rclone"]), "sync", str(source), f"bench:{job.bucket}/{job.prefix}", "--checksum",
        "--transfers", str(PEER_CONCURRENCY), "--checkers", str(PEER_CONCURRENCY), "--config", "",
    )  # fmt: skip
    upload = job.upload_job(source, job.cache_dir)
    return Invocation(argv, tool_env(upload, **rclone_remote_env(upload)))


def rclone_sync(job: RepublishJob, peers: PeerInstall) -> RepublishSteps:
    """``rclone sync --checksum``: size and MD5 decide (the ETag, or the MD5 rclone stored in a multipart
    object's metadata, which takes a HEAD to read)."""
    return RepublishSteps(_rclone_sync(job, peers, job.original), _rclone_sync(job, peers, job.mutated), mutated=True)


# In table order: the job first, then our references, then the peers.
REPUBLISHERS: dict[str, Callable[[RepublishJob, PeerInstall], RepublishSteps]] = {
    OUR_REPUBLISH: ours_republish,
    OUR_FULL: ours_full,
    OUR_NOOP: ours_noop,
    "aws": aws_sync,
    "s5cmd": s5cmd_sync,
    "rclone": rclone_sync,
}
OUR_REPUBLISHERS = (OUR_REPUBLISH, OUR_FULL, OUR_NOOP)


def labels(compare: str) -> dict[str, str]:
    """How each row is named in the table."""
    return {
        OUR_REPUBLISH: f"async-uploader --compare {compare}, no state",
        OUR_FULL: "async-uploader full upload (reference)",
        OUR_NOOP: "async-uploader no-op re-run with state, unchanged tree (reference)",
        "aws": "aws s3 sync",
        "s5cmd": "s5cmd sync",
        "rclone": "rclone sync --checksum",
    }
