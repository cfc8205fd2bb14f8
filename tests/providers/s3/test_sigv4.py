"""The direct path's signer against botocore's: byte-equal canonical requests and Authorization headers."""

from __future__ import annotations

import datetime
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import botocore.session
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from async_uploader.providers.s3.sigv4 import (
    UNSIGNED_PAYLOAD,
    SigV4Signer,
    amz_timestamp,
    canonical_query,
    canonical_request,
    host_header,
    quote_key,
    signing_key,
)

# Keys: any Unicode but lone surrogates (not UTF-8), with the characters URL encoding gets wrong weighted in.
_TRICKY = st.sampled_from([" ", "+", "%", "~", "=", "&", "?", "#", "//", "/", ".", "..", "*", "'", "!", "(", ":"])
KEYS = st.lists(
    st.one_of(_TRICKY, st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)),
    min_size=1,
    max_size=12,
).map("".join) | st.text(st.characters(blacklist_categories=("Cs",)), min_size=900, max_size=1024)
# Header values as HTTP can carry them: printable ASCII with runs of spaces and tabs inside.
HEADER_VALUES = (
    st.lists(st.sampled_from([*map(chr, range(0x21, 0x7F)), " ", "  ", "\t"]), max_size=40)
    .map("".join)
    .filter(lambda v: v == v.strip())
)
META_NAMES = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-_"), min_size=1, max_size=12)
QUERY_VALUES = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
DATES = st.datetimes(min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2099, 12, 31))
TOKENS = st.none() | st.text(st.sampled_from("ABCDEFabcdef0123456789+/="), min_size=1, max_size=300)
ENDPOINTS = st.sampled_from(
    [
        ("http://127.0.0.1:8333", "/bucket"),
        ("http://localhost:80", "/b-1"),
        ("https://my.bucket.s3.eu-west-1.amazonaws.com", ""),
        ("https://s3.example.net:9443", "/data"),
        ("http://[::1]:9000", "/v6"),
    ]
)
REGIONS = st.sampled_from(["us-east-1", "eu-west-3", "auto", "ap-southeast-2"])


def _botocore_sign(
    method: str, url: str, headers: dict[str, str], credentials: Credentials, region: str, when: datetime.datetime
) -> tuple[AWSRequest, str]:
    """botocore's S3 signer on a request like the one botocore itself would build, with payload signing off."""
    seen: list[str] = []

    class Spy(S3SigV4Auth):
        def canonical_request(self, request: Any) -> str:
            seen.append(super().canonical_request(request))
            return seen[-1]

    request = AWSRequest(method=method, url=url, headers=dict(headers), data=b"")
    request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    request.context["payload_signing_enabled"] = False
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        Spy(credentials, "s3", region).add_auth(request)
    return request, seen[0]


def _lean_sign(
    method: str, url: str, headers: dict[str, str], credentials: Credentials, region: str, when: datetime.datetime
) -> tuple[dict[str, str], str]:
    parts = urlsplit(url)
    query = "&".join(sorted(parts.query.split("&"))) if parts.query else ""
    signed = {name.lower(): value for name, value in headers.items()}
    signed["host"] = host_header(parts)
    stamp = amz_timestamp(when.replace(tzinfo=datetime.UTC).timestamp())
    SigV4Signer(region).sign(
        method,
        parts.path,
        query,
        signed,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        token=credentials.token,
        timestamp=stamp,
    )
    names = {k: v for k, v in signed.items() if k != "authorization"}
    return signed, canonical_request(method, parts.path, query, names, UNSIGNED_PAYLOAD)[0]


