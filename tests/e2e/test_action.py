"""The GitHub Action's step, run the way the runner runs it, against the real server; and the JSON summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.conftest import read_bucket
from tests.e2e.test_upload import run_cli
from tests.trees import make_tree
from tools.seaweedfs import S3Server

ACTION_SCRIPT = Path(__file__).parents[2] / ".github" / "action" / "upload.sh"


def test_action_step_uploads_and_writes_outputs_and_summary(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    dist = tmp_path / "dist"
    make_tree(dist, {"pkg-1.0-py3-none-any.whl": b"wheel", "pkg-1.0.tar.gz": b"sdist", "sub/other.whl": b"w2"})
    outputs, step_summary = tmp_path / "github_output", tmp_path / "step_summary"
    env = dict(
        server_env,
        INPUT_PATH=str(dist),
        INPUT_DESTINATION=f"s3://{bucket}/releases/1.0",
        INPUT_ENDPOINT_URL=s3_server.endpoint_url,
        INPUT_INCLUDE="*.whl\n",
        INPUT_EXCLUDE="sub/\n",
        INPUT_CONCURRENCY="8",
        GITHUB_OUTPUT=str(outputs),
        GITHUB_STEP_SUMMARY=str(step_summary),
        RUNNER_TEMP=str(tmp_path),
        PYTHON=sys.executable,
    )
    result = subprocess.run(["bash", str(ACTION_SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert sorted(read_bucket(s3_client, bucket)) == ["releases/1.0/pkg-1.0-py3-none-any.whl"]
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert values["uploaded"] == "1"
    assert values["bytes"] == "5"
    assert Path(values["report"]).is_file()
    assert json.loads(Path(values["report"]).read_text().splitlines()[-1])["summary"]["uploaded"] == 1
    summary = step_summary.read_text()
    assert "| uploaded | skipped | failed |" in summary
    assert "| 1 | 0 | 0 | 5 B |" in summary
    assert s3_server.secret_key not in result.stdout + result.stderr + summary + outputs.read_text()


def test_json_summary_for_any_ci(tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str]) -> None:
    make_tree(tmp_path, {"a.txt": b"abc"})
    (tmp_path / os.fsdecode(b"bad\xff")).write_bytes(b"x")
    result = run_cli(
        server_env, str(tmp_path), f"s3://{bucket}/p", "--endpoint-url", s3_server.endpoint_url,
        "--summary-format", "json",
    )  # fmt: skip
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["destination"] == f"s3://{bucket}/p/"
    assert (summary["uploaded"], summary["failed"], summary["bytes"]) == (1, 1, 3)
    assert "UTF-8" in summary["failures"][0]["error"]


def test_action_header_inputs_reach_the_objects(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    site = tmp_path / "site"
    make_tree(site, {"index.html": b"<p>", "assets/app.js": b"1"})
    env = dict(
        server_env,
        INPUT_PATH=str(site),
        INPUT_DESTINATION=f"s3://{bucket}/www",
        INPUT_ENDPOINT_URL=s3_server.endpoint_url,
        INPUT_HEADER_RULES="*.html:Cache-Control: no-cache\n*.html:Content-Type: text/html; charset=utf-8\n",
        INPUT_CACHE_CONTROL="max-age=31536000, immutable",
        GITHUB_OUTPUT=str(tmp_path / "github_output"),
        GITHUB_STEP_SUMMARY=str(tmp_path / "step_summary"),
        RUNNER_TEMP=str(tmp_path),
        PYTHON=sys.executable,
    )
    result = subprocess.run(["bash", str(ACTION_SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    index = s3_client.head_object(Bucket=bucket, Key="www/index.html")
    assert (index["ContentType"], index["CacheControl"]) == ("text/html; charset=utf-8", "no-cache")
    app = s3_client.head_object(Bucket=bucket, Key="www/assets/app.js")
    assert (app["ContentType"], app["CacheControl"]) == ("text/javascript", "max-age=31536000, immutable")


def _action(tmp_path: Path, server_env: dict[str, str], s3_server: S3Server, **inputs: str) -> dict[str, str]:
    outputs = tmp_path / "github_output"
    outputs.unlink(missing_ok=True)
    env = dict(
        server_env,
        INPUT_ENDPOINT_URL=s3_server.endpoint_url,
        GITHUB_OUTPUT=str(outputs),
        GITHUB_STEP_SUMMARY=str(tmp_path / "step_summary"),
        RUNNER_TEMP=str(tmp_path),
        XDG_CACHE_HOME=str(tmp_path / "fresh-runner-cache"),  # a fresh runner: no state file
        PYTHON=sys.executable,
        **{f"INPUT_{name.upper()}": value for name, value in inputs.items()},
    )
    result = subprocess.run(["bash", str(ACTION_SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return dict(line.split("=", 1) for line in outputs.read_text().splitlines())


def test_action_republishes_by_content_deletes_and_passes_args(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    site = tmp_path / "site"
    make_tree(site, {"index.html": b"<p>1</p>", "old.html": b"gone", "app.js": b"js", "app.js.map": b"map"})
    where = {"path": str(site), "destination": f"s3://{bucket}/www"}
    first = _action(tmp_path, server_env, s3_server, **where, args="--exclude '*.map' --metadata 'team=web site'")
    assert first["uploaded"] == "3"
    assert s3_client.head_object(Bucket=bucket, Key="www/app.js")["Metadata"]["team"] == "web site"

    # The next workflow run: a fresh checkout (every mtime new), one page changed, one removed.
    (site / "old.html").unlink()
    (site / "index.html").write_bytes(b"<p>2</p>")
    for path in site.iterdir():
        os.utime(path, (2_000_000_000, 2_000_000_000))
    dry = _action(tmp_path, server_env, s3_server, **where, delete="true", dry_run="true")
    assert (dry["would_delete"], dry["deleted"]) == ("1", "0")
    assert "www/old.html" in read_bucket(s3_client, bucket)

    capped = dict(where, delete="true", max_delete="5", args="--exclude '*.map'")
    second = _action(tmp_path, server_env, s3_server, **capped)
    assert (second["uploaded"], second["skipped"], second["deleted"]) == ("1", "1", "1")
    assert sorted(read_bucket(s3_client, bucket)) == ["www/app.js", "www/index.html"]
    assert read_bucket(s3_client, bucket)["www/index.html"][0] == b"<p>2</p>"
