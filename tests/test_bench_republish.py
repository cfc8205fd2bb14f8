"""The re-publish benchmark's fresh checkout (mutation) and its reading of the server's request counters."""

from __future__ import annotations

import os
from pathlib import Path

from tools.bench.datasets import Dataset
from tools.bench.mutation import MULTIPART_SIZE_BYTES, choose_changes, ensure_mutated, list_files, mutate_tree
from tools.bench.records import ProcessUsage
from tools.bench.republish import RepublishRecord
from tools.bench.republish_cli import republish_table
from tools.bench.server_metrics import BucketCounters, parse_bucket_counters

OLD_MTIME_S = 1_000_000_000.0


def _files(count: int, size: int = 100) -> list[tuple[str, int]]:
    return [(f"d{i % 7}/f{i:05d}.bin", size) for i in range(count)]


def _make_tree(root: Path, sizes: dict[str, int]) -> None:
    for index, (name, size) in enumerate(sizes.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes([index % 251]) * size)
        os.utime(path, (OLD_MTIME_S, OLD_MTIME_S))


def _tree_sizes() -> dict[str, int]:
    sizes = {f"small/s{i:03d}.bin": 1000 + i for i in range(298)}
    sizes |= {"big/a.bin": MULTIPART_SIZE_BYTES + 5, "big/b.bin": MULTIPART_SIZE_BYTES}
    return sizes


def test_one_percent_change_half_keep_their_size_and_the_rest_grow() -> None:
    changes = choose_changes(_files(1000), seed=7)
    assert len(changes) == 10
    assert len({change.path for change in changes}) == 10
    assert [change.same_size for change in changes] == [True] * 5 + [False] * 5
    for change in changes:
        assert (change.new_size == change.old_size) is change.same_size
        assert change.same_size or change.new_size > change.old_size


def test_the_choice_is_a_function_of_the_seed() -> None:
    assert choose_changes(_files(1000), seed=7) == choose_changes(_files(1000), seed=7)
    assert choose_changes(_files(1000), seed=7) != choose_changes(_files(1000), seed=8)


def test_a_multipart_sized_file_is_always_among_the_changes_and_keeps_its_size() -> None:
    files = [*_files(500), ("big/only.bin", MULTIPART_SIZE_BYTES)]
    for seed in range(20):
        first = choose_changes(files, seed=seed)[0]
        assert first.path == "big/only.bin"
        assert first.same_size


def test_a_tiny_tree_still_gets_one_change_of_each_kind() -> None:
    changes = choose_changes(_files(10), seed=1)
    assert [change.same_size for change in changes] == [True, False]


def test_mutating_changes_exactly_the_chosen_files_and_renews_every_mtime(tmp_path: Path) -> None:
    sizes = _tree_sizes()
    _make_tree(tmp_path, sizes)
    before = {name: (tmp_path / name).read_bytes() for name in sizes}
    changes = mutate_tree(tmp_path, seed=3)
    assert len(changes) == 3  # 1% of 300
    assert changes[0].path.startswith("big/")
    changed = {change.path: change for change in changes}
    for name, old in before.items():
        path = tmp_path / name
        assert path.stat().st_mtime > OLD_MTIME_S, name
        new = path.read_bytes()
        if name not in changed:
            assert new == old, name
            continue
        assert new != old, name
        assert len(new) == changed[name].new_size
        if changed[name].same_size:
            assert len(new) == len(old)
        else:
            assert new[: len(old)] == old  # grown: only the tail is new


def test_two_copies_mutated_with_one_seed_are_identical(tmp_path: Path) -> None:
    sizes = {f"f{i:03d}.bin": 500 + i for i in range(150)}
    for copy in ("one", "two"):
        _make_tree(tmp_path / copy, sizes)
        mutate_tree(tmp_path / copy, seed=11)
    for name in sizes:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_the_mutated_copy_leaves_the_dataset_alone_and_is_made_once(tmp_path: Path) -> None:
    sizes = {f"f{i:03d}.bin": 500 + i for i in range(150)}
    root = tmp_path / "small-abc"
    _make_tree(root, sizes)
    dataset = Dataset("small", root, len(sizes), sum(sizes.values()))
    tree = ensure_mutated(dataset, seed=5)
    assert tree.dataset.root != root
    assert all((root / name).read_bytes() == bytes([i % 251]) * size for i, (name, size) in enumerate(sizes.items()))
    assert tree.dataset.total_bytes == sum(size for _, size in list_files(tree.dataset.root))
    assert tree.dataset.total_bytes > dataset.total_bytes
    stamp = tree.dataset.root.stat().st_mtime_ns
    again = ensure_mutated(dataset, seed=5)
    assert again == tree
    assert tree.dataset.root.stat().st_mtime_ns == stamp  # reused, not copied again


