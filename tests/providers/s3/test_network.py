"""The direct path's network settings against botocore's own functions for the same inputs: proxy selection,
``NO_PROXY``, proxy credentials, the default CA bundle, a client's settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.httpsession import ProxyConfiguration, get_cert_path
from botocore.utils import get_environ_proxies

from async_uploader.errors import ConfigError
from async_uploader.providers.s3.network import (
    NetworkSettings,
    check_ca_bundle,
    client_network,
    default_ca_bundle,
    endpoint_network,
)

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "ALL_PROXY")

CASES = [
    ({"HTTP_PROXY": "http://proxy:3128"}, "http://s3.example.com:8333"),
    ({"HTTP_PROXY": "http://proxy:3128"}, "https://s3.example.com"),
    ({"HTTPS_PROXY": "http://proxy:3128"}, "https://s3.example.com"),
    ({"https_proxy": "proxy:8080"}, "https://s3.example.com"),
    ({"https_proxy": "//proxy:8080"}, "https://s3.example.com"),
    ({"http_proxy": "http://user:p%40ss@proxy:3128"}, "http://s3.example.com"),
    ({"http_proxy": "http://onlyuser@proxy:3128"}, "http://s3.example.com"),
    ({"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "example.com"}, "http://s3.example.com"),
    ({"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": ".example.com"}, "http://s3.example.com:9000"),
    ({"HTTP_PROXY": "http://proxy:3128", "no_proxy": "s3.example.com:9000"}, "http://s3.example.com:9000"),
    ({"HTTP_PROXY": "http://proxy:3128", "no_proxy": "s3.example.com:9001"}, "http://s3.example.com:9000"),
    ({"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "other.com, example.org"}, "http://s3.example.com"),
    ({"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "*"}, "http://s3.example.com"),
    ({"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "127.0.0.1"}, "http://127.0.0.1:8333"),
    ({"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "localhost"}, "http://127.0.0.1:8333"),
    ({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "amazonaws.com"}, "https://s3.us-east-1.amazonaws.com"),
    ({}, "https://s3.example.com"),
]


def botocore_choice(url: str) -> tuple[str | None, dict[str, str]]:
    """What botocore's HTTP session sends a request to ``url`` through: the proxy URL and its headers."""
    config = ProxyConfiguration(proxies=get_environ_proxies(url))
    proxy = config.proxy_url_for(url)
    return proxy, config.proxy_headers_for(proxy) if proxy else {}


@pytest.mark.parametrize(("environment", "url"), CASES)
def test_the_proxy_is_botocores(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], url: str) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    proxy, headers = botocore_choice(url)
    for network in (endpoint_network(True, url), NetworkSettings()):  # decided for the endpoint, or per origin
        route = network.proxy_for(url)
        if proxy is None:
            assert route is None
            continue
        assert route is not None
        assert (route.host, route.port) == (botocore_host_port(proxy))
        assert route.authorization == headers.get("Proxy-Authorization")
        assert "p@ss" not in repr(route)
        assert "user" not in repr(route)


def botocore_host_port(proxy: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(proxy)
    return parts.hostname or "", parts.port or 80


@pytest.mark.parametrize("proxy", ["https://proxy:3128", "socks5://proxy:1080"])
def test_a_proxy_the_direct_path_cannot_use_is_refused_before_any_request(proxy: str) -> None:
    network = NetworkSettings(proxies={"https": proxy, "http": proxy})
    assert network.direct_path_refusal(("https://s3.example.com",)) is not None
    assert NetworkSettings(proxies={"http": "http://p:1"}).direct_path_refusal(("https://s3.example.com",)) is None


def test_the_default_bundle_is_botocores() -> None:
    assert default_ca_bundle() == get_cert_path(True)


def test_a_missing_or_directory_bundle_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        check_ca_bundle(str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="is a directory"):
        check_ca_bundle(str(tmp_path))
    check_ca_bundle(True)
    check_ca_bundle(False)


async def test_a_clients_proxies_and_certificate_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import aiobotocore.session
    from aiobotocore.config import AioConfig

    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://from-environment:1")
    session = aiobotocore.session.AioSession()
    session.set_credentials("a", "b")
    config = AioConfig(proxies={"https": "http://u:pw@configured:3128"}, client_cert=("c.pem", "k.pem"))
    async with session.create_client(
        "s3", region_name="us-east-1", endpoint_url="https://s3.example.com", config=config, verify=False
    ) as client:
        network = client_network(client)
    assert network.verify is False
    assert network.client_cert == ("c.pem", "k.pem")
    route = network.proxy_for("https://s3.example.com")
    assert route is not None
    assert (route.host, route.port) == ("configured", 3128)
    assert network.proxy_for("http://s3.example.com") is None  # the config's proxies replace the environment's
