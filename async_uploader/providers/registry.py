"""Which provider serves a destination: a URL scheme (``s3``, ``az``) names it.

A provider is a callable that opens a ``Connection`` (clients, pools, credentials) from ``ConnectOptions``, as an
async context manager; the connection then gives one ``ObjectStore`` per bucket or container. The built-in
providers are imported only when their scheme is used, so the core install needs none of the Azure SDK. Another
package adds a scheme without a patch, through an entry point::

    [project.entry-points."async_uploader.providers"]
    gs = "my_package.gcs:connect"
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final, Protocol, cast

from ..errors import ConfigError
from .base import ObjectStore

ENTRY_POINT_GROUP: Final = "async_uploader.providers"
BUILTIN_PROVIDERS: Final = {
    "s3": "async_uploader.providers.s3:connect",
    "az": "async_uploader.providers.azure:connect",
}


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """How to reach a store, whatever the cloud: each provider reads what applies to it and ignores the rest."""

    max_connections: int
    connect_timeout_s: float
    read_timeout_s: float
    endpoint_url: str | None = None
    """S3: an S3-compatible endpoint (default AWS). Azure: the account URL, ``https://ACCOUNT.blob.core.windows.net``."""
    region: str | None = None
    profile: str | None = None
    request_payer: str | None = None
    """S3: ``requester`` on a requester-pays bucket: every request carries ``x-amz-request-payer: requester``. A
    provider without requester pays (Azure) refuses a connection that asks for it."""
    lean: bool = True
    """S3: send requests on the direct signed-request path (``--lean on``); off: every request through aiobotocore."""
    client: Any | None = None
    """S3: an aiobotocore S3 client the application owns (and closes): the connection's requests go through it."""
    session: Any | None = None
    """S3: an aiobotocore session the application owns, which the connection creates its clients from."""


class Connection(Protocol):
    """One open connection to a cloud account, shared by every run of an ``Uploader``."""

    def store(self, container: str) -> ObjectStore:
        """The store of one bucket (S3) or container (Azure) over this connection."""
        ...


Provider = Callable[[ConnectOptions], AbstractAsyncContextManager[Connection]]


@functools.cache
def _installed() -> dict[str, str]:
    """Scheme -> ``module:attribute``: the built-ins, then (overriding none of them) those of installed packages."""
    from importlib.metadata import entry_points  # ~25 ms to import: only when a scheme is not built in

    found = dict(BUILTIN_PROVIDERS)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name.lower(), point.value)
    return found


def schemes() -> list[str]:
    """Every scheme a destination may use, built-in or installed."""
    return sorted(_installed())


def _module_path(scheme: str) -> str | None:
    # A built-in scheme needs no scan of every installed package's metadata (tens of milliseconds, on the loop).
    return BUILTIN_PROVIDERS.get(scheme) or _installed().get(scheme)


def check_scheme(scheme: str) -> None:
    """A ``ConfigError`` unless some provider serves ``scheme``."""
    if _module_path(scheme) is None:
        known = ", ".join(f"{name}://" for name in schemes())
        raise ConfigError(
            f"no provider for {scheme}:// destinations (known: {known}); "
            f"a package can add one through the {ENTRY_POINT_GROUP!r} entry points"
        )


def provider_for(scheme: str) -> Provider:
    """The provider of ``scheme``, imported now; a ``ConfigError`` if it is unknown or cannot be loaded."""
    check_scheme(scheme)
    module_name, _, attribute = str(_module_path(scheme)).partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"the {scheme}:// provider ({module_name}) cannot be imported: {exc}") from exc
    provider = getattr(module, attribute, None)
    if not callable(provider):
        raise ConfigError(f"the {scheme}:// provider {module_name}:{attribute} is not a callable")
    return cast(Provider, provider)
