"""Credentials, endpoint and TLS settings: what the connection resolves must be what botocore resolves, or it
steps aside for botocore."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import botocore.config
import botocore.session
import pytest
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.httpsession import get_cert_path

from async_uploader.providers.s3.clients import client_options, new_session
from async_uploader.providers.s3.credentials import (
    DEFAULT_SIGNING_REGION,
    BotocoreCredentials,
    configured_endpoint,
    resolve,
    resolve_from_environment,
)
from async_uploader.providers.s3.network import client_network
from async_uploader.providers.s3.wire import PROBE_KEY, BucketEndpoint

DEFAULT_CA_BUNDLE = get_cert_path(True)

_KEYS = {"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret-key"}


@pytest.mark.parametrize(
    ("env", "endpoint", "region", "profile", "config", "fast"),
    [
        pytest.param({**_KEYS, "AWS_DEFAULT_REGION": "eu-west-3"}, "http://h:9000", None, None, None, True, id="plain"),
        pytest.param(
            {**_KEYS, "AWS_DEFAULT_REGION": "eu-west-3", "AWS_SESSION_TOKEN": "tok-session"},
            "http://h:9000", None, None, None, True, id="session-token",
        ),
        pytest.param(
            {**_KEYS, "AWS_DEFAULT_REGION": "r", "AWS_SESSION_TOKEN": "tok-a", "AWS_SECURITY_TOKEN": "tok-b"},
            "http://h:9000", None, None, None, True, id="both-tokens",
        ),
        pytest.param(_KEYS, "http://h:9000", "ap-south-1", None, None, True, id="region-argument"),
        pytest.param(
            _KEYS, "http://h:9000", None, None, "[default]\nregion = us-west-2\n", False, id="region-in-config"
        ),
        pytest.param(
            {**_KEYS, "AWS_DEFAULT_REGION": "eu-west-3", "AWS_PROFILE": "other"},
            "http://h:9000", None, None,
            "[profile other]\nregion = us-west-2\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n",
            True, id="environment-beats-aws-profile",
        ),
        pytest.param(
            {**_KEYS, "AWS_DEFAULT_REGION": "eu-west-3"}, "http://h:9000", None, "other",
            "[profile other]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n",
            False, id="explicit-profile",
        ),
        pytest.param(
            {**_KEYS, "AWS_DEFAULT_REGION": "eu-west-3"}, "https://h", None, None, "[default]\nca_bundle = /ca.pem\n",
            False, id="tls-with-config",
        ),
        pytest.param({**_KEYS, "AWS_DEFAULT_REGION": "eu-west-3"}, "https://h", None, None, None, True, id="tls"),
        pytest.param(
            {**_KEYS, "AWS_DEFAULT_REGION": "eu-west-3", "AWS_CA_BUNDLE": "/env-ca.pem"},
            "https://h", None, None, "[default]\nca_bundle = /ca.pem\n", True, id="tls-ca-bundle-in-environment",
        ),
        pytest.param(
            {**_KEYS, "AWS_DEFAULT_REGION": "r", "AWS_CREDENTIAL_EXPIRATION": "2099-01-01T00:00:00Z"},
            "http://h:9000", None, None, None, False, id="expiring",
        ),
        pytest.param({"AWS_DEFAULT_REGION": "r"}, "http://h:9000", None, None, None, False, id="no-keys"),
    ],
)  # fmt: skip
async def test_credentials_from_the_environment_are_what_botocore_resolves(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    env: dict[str, str],
    endpoint: str,
    region: str | None,
    profile: str | None,
    config: str | None,
    fast: bool,
) -> None:
    """The shortcut that spares importing botocore's session must find what botocore finds, or step aside."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    if config is not None:
        (tmp_path / "config").write_text(config)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    shortcut = resolve_from_environment(profile, endpoint, region)

    assert (shortcut is not None) == fast
    if shortcut is None:
        return
    botocore_way = resolve(profile, endpoint, region)
    assert (shortcut.secrets, shortcut.verify) == (botocore_way.secrets, botocore_way.verify)
    assert shortcut.direct is not None
    assert botocore_way.direct is not None
    assert shortcut.direct.bucket_endpoint("b") == botocore_way.direct.bucket_endpoint("b")
    ours = await shortcut.direct.credentials.get_frozen_credentials()
    theirs = await botocore_way.direct.credentials.get_frozen_credentials()
    assert (ours.access_key, ours.secret_key, ours.token) == (theirs.access_key, theirs.secret_key, theirs.token)


