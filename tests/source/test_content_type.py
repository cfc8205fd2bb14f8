"""The Content-Type table is the package's own: the same guess whatever ``mimetypes`` finds on the machine."""

from __future__ import annotations

import mimetypes
from pathlib import Path

import pytest

from async_uploader.source.content_type import OCTET_STREAM, extension, guess_content_type

EXPECTED = {
    "index.html": "text/html",
    "a/app.JS": "text/javascript",
    "m.mjs": "text/javascript",
    "x.wasm": "application/wasm",
    "p.webp": "image/webp",
    "p.avif": "image/avif",
    "f.woff2": "font/woff2",
    "d.json": "application/json",
    "app.js.map": "application/json",
    "README.md": "text/markdown",
    "c.yaml": "application/yaml",
    "c.yml": "application/yaml",
    "s.css": "text/css",
    "i.svg": "image/svg+xml",
    "archive.tar.gz": "application/gzip",
    "unknown.zzz": OCTET_STREAM,
    "Makefile": OCTET_STREAM,
    ".bashrc": OCTET_STREAM,
    "dir.d/noext": OCTET_STREAM,
}


def test_common_web_types() -> None:
    assert {key: guess_content_type(key) for key in EXPECTED} == EXPECTED


def test_extension_of_a_key() -> None:
    assert extension("a/b/app.min.JS") == "js"
    assert extension("a/.hidden") == ""
    assert extension("a.d/file") == ""
    assert extension("trailing.") == ""


def test_a_hostile_os_table_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What the Windows registry did to aws-cli (.js as text/plain), and a /etc/mime.types with odd ideas.
    hostile = tmp_path / "mime.types"
    hostile.write_text("text/plain js mjs\napplication/x-evil html css json\ntext/x-markdown md\n")
    monkeypatch.setattr(mimetypes, "knownfiles", [str(hostile)])
    monkeypatch.setattr(mimetypes, "types_map", dict(mimetypes.types_map))
    mimetypes.init([str(hostile)])
    mimetypes.add_type("text/plain", ".wasm")
    try:
        assert mimetypes.guess_type("x.js")[0] == "text/plain"  # the machine's table is hostile indeed
        assert {key: guess_content_type(key) for key in EXPECTED} == EXPECTED
    finally:
        mimetypes.init()
