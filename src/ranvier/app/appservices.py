"""Wiring of application services (issue #15): registration files, `as_token`
authentication, the ping endpoint and one transaction sender per service.

`load_app_services` runs before the accounts are built (registration needs the
exclusive namespaces); `build_app_services` after the rooms (the senders serialize
events); `AppServices.start` spawns the senders under the supervisor once the server
starts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import yaml

from ranvier.api.client.appservice import AppServiceAuth, AppServiceResource
from ranvier.api.http import Endpoint
from ranvier.config.schema import HomeserverConfig
from ranvier.core.appservice import (
    AppService,
    AppServiceConfigError,
    AppServiceRegistry,
    parse_registration,
)
from ranvier.federation.dns import SystemDnsResolver
from ranvier.federation.ip_filter import IPNetwork, IpRangeFilter
from ranvier.services.accounts.registration import RegisterRequest, RegistrationService
from ranvier.storage.database import Database
from ranvier.storage.stores.accounts import AccountsStore
from ranvier.storage.stores.appservices import AppServiceStore
from ranvier.util.clock import Clock
from ranvier.util.supervisor import TaskSupervisor
from ranvier.workers.appservices import (
    AppServiceHttp,
    AppServiceNotifier,
    AppServiceSender,
    EventSerializer,
)

logger = logging.getLogger(__name__)


def load_app_services(config: HomeserverConfig) -> AppServiceRegistry:
    """Read and check every `app_service_config_files` entry; raises
    `AppServiceConfigError` naming the file at fault."""
    services = []
    for path in config.app_service_config_files:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise AppServiceConfigError(f"{path}: cannot read: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise AppServiceConfigError(f"{path}: not valid YAML: {e}") from None
        services.append(parse_registration(doc, config.server_name, str(path)))
    registry = AppServiceRegistry(services)
    for svc in registry.services:
        logger.info("application service %s (%s) from %s", svc.id, svc.url, svc.source)
    return registry


async def _configured_addresses(services: tuple[AppService, ...]) -> list[IPNetwork]:
    """The addresses the operator-configured service URLs resolve to now."""
    loop = asyncio.get_running_loop()
    out: list[IPNetwork] = []
    for svc in services:
        host = urlsplit(svc.url).hostname if svc.url else None
        if not host:
            continue
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError as e:
            logger.warning(
                "application service %s: cannot resolve %s: %s", svc.id, host, e
            )
            continue
        out.extend(ipaddress.ip_network(str(info[4][0])) for info in infos)
    return out


@dataclass
class AppServices:
    registry: AppServiceRegistry
    http: AppServiceHttp
    notifier: AppServiceNotifier
    senders: list[AppServiceSender] = field(default_factory=list)
    endpoints: list[Endpoint] = field(default_factory=list)

    def start(self, supervisor: TaskSupervisor) -> None:
        for sender in self.senders:
            _ = supervisor.start(f"appservice-{sender.service.id}", sender.run())

    async def close(self) -> None:
        await self.http.close()


async def _ensure_senders_exist(
    registry: AppServiceRegistry,
    users: AccountsStore,
    registration: RegistrationService,
) -> None:
    """Spec: the sender_localpart user exists implicitly; it gets a real account row
    so profiles, memberships and power levels work for it like for anyone."""
    for svc in registry.services:
        if await users.get_user(svc.sender) is not None:
            continue
        await registration.register_appservice_user(
            svc.sender_localpart,
            RegisterRequest(
                username=svc.sender_localpart,
                password=None,
                device_id=None,
                initial_device_display_name=None,
                inhibit_login=True,
                want_refresh=False,
                guest_access_token=None,
                client_ip=None,
            ),
        )


async def build_app_service_http(
    config: HomeserverConfig, registry: AppServiceRegistry
) -> AppServiceHttp:
    fed = config.federation
    # The federation policy, plus the hosts the operator put in registration files
    # (bridges usually listen on loopback); redirects are never followed.
    allowed = [*fed.ip_range_allowlist, *await _configured_addresses(registry.services)]
    return AppServiceHttp(
        IpRangeFilter(fed.ip_range_blocklist, allowed), SystemDnsResolver()
    )


async def build_app_services(
    registry: AppServiceRegistry,
    db: Database,
    clock: Clock,
    *,
    http: AppServiceHttp,
    users: AccountsStore,
    registration: RegistrationService,
    serializer: EventSerializer,
    current_position: Callable[[], int],
    notifier: AppServiceNotifier,
) -> AppServices:
    await _ensure_senders_exist(registry, users, registration)
    out = AppServices(registry=registry, http=http, notifier=notifier)
    store = AppServiceStore(db)
    for svc in registry.services:
        if svc.url is None:
            continue
        sender = AppServiceSender(
            svc,
            store=store,
            current_position=current_position,
            serializer=serializer,
            sink=http,
            clock=clock,
        )
        out.senders.append(sender)
        notifier.add(sender)
    out.endpoints = AppServiceResource(registry, http, clock).endpoints()
    return out


def build_app_service_auth(
    registry: AppServiceRegistry, users: AccountsStore, server_name: str
) -> AppServiceAuth | None:
    return AppServiceAuth(registry, users, server_name) if registry.services else None