def test_endpoints_in_the_environment_are_ignored_when_botocore_would_ignore_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://global:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3-only:2")
    assert configured_endpoint(None) == "http://s3-only:2"  # the service's own beats the global one
    assert configured_endpoint("http://given:3") == "http://given:3"
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    assert configured_endpoint(None) is None
    assert configured_endpoint("http://given:3") == "http://given:3"  # a command-line endpoint always counts


class _Captured(Exception):
    pass


@pytest.mark.parametrize(
    "endpoint_url",
    ["http://127.0.0.1:9000", "https://minio.example.com", "https://host:8443/base/path/", "http://u:pw@host:9000/x"],
)
@pytest.mark.parametrize("region", [None, "eu-west-3"])
@pytest.mark.parametrize("bucket", ["bkt", "my.bucket-1"])
def test_a_direct_endpoint_is_where_botocore_sends_and_signs(
    endpoint_url: str, region: str | None, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a botocore client, the direct path addresses a bucket of a user-given endpoint itself: the URL and
    the signing region must be the ones botocore's endpoint rules give, with our client options."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    seen: list[tuple[str, str]] = []

    def capture(request: Any, **_: Any) -> None:
        authorization = request.headers["Authorization"]
        seen.append((request.url, authorization.decode() if isinstance(authorization, bytes) else authorization))
        raise _Captured

    options = client_options(5, 5)
    client = botocore.session.get_session().create_client(
        "s3",
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=botocore.config.Config(**options),
    )
    client.meta.events.register_first("before-send.s3.HeadObject", capture)
    with pytest.raises(_Captured):
        client.head_object(Bucket=bucket, Key=PROBE_KEY)

    learned = BucketEndpoint.from_signed_request(*seen[0])
    assert learned == BucketEndpoint.path_style(endpoint_url, bucket, region or DEFAULT_SIGNING_REGION)


async def test_botocore_credentials_are_refreshed_off_the_event_loop() -> None:
    """A read that refreshes blocks on a request (STS, a metadata service): it goes to a worker thread; a read of
    credentials still valid does not pay for the hop."""
    loop_thread = threading.current_thread()

    class Refreshable:
        def __init__(self) -> None:
            self.due = False
            self.read_in: list[threading.Thread] = []

        def refresh_needed(self) -> bool:
            return self.due

        def get_frozen_credentials(self) -> Any:
            self.read_in.append(threading.current_thread())
            return ReadOnlyCredentials("AKID", "secret", None)

    refreshable = Refreshable()
    lean_credentials = BotocoreCredentials(refreshable)
    assert (await lean_credentials.get_frozen_credentials()).access_key == "AKID"
    refreshable.due = True
    await lean_credentials.get_frozen_credentials()
    assert refreshable.read_in[0] is loop_thread
    assert refreshable.read_in[1] is not loop_thread
    static = BotocoreCredentials(Credentials("AKID2", "secret2"))
    assert (await static.get_frozen_credentials()).access_key == "AKID2"


@pytest.mark.parametrize("verify", [DEFAULT_CA_BUNDLE, False])
async def test_the_direct_path_trusts_what_the_client_trusts(verify: str | bool) -> None:
    session = new_session(None)
    async with session.create_client(
        "s3", region_name="us-east-1", verify=verify, aws_access_key_id="AKID", aws_secret_access_key="secret"
    ) as client:
        assert client_network(client).verify == verify