@settings(max_examples=400, deadline=None)
@given(
    key=KEYS,
    endpoint=ENDPOINTS,
    metadata=st.dictionaries(META_NAMES, HEADER_VALUES, max_size=4),
    part=st.none() | st.tuples(st.integers(1, 10_000), QUERY_VALUES),
    when=DATES,
    token=TOKENS,
    region=REGIONS,
)
def test_authorization_is_byte_equal_to_botocores(
    key: str,
    endpoint: tuple[str, str],
    metadata: dict[str, str],
    part: tuple[int, str] | None,
    when: datetime.datetime,
    token: str | None,
    region: str,
) -> None:
    base, bucket_path = endpoint
    url = f"{base}{bucket_path}/{quote_key(key)}"
    if part is not None:
        url += "?" + canonical_query([("uploadId", part[1]), ("partNumber", str(part[0]))])
    headers = {f"x-amz-meta-{name}": value for name, value in metadata.items()}
    headers.update({"Content-Length": "1234", "x-amz-checksum-crc32": "NhCmhg==", "User-Agent": "not signed"})
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)

    theirs, their_canonical = _botocore_sign("PUT", url, headers, credentials, region, when)
    ours, our_canonical = _lean_sign("PUT", url, headers, credentials, region, when)

    assert our_canonical == their_canonical
    assert ours["authorization"] == theirs.headers["Authorization"]
    assert ours["x-amz-date"] == theirs.headers["X-Amz-Date"]
    assert ours.get("x-amz-security-token") == theirs.headers.get("X-Amz-Security-Token")
    assert ours["x-amz-content-sha256"] == theirs.headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"


@pytest.fixture(scope="module")
def captured_client() -> Any:
    """A real botocore S3 client that never sends: its requests are caught just before the wire."""
    session = botocore.session.get_session()
    client = session.create_client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        region_name="eu-west-3",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret/with+odd=chars",
        aws_session_token="token-value",
        config=Config(s3={"addressing_style": "path", "payload_signing_enabled": False}),
    )

    class Caught(Exception):
        def __init__(self, request: Any) -> None:
            self.request = request

    def catch(request: Any, **_: Any) -> None:
        raise Caught(request)

    client.meta.events.register("before-send.s3", catch)
    client.caught = Caught
    return client


def _send(client: Any, method: str, **params: Any) -> Any:
    try:
        getattr(client, method)(**params)
    except client.caught as caught:
        return caught.request
    raise AssertionError("the request was not caught")


@settings(max_examples=150, deadline=None)
@given(key=KEYS, metadata=st.dictionaries(META_NAMES, HEADER_VALUES, max_size=3), part=st.integers(1, 10_000))
def test_urls_and_signatures_match_what_a_botocore_client_sends(
    captured_client: Any, key: str, metadata: dict[str, str], part: int
) -> None:
    put = _send(
        captured_client, "put_object", Bucket="bkt", Key=key, Body=b"hello", ChecksumCRC32="NhCmhg==", Metadata=metadata
    )
    assert urlsplit(put.url).path == f"/bkt/{quote_key(key)}"
    for name, value in metadata.items():
        assert put.headers[f"x-amz-meta-{name}"] == value.encode()
    upload = _send(
        captured_client, "upload_part", Bucket="bkt", Key=key, UploadId="a+b/c=d e", PartNumber=part, Body=b""
    )
    parts = urlsplit(upload.url)
    assert parts.path == f"/bkt/{quote_key(key)}"
    assert "&".join(sorted(parts.query.split("&"))) == canonical_query(
        [("partNumber", str(part)), ("uploadId", "a+b/c=d e")]
    )

    for sent in (put, upload):
        when = datetime.datetime.strptime(sent.headers["X-Amz-Date"].decode(), "%Y%m%dT%H%M%SZ")
        authorization = sent.headers["Authorization"].decode()
        # botocore adds some headers (Content-Length, amz-sdk-*) after signing: take those it signed.
        signed_names = set(authorization.partition("SignedHeaders=")[2].partition(",")[0].split(";"))
        redone = {"x-amz-date", "x-amz-security-token", "x-amz-content-sha256", "host"}
        unsigned = {
            name: value.decode() if isinstance(value, bytes) else value
            for name, value in sent.headers.items()
            if name.lower() in signed_names - redone
        }
        credentials = Credentials("AKIDEXAMPLE", "secret/with+odd=chars", "token-value")
        ours, _ = _lean_sign(sent.method, sent.url, unsigned, credentials, "eu-west-3", when)
        assert ours["authorization"] == authorization


def test_signing_key_matches_the_aws_documentation_example() -> None:
    # From AWS's "Examples of how to derive a signing key for Signature Version 4".
    key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


def test_amz_timestamp_is_utc() -> None:
    assert amz_timestamp(0) == "19700101T000000Z"
    assert amz_timestamp(1_700_000_000.9) == "20231114T221320Z"
