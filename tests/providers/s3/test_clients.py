"""aiobotocore's clients as the connection sets them up: bodies sent from their own buffers, timestamps parsed as
botocore parses them."""

from __future__ import annotations

from io import BytesIO

import aiohttp.payload
import pytest
from aiobotocore._endpoint_helpers import _IOBaseWrapper
from botocore.utils import parse_timestamp

from async_uploader.providers.base import Body
from async_uploader.providers.s3.clients import BodyPayload, fast_timestamp


def test_aiohttp_sends_a_body_with_our_payload_and_other_streams_with_its_own() -> None:
    # aiobotocore hands aiohttp a proxy of the body; the payload must still be the one that sends slices.
    assert isinstance(aiohttp.payload.get_payload(_IOBaseWrapper(Body(b"x"))), BodyPayload)
    assert not isinstance(aiohttp.payload.get_payload(_IOBaseWrapper(BytesIO(b"x"))), BodyPayload)


@pytest.mark.parametrize(
    "text",
    ["2026-11-26T12:22:10.000Z", "2026-11-26T12:22:10Z", "Wed, 21 Oct 2015 07:28:00 GMT", "1700000000",
     "2026-11-26T12:22:10.123456+02:00", "2026-11-26T12:22:10"],
)  # fmt: skip
def test_fast_timestamps_are_botocores(text: str) -> None:
    assert fast_timestamp(text) == parse_timestamp(text)
