"""The provider registry: schemes name providers, and an installed package adds one through an entry point."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from importlib.metadata import EntryPoint

import pytest

from async_uploader.config import parse_destination
from async_uploader.errors import ConfigError
from async_uploader.providers import registry
from async_uploader.providers.s3 import connect as s3_connect


@pytest.fixture
def installed_gs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A package that registers ``gs`` (here pointing at the S3 provider, as a stand-in), installed for one test."""
    point = EntryPoint(name="gs", value="async_uploader.providers.s3:connect", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda group: [point] if group == registry.ENTRY_POINT_GROUP else []
    )
    registry._installed.cache_clear()
    yield
    registry._installed.cache_clear()


def test_s3_is_built_in() -> None:
    assert "s3" in registry.schemes()
    assert registry.provider_for("s3") is s3_connect


def test_an_unknown_scheme_is_a_config_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"no provider for gs://.*s3://.*entry points"):
        parse_destination("gs://bucket/p")


@pytest.mark.usefixtures("installed_gs")
def test_an_entry_point_adds_a_scheme_without_a_patch() -> None:
    assert parse_destination("gs://bucket/p").scheme == "gs"
    assert registry.provider_for("gs") is s3_connect


def test_a_provider_that_cannot_be_imported_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint(name="xx", value="no_such_module_anywhere:connect", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [point])
    registry._installed.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"xx:// provider .* cannot be imported"):
            registry.provider_for("xx")
    finally:
        registry._installed.cache_clear()
