"""Which store a connection gives a bucket: chosen once, from the connection's options."""

from __future__ import annotations

import aiobotocore.session
import pytest

from async_uploader.providers.s3.boto import BotoStore
from async_uploader.providers.s3.learned import LearningStore
from async_uploader.providers.s3.store import DirectStore
from tests.providers.s3.stores import open_store


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize(
    ("endpoint_url", "lean", "application_session", "chosen"),
    [
        ("http://127.0.0.1:9", True, False, DirectStore),  # endpoint and keys known without botocore
        ("http://127.0.0.1:9", False, False, BotoStore),  # --lean off
        ("http://127.0.0.1:9", True, True, LearningStore),  # the application's session
        (None, True, False, LearningStore),  # AWS itself: botocore's endpoint rules decide
        (None, False, False, BotoStore),
    ],
)
async def test_the_connection_chooses_the_store_for_its_options(
    endpoint_url: str | None, lean: bool, application_session: bool, chosen: type
) -> None:
    session = aiobotocore.session.AioSession() if application_session else None
    async with open_store("bkt", endpoint_url=endpoint_url, lean=lean, session=session) as store:
        assert type(store) is chosen
        assert store.location == f"{endpoint_url or 'AWS S3'}/bkt"


@pytest.mark.usefixtures("credentials")
async def test_a_password_in_the_endpoint_never_reaches_a_message() -> None:
    async with open_store("bkt", endpoint_url="http://user:hunter22@127.0.0.1:9") as store:
        assert store.location == "http://***@127.0.0.1:9/bkt"
