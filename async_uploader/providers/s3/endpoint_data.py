"""botocore's data loader, trimmed to what our sessions use (imports ``botocore.loaders``: only when needed)."""

from __future__ import annotations

import os
from typing import Any, Final

from botocore.loaders import Loader

# The services a session of ours creates clients for: S3, and what botocore's credential chain may call
# (assume-role and web identity through STS, SSO).
_ENDPOINT_SERVICES_USED: Final = frozenset({"s3", "sts", "sso", "sso-oidc"})


class _UsedEndpointsLoader(Loader):  # type: ignore[misc]  # botocore has no type hints
    """botocore's data loader, keeping from ``endpoints.json`` only the services this process calls.

    botocore keeps the endpoints of every AWS service in memory for the session's lifetime, megabytes of dicts.
    Trimmed as soon as it is loaded, the space is reused by the S3 model loaded next, which lowers the upload's
    peak RSS. Partitions and their defaults stay whole: a service
    missing from the list would still resolve from its partition's defaults, as a new AWS service does.
    """

    def load_data_with_path(self, name: str) -> tuple[Any, str]:
        data, path = super().load_data_with_path(name)  # cached by the base class: trimming is done once, in place
        if name == "endpoints" and isinstance(data, dict):
            for partition in data.get("partitions", ()):
                services = partition.get("services")
                if isinstance(services, dict) and services.keys() - _ENDPOINT_SERVICES_USED:
                    partition["services"] = {k: v for k, v in services.items() if k in _ENDPOINT_SERVICES_USED}
        return data, path


def use_trimmed_endpoint_data(session: Any) -> None:
    """Give a botocore (or aiobotocore) session ``_UsedEndpointsLoader``, on the search path botocore's has."""

    def create_loader() -> Loader:
        extra = session.get_config_variable("data_path")  # AWS_DATA_PATH, as botocore.loaders.create_loader reads it
        if extra is None:
            return _UsedEndpointsLoader()
        paths = [os.path.expanduser(os.path.expandvars(path)) for path in str(extra).split(os.pathsep)]
        return _UsedEndpointsLoader(extra_search_paths=paths)

    session.lazy_register_component("data_loader", create_loader)
