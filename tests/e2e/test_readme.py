"""The README's examples run as written, against SeaweedFS: the quick start's commands, the library snippet and the
Action step of docs/ci.md (which the README points to). Only what cannot be the same here is replaced: the bucket
and the endpoint; an example that stops working fails here, not in a newcomer's first hour."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.conftest import cli_env, new_bucket, read_bucket
from tests.e2e.test_action import ACTION_SCRIPT
from tests.trees import make_tree
from tools.seaweedfs import S3Server

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CI_PAGE = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
DIST = {"pkg-1.0-py3-none-any.whl": b"wheel", "pkg-1.0.tar.gz": b"sdist", "sub/pkg_extra-1.0.whl": b"w2"}


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def upload_commands(block: str) -> list[list[str]]:
    """The ``async-uploader upload`` commands of a shell block, split as the shell would (comments dropped, lines
    continued with a backslash joined)."""
    lines = block.replace("\\\n", " ").splitlines()
    return [shlex.split(line, comments=True) for line in lines if line.startswith("async-uploader upload")]


def piped_commands(block: str) -> list[tuple[str, list[str]]]:
    """The shell block's ``PRODUCER | async-uploader upload - ...`` lines: the producer, and the upload's argv."""
    found = []
    for line in block.replace("\\\n", " ").splitlines():
        producer, bar, upload = line.partition(" | ")
        if bar and upload.startswith("async-uploader upload -"):
            found.append((producer, shlex.split(upload, comments=True)))
    return found


def aimed_here(argv: list[str], bucket: str, endpoint: str) -> list[str]:
    """The README's command with its bucket replaced by the test's, and pointed at the test server."""
    out = [re.sub(r"^s3://[^/]+", f"s3://{bucket}", arg) for arg in argv[1:]]
    if "--endpoint-url" in out:
        out[out.index("--endpoint-url") + 1] = endpoint
    else:
        out += ["--endpoint-url", endpoint]
    return out


def test_the_quick_start_and_option_examples_upload(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    commands = [argv for block in code_blocks(README, "sh") for argv in upload_commands(block)]
    assert len(commands) >= 3  # the quick start's two, and the options' example
    make_tree(tmp_path / "build", {"index.html": b"<html>", "app.tar.gz": b"tarball"})
    make_tree(tmp_path / "data", {"a.csv": b"1,2"})
    make_tree(tmp_path / "site", {"index.html": b"<html>", "app.js.map": b"map", "node_modules/x/i.js": b"x"})
    for argv in commands:
        if "--sse" in argv:
            continue  # SeaweedFS has no KMS: the static-site example runs against moto (below)
        run_cli(aimed_here(argv, bucket, s3_server.endpoint_url), server_env, tmp_path)
    for producer, argv in [piped for block in code_blocks(README, "sh") for piped in piped_commands(block)]:
        made = subprocess.run(producer, shell=True, cwd=tmp_path, capture_output=True, check=True, timeout=60)
        run_cli(aimed_here(argv, bucket, s3_server.endpoint_url), server_env, tmp_path, stdin=made.stdout)
    keys = sorted(read_bucket(s3_client, bucket))
    assert "releases/v1/index.html" in keys
    assert "2026-11-26/a.csv" in keys
    assert "www/index.html" in keys
    assert "releases/app.tar.gz" in keys  # one file into a folder
    assert "backups/build.tgz" in keys  # stdin to a key
    assert not any(key.endswith(".map") or "node_modules" in key for key in keys)


def test_the_static_site_example_publishes_types_cache_rules_and_encryption(
    tmp_path: Path, moto_server: S3Server, moto_client: Any
) -> None:
    [argv] = [argv for block in code_blocks(README, "sh") for argv in upload_commands(block) if "--sse" in argv]
    bucket = new_bucket(moto_client)
    make_tree(tmp_path / "public", {"index.html": b"<html>", "assets/app.3f2a.js": b"js"})
    run_cli(aimed_here(argv, bucket, moto_server.endpoint_url), cli_env(moto_server, tmp_path), tmp_path)
    page = moto_client.head_object(Bucket=bucket, Key="index.html")
    asset = moto_client.head_object(Bucket=bucket, Key="assets/app.3f2a.js")
    assert (page["ContentType"], page["CacheControl"]) == ("text/html", "no-cache")
    assert (asset["ContentType"], asset["CacheControl"]) == ("text/javascript", "max-age=31536000, immutable")
    assert page["ServerSideEncryption"] == asset["ServerSideEncryption"] == "aws:kms"


def run_cli(args: list[str], env: dict[str, str], cwd: Path, stdin: bytes = b"") -> None:
    result = subprocess.run(
        [sys.executable, "-m", "async_uploader", *args, "--no-progress"],
        env=env, cwd=cwd, capture_output=True, input=stdin, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, (args, result.stderr.decode(errors="replace"))


def test_the_library_snippet_uploads_the_wheels_only(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    [snippet] = [block for block in code_blocks(README, "python") if "async_uploader.upload(" in block]
    snippet = snippet.replace('"s3://bucket/', f'"s3://{bucket}/')
    body = textwrap.indent(snippet, "    ")
    script = f"import asyncio\n\n\nasync def main():\n{body}    return result\n\n"
    script += "r = asyncio.run(main())\nprint(r.uploaded, r.skipped, r.failed, r.bytes_uploaded)\n"
    make_tree(tmp_path / "dist", DIST)
    env = {**server_env, "AWS_ENDPOINT_URL_S3": s3_server.endpoint_url}  # the snippet names no endpoint
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "0", "0", "7"]
    assert sorted(read_bucket(s3_client, bucket)) == [
        "releases/1.2.3/pkg-1.0-py3-none-any.whl",
        "releases/1.2.3/sub/pkg_extra-1.0.whl",
    ]


def test_the_action_example_of_the_ci_page_publishes_what_it_says(
    tmp_path: Path, bucket: str, s3_server: S3Server, server_env: dict[str, str], s3_client: Any
) -> None:
    steps = yaml.safe_load(code_blocks(CI_PAGE, "yaml")[0])
    [step] = [step for step in steps if str(step.get("uses", "")).endswith("/async-uploader@v1")]
    inputs = {name: str(value) for name, value in step["with"].items()}
    destination = re.sub(r"^s3://[^/]+/\$\{\{ github.sha \}\}", f"s3://{bucket}/0123abc", inputs["destination"])
    make_tree(tmp_path / inputs["path"], DIST)
    outputs = tmp_path / "github_output"
    env = dict(
        server_env,
        INPUT_PATH=str(tmp_path / inputs["path"]),
        INPUT_DESTINATION=destination,
        INPUT_ENDPOINT_URL=s3_server.endpoint_url,
        INPUT_INCLUDE=inputs.get("include", ""),
        INPUT_EXCLUDE=inputs.get("exclude", ""),
        GITHUB_OUTPUT=str(outputs),
        RUNNER_TEMP=str(tmp_path),
        PYTHON=sys.executable,
    )
    result = subprocess.run(["bash", str(ACTION_SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # "include: *.whl": only the wheels go up (the sdist does not), as the page's comment says.
    wheels = ["0123abc/pkg-1.0-py3-none-any.whl", "0123abc/sub/pkg_extra-1.0.whl"]
    assert sorted(read_bucket(s3_client, bucket)) == wheels
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert (values["uploaded"], values["interrupted"]) == ("2", "false")
    assert json.loads(Path(values["report"]).read_text().splitlines()[-1])["summary"]["uploaded"] == 2
