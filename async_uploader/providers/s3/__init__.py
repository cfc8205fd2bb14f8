"""The ``s3://`` provider: Amazon S3 and S3-compatible stores.

``connect`` opens an ``S3Connection``, whose ``store`` picks, once per bucket, the store that serves it:

- ``DirectStore`` (``store``): every request as a signed HTTP request of our own, when the connection knows the
  endpoint and the credentials without a botocore client (a user-given endpoint, botocore's credential chain);
- ``LearningStore`` (``learned``): through aiobotocore's client until it has shown the direct path where and how
  to send (AWS itself, or the application's client or session);
- ``BotoStore`` (``boto``): every request through aiobotocore, with ``lean`` off.

The direct path is an optimisation, never a different behaviour: it sends what botocore would send, and where it
cannot follow botocore it hands the requests to botocore. aiobotocore is imported (``clients``) only when a
request needs a client. No ACL is ever sent: objects inherit the bucket's (private) policy.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import anyio

from .._errors import Redactor, redact_url
from ..base import ObjectStore
from ..registry import ConnectOptions
from .boto import BotoClients, BotoStore
from .bucket import BucketClient
from .credentials import (
    DirectAccess,
    Resolved,
    configured_endpoint,
    resolve,
    resolve_from_environment,
)
from .http import HttpClient
from .learned import LearningStore
from .network import NetworkSettings, check_ca_bundle, client_network, endpoint_network
from .store import DirectStore

log = logging.getLogger(__name__)

_CLIENTS_MODULE: Final = f"{__name__}.clients"
# Where the direct path sends when no endpoint is given: AWS, over https (and http, for an endpoint rule's sake).
_AWS_ORIGINS: Final = ("https://s3.amazonaws.com", "http://s3.amazonaws.com")


@dataclass(frozen=True, slots=True)
class S3Connection:
    """The clients of one session, shared by every upload an ``Uploader`` runs.

    ``clients`` are aiobotocore's, created at the first request that needs one; ``http`` is the direct path's
    HTTP client (``None`` with ``lean`` off); with ``direct``, that path needs no botocore client at all.
    ``redact`` scrubs the session's secrets from every message; ``endpoint`` names it in messages. A bucket's
    ``BucketClient`` serves every store of it: the region a redirect taught one run is the next one's.
    """

    clients: BotoClients
    endpoint: str
    redact: Redactor
    http: HttpClient | None
    direct: DirectAccess | None
    buckets: dict[str, BucketClient] = field(default_factory=dict)
    request_payer: str | None = None
    """``requester``: every request of the direct path carries ``x-amz-request-payer`` (the clients' own requests
    carry it by ``clients.pay_as_requester``)."""

    def store(self, container: str) -> ObjectStore:
        """The store of the bucket ``container``."""
        if self.http is not None and self.direct is not None:
            bucket = self.buckets.get(container)
            if bucket is None:
                endpoint = self.direct.bucket_endpoint(container)
                bucket = self.buckets[container] = BucketClient(
                    self.http, endpoint, self.direct.credentials, request_payer=self.request_payer
                )
            return DirectStore(bucket, container, self.endpoint, self.redact)
        boto = BotoStore(self.clients, container, self.endpoint, self.redact)
        return boto if self.http is None else LearningStore(boto, self.http, request_payer=self.request_payer)


@asynccontextmanager
async def connect(options: ConnectOptions) -> AsyncIterator[S3Connection]:
    """The ``s3://`` provider: a connection for ``options``, its clients and pools closed on exit (never the
    application's ``options.client``).

    Without a client or session of the application's, this process resolves the credentials itself (botocore's
    chain), and with a user-given endpoint the direct path reaches the bucket without any client: aiobotocore is
    imported and its clients created only when a request needs them.
    """
    async with AsyncExitStack() as stack:
        session = options.session
        resolved: Resolved | None = None
        if options.client is not None:
            module = importlib.import_module(_CLIENTS_MODULE)  # registers how aiohttp sends our bodies
            if options.request_payer:  # on the application's client while the connection is open
                stack.callback(module.pay_as_requester(options.client, options.request_payer))
            clients = BotoClients(None, (options.client, options.client))
            meta_endpoint = getattr(getattr(options.client, "meta", None), "endpoint_url", None)
            endpoint = redact_url(str(meta_endpoint or "the S3 endpoint"))
            secrets: tuple[str, ...] = ()
            network = client_network(options.client)
        else:
            if session is None:
                resolved = resolve_from_environment(
                    options.profile, options.endpoint_url, options.region
                ) or await anyio.to_thread.run_sync(resolve, options.profile, options.endpoint_url, options.region)

            async def make_clients() -> tuple[Any, Any]:
                # ~0.3 s of imports: in a worker thread, so that transfers in flight keep the event loop meanwhile.
                module = await anyio.to_thread.run_sync(importlib.import_module, _CLIENTS_MODULE)
                made: tuple[Any, Any] = await module.open_clients(stack, session, options)
                return made

            clients = BotoClients(make_clients)
            if resolved is None:  # the application's session: its clients and credentials, now
                client, _ = await clients.get()
                secrets = tuple(await importlib.import_module(_CLIENTS_MODULE).known_secrets(session))
                network = client_network(client)
            else:
                secrets = resolved.secrets
                network = endpoint_network(resolved.verify, configured_endpoint(options.endpoint_url))
            configured = configured_endpoint(options.endpoint_url)
            meta_endpoint = configured
            endpoint = redact_url(configured) if configured else "AWS S3"
        check_ca_bundle(network.verify)
        http = None
        if options.lean and _direct_path_can_send(network, meta_endpoint):
            http = HttpClient(
                max_connections=options.max_connections,
                connect_timeout_s=options.connect_timeout_s,
                read_timeout_s=options.read_timeout_s,
                network=network,
            )
            stack.push_async_callback(http.close)
        direct = resolved.direct if resolved else None
        yield S3Connection(clients, endpoint, Redactor(secrets), http, direct, request_payer=options.request_payer)


def _direct_path_can_send(network: NetworkSettings, endpoint: object) -> bool:
    """Whether the direct path can reach the endpoint as botocore would (else every request goes through
    aiobotocore: the direct path never bypasses a proxy)."""
    origins = (str(endpoint),) if endpoint else _AWS_ORIGINS
    refusal = network.direct_path_refusal(origins)
    if refusal is not None:
        log.debug("the lean data path is off for this connection: %s", refusal)
    return refusal is None
