"""botocore's endpoint data, trimmed to the services our sessions call, still resolves AWS as botocore does."""

from __future__ import annotations

import botocore.session
import pytest

from async_uploader.providers.s3.clients import new_session


@pytest.mark.parametrize(
    ("service", "region"),
    [("s3", "eu-west-1"), ("s3", "us-east-1"), ("s3", "cn-north-1"), ("s3", "us-gov-west-1"), ("sts", "eu-west-1")],
)
async def test_the_trimmed_endpoint_data_resolves_aws_as_botocore_does(
    service: str, region: str, credentials: None
) -> None:
    # Our sessions keep only the endpoints of the services they call (S3, and STS/SSO for credentials).
    expected = botocore.session.get_session().create_client(service, region_name=region).meta.endpoint_url
    async with new_session(None).create_client(service, region_name=region) as client:
        assert client.meta.endpoint_url == expected
        assert client.meta.region_name == region
        partitions = client._loader.load_data("endpoints")["partitions"]
        assert {name for p in partitions for name in p["services"]} <= {"s3", "sts", "sso", "sso-oidc"}
