"""The benchmark's tables: ratios to async-uploader, of the medians and within each round."""

from __future__ import annotations

from tools.bench.records import ProcessUsage, RunRecord
from tools.bench.report import throughput_table


def _run(tool: str, rep: int, wall_s: float, *, ok: bool = True) -> RunRecord:
    usage = ProcessUsage(0, False, wall_s, user_s=wall_s / 2, system_s=0.0, max_rss_kib=1024, server_cpu_s=1.0)
    return RunRecord(tool, "small", rep, f"{tool}-{rep}", 10, 100, usage, 10 if ok else 9, 100)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip("|").split("|")]


def _row(table: str, tool: str) -> dict[str, str]:
    """The tool's row, by column name."""
    lines = table.splitlines()
    row = next(line for line in lines if line.startswith(f"| {tool} |"))
    return dict(zip(_cells(lines[0]), _cells(row), strict=True))


def test_the_same_round_ratio_is_the_median_of_each_rounds_ratio() -> None:
    # The machine slows down round after round; the peer is 1.3x, 1.1x and 1.2x ours within the rounds, while
    # its median run (22 s) over ours (20 s) says 1.1x.
    ours = [_run("ours", 0, 10.0), _run("ours", 1, 20.0), _run("ours", 2, 40.0)]
    peer = [_run("peer", 0, 13.0), _run("peer", 1, 22.0), _run("peer", 2, 48.0)]
    table = throughput_table([*ours, *peer], "small", ["ours", "peer"], {})
    peer_row = _row(table, "peer")
    assert peer_row["wall vs ours"] == "1.10x"
    assert peer_row["same-round wall vs ours"] == "1.20 (1.10-1.30)"
    assert _row(table, "ours")["same-round wall vs ours"] == "1.00 (1.00-1.00)"


def test_a_round_without_a_passing_run_of_ours_pairs_with_nothing() -> None:
    ours = [_run("ours", 0, 10.0), _run("ours", 1, 5.0, ok=False)]
    peer = [_run("peer", 0, 15.0), _run("peer", 1, 6.0)]
    table = throughput_table([*ours, *peer], "small", ["ours", "peer"], {})
    peer_row = _row(table, "peer")
    assert peer_row["same-round wall vs ours"] == "1.50"
    assert peer_row["ok"] == "2/2"
