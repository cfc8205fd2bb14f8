"""What the options of how objects are stored accept, and the one line that refuses the rest."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from async_uploader.config import UploadConfig
from async_uploader.errors import ConfigError
from async_uploader.header_options import parse_expires, parse_tags, read_sse_c_key
from async_uploader.options import make_config
from async_uploader.providers.base import CONTENT_HEADER_FIELDS
from async_uploader.runner import run
from tests.memory_store import MemoryStore


def config(tmp_path: Path, **options: Any) -> UploadConfig:
    return make_config(tmp_path, "s3://bucket", use_state=False, **options)


@pytest.mark.parametrize("acl", ["public-read", "public-read-write", "authenticated-read", "aws-exec-read"])
def test_a_public_acl_is_refused(tmp_path: Path, acl: str) -> None:
    with pytest.raises(ConfigError, match="never makes data public"):
        config(tmp_path, acl=acl)


@pytest.mark.parametrize("name", ["size", "MTime", "mode"])
def test_the_uploaders_own_metadata_cannot_be_overridden(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="uploader's own"):
        config(tmp_path, metadata=[f"{name}=1"])


def test_metadata_flags_and_mappings(tmp_path: Path) -> None:
    assert config(tmp_path, metadata=["team=web", "empty="]).metadata == (("team", "web"), ("empty", ""))
    assert config(tmp_path, metadata={"a": "1"}).metadata == (("a", "1"),)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        config(tmp_path, metadata=["novalue"])


def test_kms_options_need_kms_and_sse_c_excludes_sse(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="need --sse aws:kms"):
        config(tmp_path, sse_kms_key_id="alias/x")
    key = tmp_path / "key"
    key.write_bytes(b"k" * 32)
    with pytest.raises(ConfigError, match="exclude each other"):
        config(tmp_path, sse="AES256", sse_c_key_file=key)
    with pytest.raises(ConfigError, match="--sse must be one of"):
        config(tmp_path, sse="aes256")
    made = config(tmp_path, sse="aws:kms", sse_kms_context='{"project": "x"}')
    assert made.sse_kms_context is not None
    assert json.loads(base64.b64decode(made.sse_kms_context)) == {"project": "x"}


def test_an_sse_c_key_file_holds_32_bytes_or_their_base64(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.write_bytes(bytes(range(32)))
    text = tmp_path / "text"
    text.write_text(base64.b64encode(bytes(range(32))).decode() + "\n")
    assert read_sse_c_key(raw) == read_sse_c_key(text) == bytes(range(32))
    short = tmp_path / "short"
    short.write_bytes(b"too short")
    with pytest.raises(ConfigError, match="256-bit key") as refused:
        read_sse_c_key(short)
    assert "too short" not in str(refused.value)
    made = config(tmp_path, sse_c_key_file=raw)
    assert bytes(range(32)).hex() not in repr(made)
    assert str(bytes(range(32))) not in repr(made)


def test_tags_expires_tier_and_class_are_normalised(tmp_path: Path) -> None:
    assert parse_tags("project=site&env=prod x") == "project=site&env=prod%20x"
    assert parse_tags({"a b": "c/d"}) == "a%20b=c%2Fd"
    for bad in ("", "a=1&a=2", "=v", "&".join(f"k{i}=v" for i in range(11))):
        with pytest.raises(ConfigError, match="--tags"):
            parse_tags(bad)
    assert parse_expires("2030-01-01T00:00:00Z") == "Tue, 01 Jan 2030 00:00:00 GMT"
    assert parse_expires("Tue, 01 Jan 2030 00:00:00 GMT") == "Tue, 01 Jan 2030 00:00:00 GMT"
    with pytest.raises(ConfigError, match="--expires"):
        parse_expires("next tuesday")
    made = config(tmp_path, access_tier="cool", storage_class="standard_ia")
    assert (made.access_tier, made.storage_class) == ("Cool", "STANDARD_IA")
    with pytest.raises(ConfigError, match="--access-tier"):
        config(tmp_path, access_tier="Lukewarm")


def test_header_values_are_one_line_of_ascii(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--cache-control"):
        config(tmp_path, cache_control="no-cache\r\nX-Evil: 1")
    with pytest.raises(ConfigError, match="exclude each other"):
        config(tmp_path, content_type="text/plain", guess_mime_type=False)


def test_a_store_that_cannot_honour_an_option_is_refused_before_any_request(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"a")
    store = MemoryStore(header_fields=CONTENT_HEADER_FIELDS)
    with pytest.raises(ConfigError, match=r"^--storage-class, --tags: not supported for s3:// destinations$"):
        anyio.run(run, config(tmp_path, storage_class="GLACIER", tags="a=1", cache_control="no-cache"), store)
    assert store.requests == 0
    result = anyio.run(run, config(tmp_path, cache_control="no-cache", metadata=["team=web"]), store)
    assert result.uploaded == 1
    blob = store.objects["a.txt"]
    assert (blob.headers.cache_control, blob.headers.content_type) == ("no-cache", "text/plain")
    assert blob.metadata["team"] == "web"
