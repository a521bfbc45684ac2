"""Wiring of the federation transport (issue #6): keyring, signed client, sender, inbound
X-Matrix authentication, the notary and version endpoints.

`build_federation` constructs everything once. The transport is injectable: production
uses `HttpTransport` (discovery, TLS, IP-range policy); tests pass an
`InProcessTransport` so that several Ranvier instances federate in one process. The
composition root calls `start()` after the database is ready and `stop()` on shutdown
(after the supervisor has cancelled the sender's tasks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from ranvier.api.federation import version
from ranvier.api.federation.auth import XMatrixAuthenticator
from ranvier.api.http import Endpoint
from ranvier.api.keys.query import NotaryResource
from ranvier.config.schema import HomeserverConfig
from ranvier.federation.client import FederationClient
from ranvier.federation.discovery import ServerResolver
from ranvier.federation.dns import DnsResolver, SystemDnsResolver
from ranvier.federation.ip_filter import IpRangeFilter
from ranvier.federation.keyring import Keyring
from ranvier.federation.retry import BackoffPolicy, DestinationRetryTracker
from ranvier.federation.transport import (
    ConnectionLimits,
    FederationTransport,
    HttpTransport,
    HttpWellKnownFetcher,
    build_client_session,
    build_tls_context,
)
from ranvier.services.server_keys import ServerKeys
from ranvier.storage.database import Database
from ranvier.storage.stores.federation import FederationStore
from ranvier.util.clock import Clock
from ranvier.util.supervisor import TaskSupervisor
from ranvier.workers.federation_sender import FederationSender, SenderPolicy

logger = logging.getLogger(__name__)

# Senders retry a transaction for minutes or hours, not days: after a day its ID is
# no longer remembered (the PDUs themselves are de-duplicated by event ID anyway).
RECEIVED_TXN_RETENTION_MS: Final = 24 * 3600 * 1000
_CLEANUP_INTERVAL_SECONDS: Final = 3600.0


@dataclass
class Federation:
    store: FederationStore
    transport: FederationTransport
    retry: DestinationRetryTracker
    client: FederationClient
    keyring: Keyring
    sender: FederationSender
    authenticator: XMatrixAuthenticator
    key_endpoints: list[Endpoint]
    federation_endpoints: list[Endpoint]
    clock: Clock
    supervisor: TaskSupervisor
    # Run by `start()` between loading the backoff state and resuming the queues
    # (e.g. the PDU forwarder queueing events persisted before a restart).
    start_hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _cleanup_task: asyncio.Task[Any] | None = field(default=None, init=False)

    async def start(self) -> None:
        await self.retry.load()
        for hook in self.start_hooks:
            await hook()
        await self.sender.start()
        self._cleanup_task = self.supervisor.start(
            "federation-received-txn-cleanup", self._cleanup_loop()
        )

    async def _cleanup_loop(self) -> None:
        while True:
            cutoff = self.clock.time_msec() - RECEIVED_TXN_RETENTION_MS
            removed = await self.store.delete_received_transactions_before(cutoff)
            if removed:
                logger.info("forgot %d old inbound transaction IDs", removed)
            await self.clock.sleep(_CLEANUP_INTERVAL_SECONDS)

    async def stop(self) -> None:
        await self.transport.close()


def build_http_transport(
    config: HomeserverConfig,
    clock: Clock,
    *,
    dns: DnsResolver | None = None,
    limits: ConnectionLimits | None = None,
) -> HttpTransport:
    """The real transport; call inside the running event loop."""
    fed = config.federation
    dns = dns or SystemDnsResolver()
    session = build_client_session(
        dns,
        IpRangeFilter(fed.ip_range_blocklist, fed.ip_range_allowlist),
        build_tls_context(verify=fed.verify_tls, ca_file=fed.ca_file),
        limits or ConnectionLimits(),
    )
    resolver = ServerResolver(dns, HttpWellKnownFetcher(session), clock)
    return HttpTransport(session, resolver, dns)


def build_federation(
    config: HomeserverConfig,
    db: Database,
    clock: Clock,
    supervisor: TaskSupervisor,
    server_keys: ServerKeys,
    *,
    transport: FederationTransport | None = None,
    backoff: BackoffPolicy | None = None,
    sender_policy: SenderPolicy | None = None,
) -> Federation:
    store = FederationStore(db)
    transport = transport or build_http_transport(config, clock)
    retry = DestinationRetryTracker(store, clock, backoff or BackoffPolicy())
    client = FederationClient(
        config.server_name, server_keys.signing_key, transport, retry
    )
    keyring = Keyring(
        server_keys,
        client,
        store,
        clock,
        trusted_key_servers=config.federation.trusted_key_servers,
    )
    sender = FederationSender(
        config.server_name,
        store,
        client,
        retry,
        clock,
        supervisor,
        policy=sender_policy or SenderPolicy(),
        enabled=config.federation.enabled,
    )
    authenticator = XMatrixAuthenticator(
        config.server_name, keyring, clock, contact=retry
    )
    notary = NotaryResource(server_keys, keyring, clock)
    return Federation(
        store=store,
        transport=transport,
        retry=retry,
        client=client,
        keyring=keyring,
        sender=sender,
        authenticator=authenticator,
        key_endpoints=notary.endpoints(),
        federation_endpoints=version.endpoints(),
        clock=clock,
        supervisor=supervisor,
    )
