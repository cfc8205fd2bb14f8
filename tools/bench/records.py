"""The values a benchmark run produces: one ``RunRecord`` per measured upload, one ``BenchInfo`` per run.

Kept apart from the runner and the report so both depend on these and not on each other; the JSON file is
``asdict`` of these, so what is written is exactly what the tables were computed from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MB = 1_000_000  # throughput is quoted in decimal MB/s, as every peer reports it


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """What one finished run cost the client, and the server's CPU over the same wall-clock window."""

    exit_code: int
    timed_out: bool
    wall_s: float
    user_s: float
    system_s: float
    max_rss_kib: int
    server_cpu_s: float

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.system_s


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One (tool, dataset, repetition): the measurements, and whether the bucket then held every file."""

    tool: str
    dataset: str
    rep: int
    bucket: str
    files: int
    total_bytes: int
    usage: ProcessUsage
    objects_found: int
    bytes_found: int
    note: str = ""

    @property
    def ok(self) -> bool:
        """Exit code 0 is not enough: the listing must show one object per file and every byte."""
        return (
            self.usage.exit_code == 0
            and not self.usage.timed_out
            and self.objects_found == self.files
            and self.bytes_found == self.total_bytes
        )

    @property
    def files_per_s(self) -> float:
        return self.files / self.usage.wall_s if self.usage.wall_s > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.total_bytes / MB / self.usage.wall_s if self.usage.wall_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class BenchInfo:
    """Everything needed to reproduce or quote a run: the command, the settings, the versions, the machine."""

    command: str
    started: str
    mode: str
    scale: float
    seed: int
    repeat: int
    tools: tuple[str, ...]
    datasets: dict[str, dict[str, object]]
    versions: dict[str, str]
    machine: dict[str, str]
    notes: list[str] = field(default_factory=list)