# A /metrics page as SeaweedFS 4.48 writes it (trimmed): two buckets, a probe with no bucket.
METRICS_PAGE = """\
# HELP SeaweedFS_s3_request_total Counter of s3 requests.
# TYPE SeaweedFS_s3_request_total counter
SeaweedFS_s3_request_total{bucket="",code="403",type="LIST"} 1
SeaweedFS_s3_request_total{bucket="b1",code="200",type="DELETE"} 1
SeaweedFS_s3_request_total{bucket="b1",code="200",type="GET"} 7
SeaweedFS_s3_request_total{bucket="b1",code="404",type="GET"} 2
SeaweedFS_s3_request_total{bucket="b1",code="200",type="LIST"} 3
SeaweedFS_s3_request_total{bucket="b1",code="200",type="POST"} 4
SeaweedFS_s3_request_total{bucket="b1",code="200",type="PUT"} 120
SeaweedFS_s3_request_total{bucket="b1",code="200",type="COPY"} 5
SeaweedFS_s3_request_total{bucket="b2",code="200",type="PUT"} 999
SeaweedFS_s3_time_to_first_byte_millisecond_bucket{bucket="b1",type="GET",le="+Inf"} 2
SeaweedFS_s3_time_to_first_byte_millisecond_sum{bucket="b1",type="GET"} 1
SeaweedFS_s3_time_to_first_byte_millisecond_count{bucket="b1",type="GET"} 2
SeaweedFS_s3_bucket_traffic_received_bytes_total{bucket="b1"} 1.048576e+06
SeaweedFS_s3_bucket_traffic_received_bytes_total{bucket="b2"} 5
SeaweedFS_s3_uploaded_objects{bucket="b1"} 118
SeaweedFS_s3_in_flight_upload_bytes 0
"""


def test_request_counts_by_class_for_one_bucket() -> None:
    counters = parse_bucket_counters(METRICS_PAGE, "b1")
    assert counters.requests == {
        "PUT": 120,
        "POST": 4,
        "LIST": 3,
        "DELETE": 1,
        "GET": 2,  # object bodies sent
        "HEAD+": 7,  # the other reads: 9 GET-class requests minus the 2 downloads
        "COPY": 5,  # a class the table does not know yet still counts
    }
    assert counters.total_requests == 142
    assert counters.errors == 2
    assert counters.bytes_received == 1024 * 1024
    assert counters.objects_written == 118


def test_a_bucket_with_no_requests_counts_zero() -> None:
    counters = parse_bucket_counters(METRICS_PAGE, "nobody")
    assert counters.total_requests == 0
    assert (counters.errors, counters.bytes_received, counters.objects_written) == (0, 0, 0)


def test_a_run_counts_the_difference_between_two_readings() -> None:
    before = parse_bucket_counters(METRICS_PAGE, "b1")
    after = parse_bucket_counters(
        METRICS_PAGE.replace('type="PUT"} 120', 'type="PUT"} 150').replace('"b1"} 118', '"b1"} 148'), "b1"
    )
    delta = after.minus(before)
    assert delta.requests["PUT"] == 30
    assert delta.total_requests == 30
    assert delta.objects_written == 30
    assert delta.bytes_received == 0


def _record(tool: str, wall_s: float, *, stale: int = 0) -> RepublishRecord:
    usage = ProcessUsage(0, False, wall_s, user_s=1.0, system_s=0.5, max_rss_kib=40 * 1024, server_cpu_s=1.0)
    counters = BucketCounters({"PUT": 10, "POST": 0, "GET": 0, "HEAD+": 2, "LIST": 1, "DELETE": 0}, 0, 2**20, 10)
    return RepublishRecord(tool, "small", 0, "b", 100, 1000, usage, counters, 100, 1000, 10, stale)


def test_the_table_shows_counts_as_integers_and_a_stale_run_as_failed() -> None:
    records = [_record("ours-republish", 2.0), _record("aws", 6.0, stale=3)]
    table = republish_table(records, "small", ["ours-republish", "aws"], {})
    header, _, ours, aws = table.splitlines()
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    row = dict(zip(columns, (cell.strip() for cell in aws.strip("|").split("|")), strict=True))
    assert row["ok"] == "0/1"
    assert row["stale"] == "3"
    assert row["PUT"] == "10"
    assert row["requests"] == "13"
    assert row["MiB uploaded"] == "1.00"
    assert row["wall vs ours"] == "3.00x"
    assert "| 1/1 |" in ours
