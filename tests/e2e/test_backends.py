"""The same end-to-end cases against every provider, through one parametrised fixture: SeaweedFS (``s3://``) and
Azurite (``az://``), and moto for the re-run that reads metadata back (not for the rest: moto takes any
credentials, and is too slow per request for the 2000-file tree). What a user sees must not depend on the cloud:
the bytes and metadata stored, the skip of an unchanged re-run, the exit code and the one line of a bad
credential."""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path

import pytest

import async_uploader
from async_uploader.config import MIB
from tests.e2e.conftest import Backend
from tests.e2e.test_cli_features import report_records
from tests.e2e.test_upload import expected_metadata, run_cli
from tests.trees import make_tree, random_bytes, read_tree

SMALL_FILES = 2000
PART_OPTIONS = ("--part-size", "5MiB", "--multipart-threshold", "5MiB")


def build_tree(root: Path) -> int:
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    files = {f"many/d{i % 20}/file-{i}.txt": f"content {i}\n".encode() for i in range(SMALL_FILES)}
    files.update(
        {
            "empty": b"",
            "dir with spaces/also empty": b"",
            f"unicode/{nfc}.txt": b"composed",
            f"unicode/{nfd}.txt": b"decomposed",
            "unicode/日本語 ファイル.md": "本文".encode(),
            "unicode/emoji 🎉.txt": b"party",
            "big/multi-block.bin": random_bytes(11 * MIB, seed=11),
            "big/exec.sh": b"#!/bin/sh\n",
        }
    )
    make_tree(root, files)
    (root / "big/exec.sh").chmod(0o755)
    return len(files)


def assert_holds(backend: Backend, prefix: str, source: Path) -> None:
    """The destination under prefix holds exactly the source tree: same keys, bytes (by MD5) and metadata."""
    on_disk = read_tree(source)
    stored = backend.read(prefix)
    assert sorted(stored) == sorted(prefix + rel for rel in on_disk)
    for rel, data in on_disk.items():
        digest, metadata = stored[prefix + rel]
        assert digest == hashlib.md5(data).hexdigest(), rel
        assert metadata == expected_metadata(source / rel), rel


def test_cli_uploads_a_tree_then_an_unchanged_rerun_uploads_nothing(backend: Backend, tmp_path: Path) -> None:
    source = tmp_path / "src"
    count = build_tree(source)
    report = tmp_path / "first.jsonl"
    destination = backend.url("releases/v1")
    args = (str(source), destination, *backend.cli_args, *PART_OPTIONS, "--concurrency", "16")

    first = run_cli(backend.env, *args, "--report", str(report))

    assert first.returncode == 0, first.stderr
    assert f"Uploaded {count:,} files" in first.stderr
    assert_holds(backend, "releases/v1/", source)
    (big,) = (r for r in report_records(report) if r.get("path") == "big/multi-block.bin")
    assert (big["status"], big["parts"]) == ("uploaded", 3)

    again = tmp_path / "again.jsonl"
    second = run_cli(backend.env, *args, "--report", str(again))

    assert second.returncode == 0, second.stderr
    assert "Uploaded 0 files" in second.stderr
    records = [r for r in report_records(again) if "path" in r]
    assert len(records) == count
    assert {(r["status"], r["reason"]) for r in records} == {("skipped", "unchanged")}


@pytest.mark.parametrize("backend", ["seaweedfs", "azurite", "moto"], indirect=True)
async def test_library_rerun_without_state_skips_by_the_stored_metadata(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a state file the skip decision reads each object's metadata back (one HEAD each)."""
    for name, value in backend.env.items():
        monkeypatch.setenv(name, value)
    source = tmp_path / "src"
    make_tree(source, {"a.txt": b"a", "sub/b.txt": b"", "big.bin": random_bytes(5 * MIB + 7, seed=3)})
    options = {**backend.library_options, "part_size": "5MiB", "multipart_threshold": "5MiB", "use_state": False}

    first = await async_uploader.upload(source, backend.url(), **options)
    second = await async_uploader.upload(source, backend.url(), **options)

    assert (first.uploaded, first.failed, first.bytes_uploaded) == (3, 0, 5 * MIB + 8)
    assert (second.uploaded, second.skipped, second.failed) == (0, 3, 0)
    assert_holds(backend, "", source)


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("async-uploader: error: ")
    return lines[0]


def test_bad_credentials_are_exit_2_with_one_line(backend: Backend, tmp_path: Path) -> None:
    make_tree(tmp_path / "src", {"a": b"a"})
    result = run_cli(backend.bad_credentials_env, str(tmp_path / "src"), backend.url(), *backend.cli_args)
    assert result.returncode == 2, result.stderr
    assert "credentials" in _one_error_line(result.stderr)
    assert backend.secret not in result.stderr
    assert backend.read("") == {}


def test_missing_bucket_or_container_is_exit_2_with_one_line(backend: Backend, tmp_path: Path) -> None:
    make_tree(tmp_path / "src", {"a": b"a"})
    missing = f"{backend.scheme}://no-such-container-here"
    result = run_cli(backend.env, str(tmp_path / "src"), missing, *backend.cli_args)
    assert result.returncode == 2, result.stderr
    assert "does not exist" in _one_error_line(result.stderr)
