"""Credentials, endpoint and TLS settings, resolved as botocore resolves them, for a connection to S3.

Credentials come from botocore's standard chain (environment, shared config and profiles, SSO, container and
instance roles). Where the environment alone settles them (keys, a region and an endpoint: the common CI set-up),
botocore's session is not even imported; otherwise it is, in a worker thread. With a user-given endpoint, the
result says how the direct path reaches a bucket without any botocore client (``DirectAccess``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import anyio

from ...errors import ConfigError
from .wire import BucketEndpoint

# What botocore signs S3 requests to a custom endpoint with when no region is configured.
DEFAULT_SIGNING_REGION: Final = "us-east-1"


class FrozenCredentials(Protocol):
    access_key: str
    secret_key: str
    token: str | None


class CredentialSource(Protocol):
    """botocore's (refreshable) credentials: asked before every request, so a rotation is picked up."""

    async def get_frozen_credentials(self) -> FrozenCredentials: ...


class BotocoreCredentials:
    """botocore's own credentials (the standard chain, resolved without aiobotocore) for the direct path.

    Static credentials are read as they are. Refreshable ones (assumed roles, SSO, container and instance
    roles) refresh themselves when read close to their expiry, with a blocking request: that read, and only
    that one, goes to a worker thread.
    """

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials
        self._refresh_needed: Callable[[], bool] | None = getattr(credentials, "refresh_needed", None)

    async def get_frozen_credentials(self) -> FrozenCredentials:
        if self._refresh_needed is not None and self._refresh_needed():
            refreshed: FrozenCredentials = await anyio.to_thread.run_sync(self._credentials.get_frozen_credentials)
            return refreshed
        frozen: FrozenCredentials = self._credentials.get_frozen_credentials()
        return frozen


@dataclass(frozen=True, slots=True)
class DirectAccess:
    """What the direct path needs to reach a bucket of a user-given endpoint without any botocore client."""

    endpoint_url: str
    region: str
    credentials: CredentialSource

    def bucket_endpoint(self, bucket: str) -> BucketEndpoint:
        """Path style, as botocore addresses buckets of a custom endpoint unless a profile says
        ``addressing_style = virtual`` (then there is no ``DirectAccess``: the endpoint is learned from botocore)."""
        return BucketEndpoint.path_style(self.endpoint_url, bucket, self.region)


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a connection needs to know before any request: the secrets to scrub from messages, how to verify
    TLS (a CA bundle path, ``True`` for the default bundle, ``False`` for none), and the direct access, if any."""

    secrets: tuple[str, ...]
    verify: bool | str
    direct: DirectAccess | None


def resolve(profile: str | None, endpoint_url: str | None, region: str | None) -> Resolved:
    """The standard credential chain, the region and the CA bundle, as botocore's session resolves them.

    Runs in a worker thread: the chain may read files or ask an instance or container metadata service.
    """
    import botocore.session  # ~0.15 s: imported here, off the event loop
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    from .endpoint_data import use_trimmed_endpoint_data

    session = botocore.session.Session(profile=profile)
    use_trimmed_endpoint_data(session)
    try:
        credentials = session.get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials is not None else None
        signing_region = region or session.get_config_variable("region") or DEFAULT_SIGNING_REGION
        ca_bundle = session.get_config_variable("ca_bundle")
        s3_settings = session.get_config_variable("s3")
    except ProfileNotFound as exc:
        raise ConfigError(f"AWS profile {profile!r} not found in the shared config files") from exc
    except BotoCoreError:
        # Left to aiobotocore, which reports the same problem properly, at the preflight.
        return Resolved((), True, None)
    secrets = tuple(value for value in (frozen.secret_key, frozen.token) if value) if frozen is not None else ()
    endpoint = configured_endpoint(endpoint_url)
    direct = None
    if _virtual_hosted(s3_settings):
        # The profile's ``addressing_style = virtual``: botocore's rules decide per bucket (a name with dots
        # over https, an IP endpoint stay path style), and the direct path learns the endpoint from its request.
        endpoint = None
    if endpoint is not None and credentials is not None and frozen is not None and frozen.access_key:
        direct = DirectAccess(endpoint, str(signing_region), BotocoreCredentials(credentials))
    return Resolved(secrets, ca_bundle if isinstance(ca_bundle, str) else True, direct)


@dataclass(frozen=True, slots=True)
class _EnvironmentCredentials:
    """Static credentials from the environment, as botocore's ``EnvProvider`` reads them."""

    access_key: str
    secret_key: str
    token: str | None

    def get_frozen_credentials(self) -> _EnvironmentCredentials:
        return self


def resolve_from_environment(profile: str | None, endpoint_url: str | None, region: str | None) -> Resolved | None:
    """What ``resolve`` would find, where the environment alone settles it; ``None`` where botocore must look.

    The common CI set-up (keys, a region and an endpoint in the environment or on the command line) then needs
    no import of botocore's session (~0.15 s of CPU). botocore's own rules, which the tests check this against:
    without an explicit profile, the environment's keys come first in the chain; ``AWS_DEFAULT_REGION`` beats the
    config file; so does ``AWS_CA_BUNDLE``, and with neither a config file nor a CA bundle a TLS endpoint is
    verified with the default bundle.
    """
    env = os.environ
    endpoint = configured_endpoint(endpoint_url)
    access_key, secret_key = env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", "")
    signing_region = region or env.get("AWS_DEFAULT_REGION", "")
    if profile is not None or endpoint is None or not access_key or not secret_key or not signing_region:
        return None
    if env.get("AWS_CREDENTIAL_EXPIRATION"):
        return None  # refreshable: botocore's chain reads the environment again when they expire
    ca_bundle = env.get("AWS_CA_BUNDLE") or None
    config_file = os.path.exists(os.path.expanduser(env.get("AWS_CONFIG_FILE") or "~/.aws/config"))
    if config_file and ((ca_bundle is None and endpoint.lower().startswith("https:")) or not endpoint_url):
        return None  # a profile may name a CA bundle, or say to ignore endpoints set in the environment
    if config_file and _mentions_addressing_style(env.get("AWS_CONFIG_FILE") or "~/.aws/config"):
        return None  # a profile may choose virtual-hosted buckets: botocore reads which
    token = env.get("AWS_SECURITY_TOKEN") or env.get("AWS_SESSION_TOKEN") or None
    credentials = _EnvironmentCredentials(access_key, secret_key, token)
    secrets = tuple(value for value in (secret_key, token) if value)
    direct = DirectAccess(endpoint, signing_region, BotocoreCredentials(credentials))
    return Resolved(secrets, ca_bundle or True, direct)


def _virtual_hosted(s3_settings: object) -> bool:
    """Whether the config file's ``s3`` section says ``addressing_style = virtual`` (botocore reads no variable of
    the environment for it). Path style stays botocore's default for a custom endpoint: the direct path's too."""
    return isinstance(s3_settings, dict) and str(s3_settings.get("addressing_style", "")).lower() == "virtual"


def _mentions_addressing_style(config_file: str) -> bool:
    try:
        with open(os.path.expanduser(config_file), encoding="utf-8", errors="replace") as text:
            return "addressing_style" in text.read()
    except OSError:
        return False


def configured_endpoint(endpoint_url: str | None) -> str | None:
    """The endpoint the user gave: ``--endpoint-url``, else botocore's environment variables for it."""
    if endpoint_url:
        return endpoint_url
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() == "true":
        return None
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
