"""Wiring of push notifications: rules, evaluation, counts, pushers, /notifications.

Two phases, because sync and push need each other:
1. `build_push_core` (after rooms, before sync): the store, the rules service, the
   evaluator (bound into the pipeline's notifier chain through `PushNotifierLink`,
   which the rooms were built with) and the counts sync reads.
2. `build_push` (after sync): `m.push_rules` as account data, read receipts and new
   push actions waking the pushers, the pusher workers (HTTP gateways through the
   federation IP policy, e-mail through `email.*`), device deletion removing pushers,
   and the HTTP endpoints.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ranvier.api.client.push_rules import PushRulesResource
from ranvier.api.client.pushers import PushersResource
from ranvier.api.http import Endpoint
from ranvier.app.rooms import Rooms
from ranvier.app.sync import Sync
from ranvier.config.schema import HomeserverConfig
from ranvier.core.events.event import Event
from ranvier.federation.dns import SystemDnsResolver
from ranvier.federation.ip_filter import IpRangeFilter
from ranvier.services.account_data import AccountDataService
from ranvier.services.accounts.hooks import AccountHooks
from ranvier.services.events.notify import RoomEventNotifier
from ranvier.services.push.content import NotificationContent
from ranvier.services.push.counts import NotificationCountService
from ranvier.services.push.evaluator import PushEvaluator
from ranvier.services.push.notifications import (
    NotificationsService,
    PushActionsRetention,
)
from ranvier.services.push.pushers import PusherService
from ranvier.services.push.rules import PUSH_RULES_TYPE, PushRulesService
from ranvier.storage.database import Database
from ranvier.storage.stores.push import PushStore
from ranvier.storage.stores.pushers import PusherStore
from ranvier.util.clock import Clock
from ranvier.util.supervisor import TaskSupervisor
from ranvier.workers.push.base import PusherDeps
from ranvier.workers.push.email_pusher import EmailSettings
from ranvier.workers.push.gateway_client import GatewayClient
from ranvier.workers.push.mailer import Mailer, SmtpMailer, SmtpSettings
from ranvier.workers.push.pool import PusherPool

JsonDict = dict[str, Any]


class PushNotifierLink:
    """The pipeline's notifier link to the push evaluator, bound once it exists."""

    def __init__(self) -> None:
        self._target: RoomEventNotifier | None = None

    def bind(self, target: RoomEventNotifier) -> None:
        self._target = target

    def on_new_event(
        self, event: Event, stream_ordering: int, *, extra_users: Iterable[str] = ()
    ) -> None:
        if self._target is not None:
            self._target.on_new_event(event, stream_ordering, extra_users=extra_users)


@dataclass
class PushCore:
    store: PushStore
    rules: PushRulesService
    evaluator: PushEvaluator
    counts: NotificationCountService


def build_push_core(
    *,
    server_name: str,
    db: Database,
    clock: Clock,
    supervisor: TaskSupervisor,
    rooms: Rooms,
    link: PushNotifierLink,
) -> PushCore:
    store = PushStore(db)
    rules = PushRulesService(store)
    evaluator = PushEvaluator(
        server_name=server_name,
        store=store,
        rules=rules,
        members=rooms.rooms,
        state=rooms.state_reader,
        events=rooms.events,
        clock=clock,
        supervisor=supervisor,
        log=store,
        current_position=rooms.events.get_current_position,
        ignored=rooms.ignored,
    )
    link.bind(evaluator)
    return PushCore(store, rules, evaluator, NotificationCountService(store, evaluator))


class PushRulesAccountData:
    """Announces rule changes to syncs as the `m.push_rules` account data entry."""

    def __init__(self, account_data: AccountDataService) -> None:
        self._account_data = account_data

    async def on_push_rules_changed(self, user_id: str, content: JsonDict) -> None:
        await self._account_data.set_server_account_data(
            user_id, None, PUSH_RULES_TYPE, content
        )


@dataclass
class Push:
    core: PushCore
    pushers: PusherService
    pool: PusherPool
    gateway: GatewayClient
    retention: PushActionsRetention
    supervisor: TaskSupervisor
    endpoints: list[Endpoint] = field(default_factory=list)

    async def start(self) -> None:
        await self.pool.start()
        # After the pushers, so they hear of what the replay finds.
        await self.core.evaluator.start()
        _ = self.supervisor.start("push-actions-retention", self.retention.run())

    async def close(self) -> None:
        await self.gateway.close()


def _mailer(config: HomeserverConfig) -> Mailer | None:
    email = config.email
    if email.smtp_host is None:
        return None
    return SmtpMailer(
        SmtpSettings(
            host=email.smtp_host,
            port=email.smtp_port,
            tls=email.tls,
            user=email.smtp_user,
            password=email.smtp_password,
        )
    )


def build_push(
    config: HomeserverConfig,
    db: Database,
    clock: Clock,
    supervisor: TaskSupervisor,
    *,
    core: PushCore,
    rooms: Rooms,
    sync: Sync,
    hooks: AccountHooks,
) -> Push:
    sync.account_data.register_provider(
        PUSH_RULES_TYPE, core.rules.get_push_rules_content
    )
    core.rules.listeners.append(PushRulesAccountData(sync.account_data))
    pusher_store = PusherStore(db)
    mailer = _mailer(config)
    pushers = PusherService(
        pusher_store,
        clock,
        rooms.events.get_current_position,
        email_enabled=mailer is not None,
    )
    fed = config.federation
    gateway = GatewayClient(
        IpRangeFilter(fed.ip_range_blocklist, fed.ip_range_allowlist),
        SystemDnsResolver(),
    )
    deps = PusherDeps(
        progress=pusher_store,
        actions=core.store,
        counts=core.counts,
        content=NotificationContent(rooms.events, rooms.state_reader),
        clock=clock,
        rejected=pushers.delete_pusher,
    )
    pool = PusherPool(
        store=pusher_store,
        deps=deps,
        supervisor=supervisor,
        gateway=gateway,
        mailer=mailer,
        email=EmailSettings(
            sender=config.email.notif_from, delay_ms=config.email.notif_delay * 1000
        ),
    )
    pushers.lifecycle = pool
    core.evaluator.listeners.append(pool)
    sync.receipts.listeners.append(pool)
    hooks.devices_deleted.append(pushers)
    notifications = NotificationsService(
        core.store,
        rooms.events,
        rooms.serializer,
        progress=core.evaluator,
        current_position=rooms.events.get_current_position,
    )
    return Push(
        core=core,
        pushers=pushers,
        pool=pool,
        gateway=gateway,
        retention=PushActionsRetention(core.store, clock),
        supervisor=supervisor,
        endpoints=[
            *PushRulesResource(core.rules).endpoints(),
            *PushersResource(pushers, notifications).endpoints(),
        ],
    )
