"""The network settings botocore honours, for the direct path: proxies, the trust store, a client certificate.

botocore decides a client's proxies once, from its endpoint URL: its config's ``proxies`` if given, else the
environment's (``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY``, either case, read by urllib's ``getproxies`` and
``proxy_bypass``); each request then takes the proxy of its URL's scheme. It verifies TLS against one CA bundle:
``ca_bundle``/``AWS_CA_BUNDLE``, else its default (certifi's, or the ``cacert.pem`` it ships), never the system's
store. The direct path does the same, or, where it cannot (a proxy that is not plain ``http://``: TLS to the
proxy, SOCKS), leaves the connection to aiobotocore (``direct_path_refusal``).
"""

from __future__ import annotations

import base64
import os
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from ...errors import ConfigError

ClientCert = str | tuple[str, str] | None


@dataclass(frozen=True, slots=True)
class ProxyRoute:
    """Where a pool's connections go instead of the origin: an ``http://`` proxy, and the ``Proxy-Authorization``
    its URL's credentials make (botocore's rule: both a user name and a password, Basic)."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """``host:port``, for messages: never the credentials."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """A connection's network settings, as botocore would apply them to its requests.

    ``verify``: a CA bundle path, ``True`` for botocore's default bundle, ``False`` for no verification.
    ``proxies``: scheme -> proxy URL, as botocore settled them for the connection's endpoint; ``None`` when the
    endpoint is not known yet (AWS itself): the environment's, decided per origin as botocore would for it.
    """

    verify: bool | str = True
    proxies: Mapping[str, str] | None = field(default=None, repr=False)
    client_cert: ClientCert = None

    def _proxies_for(self, origin: str) -> Mapping[str, str]:
        return self.proxies if self.proxies is not None else environment_proxies(origin)

    def proxy_for(self, origin: str) -> ProxyRoute | None:
        """The proxy a request to ``origin`` goes through, or ``None`` for a direct connection.

        Called once per origin (a pool's creation), never per request. ``ValueError`` for a proxy the direct path
        cannot use (``direct_path_refusal`` says so before any request).
        """
        proxy = self._proxies_for(origin).get(urlsplit(origin).scheme)
        if not proxy:
            return None
        parts = urlsplit(_fixed_proxy_url(proxy))
        if parts.scheme != "http" or not parts.hostname or "://" in parts.netloc + parts.path:  # socks5://...
            raise ValueError("only http:// proxies are used by the direct path")
        authorization = None
        if parts.username and parts.password:
            pair = f"{unquote(parts.username)}:{unquote(parts.password)}".encode()
            authorization = "Basic " + base64.b64encode(pair).decode()
        return ProxyRoute(parts.hostname, parts.port or 80, authorization)

    def direct_path_refusal(self, origins: tuple[str, ...]) -> str | None:
        """Why the direct path cannot send to ``origins`` as botocore would (then aiobotocore sends), or ``None``."""
        for origin in origins:
            try:
                self.proxy_for(origin)
            except ValueError as exc:
                return f"{exc}, and the proxy for {urlsplit(origin).scheme}:// requests is not one"
        return None


def _fixed_proxy_url(proxy: str) -> str:
    """botocore's ``ProxyConfiguration._fix_proxy_url``: a proxy given without a scheme is an http:// one."""
    if proxy.startswith(("http:", "https:")):
        return proxy
    return "http:" + proxy if proxy.startswith("//") else "http://" + proxy


def environment_proxies(url: str) -> dict[str, str]:
    """botocore's ``get_environ_proxies``: urllib's proxies, none if ``NO_PROXY`` covers the URL's host.

    urllib.request costs ~40 ms to import: on Linux and the like, where the environment is the only source, it is
    imported only when some ``*_proxy`` variable is set.
    """
    if sys.platform not in ("darwin", "win32") and not any(name.lower().endswith("_proxy") for name in os.environ):
        return {}
    from urllib.request import getproxies, proxy_bypass

    try:
        if proxy_bypass(urlsplit(url).netloc):
            return {}
    except (TypeError, OSError):  # as botocore: a failing bypass check means no bypass
        pass
    return dict(getproxies())


def default_ca_bundle() -> str:
    """botocore's default CA bundle (``botocore.httpsession.get_cert_path(True)``): certifi's if installed, else
    the one botocore ships."""
    try:
        from certifi import where
    except ImportError:
        import importlib.util

        spec = importlib.util.find_spec("botocore")
        origin = spec.origin if spec is not None else None
        return os.path.join(os.path.dirname(origin or ""), "cacert.pem")
    return str(where())


def check_ca_bundle(verify: bool | str) -> None:
    """A ``ConfigError`` for a CA bundle that cannot be read: a missing path or a directory."""
    if not isinstance(verify, str):
        return
    if os.path.isdir(verify):
        raise ConfigError(f"the CA bundle {verify} (AWS_CA_BUNDLE or ca_bundle) is a directory, not a file")
    if not os.path.isfile(verify):
        raise ConfigError(f"the CA bundle {verify} (AWS_CA_BUNDLE or ca_bundle) does not exist")


def ssl_context(verify: bool | str, client_cert: ClientCert = None) -> ssl.SSLContext:
    """The TLS settings botocore would use: its CA bundle (a path, or its default one for ``True``), or no
    verification for ``False``; the client certificate, if any, either way."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else default_ca_bundle())
    if isinstance(client_cert, tuple):
        context.load_cert_chain(client_cert[0], keyfile=client_cert[1])
    elif client_cert:
        context.load_cert_chain(client_cert)
    return context


def client_network(client: Any) -> NetworkSettings:
    """An aiobotocore client's network settings: what its HTTP session verifies against, the proxies botocore
    settled for it (its config's, else the environment's for its endpoint), its client certificate.

    Read from private attributes (there is no public accessor), each with the safe default: the config's
    ``proxies``, where the session's cannot be read.
    """
    session = getattr(getattr(client, "_endpoint", None), "http_session", None)
    verify = getattr(session, "_verify", True)
    proxies = getattr(getattr(session, "_proxy_config", None), "_proxies", None)
    if not isinstance(proxies, Mapping):
        configured = getattr(getattr(getattr(client, "meta", None), "config", None), "proxies", None)
        endpoint = str(getattr(getattr(client, "meta", None), "endpoint_url", "") or "")
        proxies = configured if isinstance(configured, Mapping) else environment_proxies(endpoint)
    cert, key = getattr(session, "_cert_file", None), getattr(session, "_key_file", None)
    client_cert: ClientCert = (cert, key) if cert and key else cert if isinstance(cert, str) else None
    return NetworkSettings(verify if isinstance(verify, bool | str) else True, dict(proxies), client_cert)


def endpoint_network(verify: bool | str, endpoint_url: str | None) -> NetworkSettings:
    """The settings of a connection whose clients this process creates (no ``proxies`` in their config): the
    environment's proxies for ``endpoint_url``, or decided per origin where no endpoint is given."""
    return NetworkSettings(verify, environment_proxies(endpoint_url) if endpoint_url else None)
