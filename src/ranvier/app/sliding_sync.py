"""Wiring of simplified sliding sync (MSC4186, issue #12).

Built right after `build_sync`, from what it made (the sync store, the per-user and
ephemeral services, the notifier) and the rooms' read side, so sliding sync reads
exactly what `/sync` reads: the same timelines, visibility checks and serializer.
Starts the hourly expiry of unused connections under the supervisor, and forgets
the connections of deleted devices.
"""

from __future__ import annotations

from dataclasses import dataclass

from ranvier.api.client.sliding_sync import SlidingSyncResource
from ranvier.api.http import Endpoint
from ranvier.app.sync import RoomsReadSide, Sync
from ranvier.services.accounts.hooks import AccountHooks
from ranvier.services.sync.rooms import NotificationCounter
from ranvier.services.sync.serialize import EventSerializer
from ranvier.services.sync.service import KeyCounts, NoKeys
from ranvier.services.sync.sliding.extensions import ExtensionsBuilder, ThreadsSource
from ranvier.services.sync.sliding.room_list import RoomListBuilder
from ranvier.services.sync.sliding.rooms import RoomResultsBuilder
from ranvier.services.sync.sliding.service import SlidingSyncService
from ranvier.storage.database import Database
from ranvier.storage.stores.relations import RelationStore
from ranvier.storage.stores.room_lists import RoomListStore
from ranvier.storage.stores.sliding_sync import SlidingSyncStore
from ranvier.util.clock import Clock
from ranvier.util.supervisor import TaskSupervisor


@dataclass
class SlidingSync:
    service: SlidingSyncService
    store: SlidingSyncStore
    endpoints: list[Endpoint]


def build_sliding_sync(
    *,
    db: Database,
    clock: Clock,
    supervisor: TaskSupervisor,
    sync: Sync,
    rooms: RoomsReadSide,
    keys: KeyCounts | None = None,
    notification_counts: NotificationCounter | None = None,
    hooks: AccountHooks | None = None,
) -> SlidingSync:
    store = SlidingSyncStore(db)
    lists = RoomListStore(db)
    service = SlidingSyncService(
        clock=clock,
        notifier=sync.notifier,
        store=store,
        room_list=RoomListBuilder(sync.store, lists, rooms.events, sync.notifier),
        results=RoomResultsBuilder(
            sync.store,
            lists,
            rooms.events,
            rooms.state,
            rooms.visibility,
            EventSerializer(rooms.serializer),
            notification_counts,
            sync.notifier,
        ),
        extensions=ExtensionsBuilder(
            store=sync.store,
            to_device=sync.to_device,
            keys=keys or NoKeys(),
            account_data=sync.account_data,
            receipts=sync.receipts,
            typing=sync.typing,
            threads=ThreadsSource(
                events=rooms.events,
                relations=RelationStore(db),
                visibility=rooms.visibility,
                serializer=rooms.serializer,
            ),
        ),
        account_data=sync.account_data,
        presence=sync.presence,
        changes=sync.notifier,
    )
    _ = supervisor.start("sliding-sync-cleanup", service.run_cleanup())
    if hooks is not None:
        hooks.devices_deleted.append(service)
    return SlidingSync(
        service=service,
        store=store,
        endpoints=SlidingSyncResource(service).endpoints(),
    )
