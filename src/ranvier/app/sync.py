"""Wiring of sync and the per-user / ephemeral data (issue #5).

`build_notifier` comes first: the rooms' ingest pipeline takes the notifier (it is the
pipeline's `RoomEventNotifier`). `build_sync` then constructs the stores, services and
HTTP resources once, registers every stream's position source with the notifier, and
connects the account hooks (deleted devices drop their to-device inbox and count as a
device-list change), and starts the hourly to-device transaction-ID cleanup under the
supervisor. `build_legacy_sync` adds the deprecated r0 sync endpoints on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ranvier.api.client.account_data import AccountDataResource
from ranvier.api.client.filters import FiltersResource
from ranvier.api.client.old_sync import OldSyncResource
from ranvier.api.client.presence import PresenceResource
from ranvier.api.client.receipts import ReceiptsResource
from ranvier.api.client.sync import SyncResource
from ranvier.api.client.tags import TagsResource
from ranvier.api.client.to_device import ToDeviceResource
from ranvier.api.client.typing import TypingResource
from ranvier.api.http import Endpoint
from ranvier.core.streams import StreamKey
from ranvier.services.account_data import AccountDataService
from ranvier.services.accounts.hooks import AccountHooks
from ranvier.services.filters import FilterService
from ranvier.services.notifier import Notifier, StreamSources
from ranvier.services.presence import PresenceFederation, PresenceService
from ranvier.services.receipts import ReceiptFederation, ReceiptService
from ranvier.services.rooms.client_events import ClientEventSerializer
from ranvier.services.rooms.previews import RoomDescriptions, RoomInitialSyncService
from ranvier.services.rooms.reading import RoomReadService
from ranvier.services.rooms.visibility import EventVisibility
from ranvier.services.sync.legacy import LegacySyncService
from ranvier.services.sync.room_data import RoomDataLoader
from ranvier.services.sync.rooms import NotificationCounter, RoomsSectionBuilder
from ranvier.services.sync.serialize import EventSerializer
from ranvier.services.sync.service import KeyCounts, NoKeys, SyncService
from ranvier.services.to_device import (
    DeviceListService,
    ToDeviceFederation,
    ToDeviceService,
)
from ranvier.services.typing import TypingFederation, TypingService
from ranvier.storage.database import Database
from ranvier.storage.stores.account_data import AccountDataStore
from ranvier.storage.stores.accounts import AccountsStore
from ranvier.storage.stores.events import EventStore
from ranvier.storage.stores.filters import FilterStore
from ranvier.storage.stores.ignored_users import IgnoredUsersStore
from ranvier.storage.stores.presence import PresenceStore
from ranvier.storage.stores.receipts import ReceiptStore
from ranvier.storage.stores.rooms import RoomStore
from ranvier.storage.stores.state import StateStore
from ranvier.storage.stores.sync import SyncStore
from ranvier.storage.stores.to_device import DeviceListStore, ToDeviceStore
from ranvier.util.clock import Clock
from ranvier.util.supervisor import TaskSupervisor


class AccountDevices:
    """`DeviceLister` over the accounts store."""

    def __init__(self, accounts: AccountsStore) -> None:
        self._accounts = accounts

    async def get_device_ids(self, user_id: str) -> list[str]:
        return [d.device_id for d in await self._accounts.get_devices(user_id)]


class EventPositions:
    """`ReceiptRoomAccess` over the sync store and the event store."""

    def __init__(self, store: SyncStore, events: EventStore) -> None:
        self._store = store
        self._events = events

    async def is_joined(self, user_id: str, room_id: str) -> bool:
        return await self._store.is_joined(user_id, room_id)

    async def get_event_room_and_position(
        self, event_id: str
    ) -> tuple[str, int] | None:
        stored = await self._events.get_event(event_id)
        if stored is None or not stored.is_servable:
            return None
        return stored.event.room_id, stored.stream_ordering


@dataclass(frozen=True, slots=True)
class RoomsReadSide:
    """What sync reads from the rooms feature."""

    events: EventStore
    state: StateStore
    visibility: EventVisibility
    serializer: ClientEventSerializer
    # Given, sync caches each user's memberships (invalidated by both stores).
    rooms: RoomStore | None = None
    # Each user's `m.ignored_user_list` (cache invalidated by account data writes).
    ignored: IgnoredUsersStore | None = None


@dataclass
class Sync:
    notifier: Notifier
    store: SyncStore
    typing: TypingService
    receipts: ReceiptService
    account_data: AccountDataService
    presence: PresenceService
    to_device: ToDeviceService
    device_lists: DeviceListService
    filters: FilterService
    sync: SyncService
    endpoints: list[Endpoint]


def build_notifier(clock: Clock) -> Notifier:
    """The notifier, with no stream sources yet (`build_sync` registers them)."""
    return Notifier(clock, StreamSources())


class EduFederation(
    TypingFederation,
    ReceiptFederation,
    PresenceFederation,
    ToDeviceFederation,
    Protocol,
):
    """Outbound EDUs (typing, receipts, presence, to-device) for local users."""


async def build_sync(
    *,
    db: Database,
    clock: Clock,
    supervisor: TaskSupervisor,
    server_name: str,
    notifier: Notifier,
    rooms: RoomsReadSide,
    accounts: AccountsStore,
    hooks: AccountHooks | None = None,
    keys: KeyCounts | None = None,
    federation: EduFederation | None = None,
    notification_counts: NotificationCounter | None = None,
) -> Sync:
    store = SyncStore(db)
    if rooms.rooms is not None:
        rooms.events.add_membership_listener(store.invalidate_memberships)
        rooms.rooms.add_membership_listener(store.invalidate_memberships)
        store.enable_membership_cache()
    account_data = AccountDataService(await AccountDataStore.open(db), notifier)
    if rooms.ignored is not None:
        account_data.add_write_listener(rooms.ignored.on_account_data)
    typing = TypingService(clock, supervisor, notifier, store, federation)
    receipts = ReceiptService(
        await ReceiptStore.open(db),
        account_data,
        EventPositions(store, rooms.events),
        notifier,
        clock,
        federation,
    )
    presence = PresenceService(
        await PresenceStore.open(db), store, notifier, clock, supervisor, federation
    )
    to_device = ToDeviceService(
        await ToDeviceStore.open(db),
        AccountDevices(accounts),
        notifier,
        clock,
        server_name,
        federation,
    )
    device_lists = DeviceListService(await DeviceListStore.open(db), store, notifier)
    filters = FilterService(FilterStore(db))

    sources = notifier.sources
    sources.register(StreamKey.EVENTS, rooms.events.get_current_position)
    sources.register(StreamKey.ACCOUNT_DATA, account_data.get_current_position)
    sources.register(StreamKey.RECEIPTS, receipts.get_current_position)
    sources.register(StreamKey.TYPING, typing.get_current_position)
    sources.register(StreamKey.PRESENCE, presence.get_current_position)
    sources.register(StreamKey.TO_DEVICE, to_device.get_current_position)
    sources.register(StreamKey.DEVICE_LISTS, device_lists.get_current_position)

    loader = RoomDataLoader(
        store,
        rooms.events,
        rooms.state,
        rooms.visibility,
        EventSerializer(rooms.serializer),
    )
    sections = RoomsSectionBuilder(
        store,
        loader,
        rooms.events,
        rooms.state,
        typing,
        receipts,
        account_data,
        notifier,
        notification_counts,
        ignored=rooms.ignored,
    )
    notifier.track_room_changes(rooms.events.get_current_position())
    sync = SyncService(
        clock=clock,
        notifier=notifier,
        store=store,
        rooms=sections,
        account_data=account_data,
        presence=presence,
        to_device=to_device,
        keys=keys or NoKeys(),
    )
    _ = supervisor.start("to-device-txn-cleanup", to_device.run_cleanup())
    if hooks is not None:
        hooks.devices_deleted.append(to_device)
        hooks.devices_deleted.append(device_lists)
    endpoints = [
        *SyncResource(sync, filters).endpoints(),
        *FiltersResource(filters).endpoints(),
        *TypingResource(typing).endpoints(),
        *ReceiptsResource(receipts).endpoints(),
        *PresenceResource(presence).endpoints(),
        *AccountDataResource(account_data).endpoints(),
        *TagsResource(account_data).endpoints(),
        *ToDeviceResource(to_device).endpoints(),
    ]
    return Sync(
        notifier=notifier,
        store=store,
        typing=typing,
        receipts=receipts,
        account_data=account_data,
        presence=presence,
        to_device=to_device,
        device_lists=device_lists,
        filters=filters,
        sync=sync,
        endpoints=endpoints,
    )


def build_legacy_sync(
    *,
    sync: Sync,
    clock: Clock,
    rooms: RoomStore,
    events: EventStore,
    reading: RoomReadService,
    directory: RoomDescriptions,
) -> list[Endpoint]:
    """The deprecated r0 sync endpoints (`/events`, `/initialSync`, room initialSync),
    over /sync and the rooms' read side."""
    legacy = LegacySyncService(
        sync=sync.sync,
        notifier=sync.notifier,
        clock=clock,
        memberships=sync.store,
        reading=reading,
        events=events,
        room_initial_sync=RoomInitialSyncService(
            reading=reading, rooms=rooms, directory=directory
        ),
        presence=sync.presence,
        account_data=sync.account_data,
        receipts=sync.receipts,
    )
    return OldSyncResource(legacy).endpoints()
