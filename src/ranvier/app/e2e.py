"""Wiring of end-to-end encryption: device and one-time keys, cross-signing, remote
device-key cache, federation key endpoints and key backup.

Dehydrated devices (MSC3814) use the accounts services to create and delete the device
and the to-device service for its inbox.

Built in two steps because sync and E2E need each other: `build_key_counts` (one-time
key counts for `/sync`) comes before `build_sync`; `build_e2e` comes after sync and the
outbound federation services (it uses sync's device-list stream and sends EDUs through
the late-bound `FederationSeam`) and before inbound federation, whose EDU handler feeds
the remote device-key cache.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ranvier.api.client.dehydrated_device import DehydratedDeviceResource
from ranvier.api.client.keys import KeysResource
from ranvier.api.client.room_keys import RoomKeysResource
from ranvier.api.federation.user_keys import UserKeysResource
from ranvier.api.http import Endpoint
from ranvier.app.accounts import Accounts
from ranvier.app.room_federation import FederationSeam
from ranvier.app.sync import Sync
from ranvier.services.e2e.backup import KeyBackupService
from ranvier.services.e2e.cross_signing import CrossSigningService
from ranvier.services.e2e.dehydrated import DehydratedDevices
from ranvier.services.e2e.device_lists import DeviceListEdus, DeviceListPublisher
from ranvier.services.e2e.keys import E2eKeysService, LocalKeyReader, OneTimeKeyCounts
from ranvier.services.e2e.query import KeyQueryService
from ranvier.services.e2e.remote import FederationRequests, RemoteKeys
from ranvier.services.e2e.serving import FederationKeyServing
from ranvier.storage.database import Database
from ranvier.storage.stores.e2e_keys import E2eKeyStore
from ranvier.storage.stores.key_backup import KeyBackupStore
from ranvier.util.clock import Clock

__all__ = ["E2e", "build_e2e", "build_key_counts"]


@dataclass
class E2e:
    store: E2eKeyStore
    keys: E2eKeysService
    query: KeyQueryService
    cross_signing: CrossSigningService
    remote: RemoteKeys
    serving: FederationKeyServing
    backup: KeyBackupService
    dehydrated: DehydratedDevices
    client_endpoints: list[Endpoint]
    federation_endpoints: list[Endpoint]


def build_key_counts(db: Database) -> tuple[E2eKeyStore, OneTimeKeyCounts]:
    store = E2eKeyStore(db)
    return store, OneTimeKeyCounts(store)


class SeamEdus:
    """`DeviceListEdus` through the late-bound federation seam (no-op until bound)."""

    def __init__(self, seam: FederationSeam) -> None:
        self._seam = seam

    async def send_device_list_update(
        self,
        user_id: str,
        device_id: str,
        stream_id: int,
        prev_ids: Collection[int],
        *,
        deleted: bool = False,
        display_name: str | None = None,
        keys: Mapping[str, Any] | None = None,
    ) -> None:
        target = self._seam.target
        if target is not None:
            await target.edus.send_device_list_update(
                user_id,
                device_id,
                stream_id,
                prev_ids,
                deleted=deleted,
                display_name=display_name,
                keys=keys,
            )

    async def send_signing_key_update(
        self,
        user_id: str,
        master_key: Mapping[str, Any] | None,
        self_signing_key: Mapping[str, Any] | None,
    ) -> None:
        target = self._seam.target
        if target is not None:
            await target.edus.send_signing_key_update(
                user_id, master_key, self_signing_key
            )


def build_e2e(
    *,
    server_name: str,
    db: Database,
    clock: Clock,
    store: E2eKeyStore,
    sync: Sync,
    accounts: Accounts,
    federation_client: FederationRequests | None,
    edus: DeviceListEdus | None,
) -> E2e:
    publisher = DeviceListPublisher(store, sync.device_lists, edus)
    reader = LocalKeyReader(store)
    keys = E2eKeysService(store, reader, publisher, sync.store, clock)
    remote = RemoteKeys(
        server_name, federation_client, store, sync.store, sync.device_lists, clock
    )
    query = KeyQueryService(server_name, reader, keys, remote)
    cross_signing = CrossSigningService(store, publisher, keys, clock)
    serving = FederationKeyServing(server_name, reader, keys, accounts.store, store)
    backup = KeyBackupService(KeyBackupStore(db))
    accounts.hooks.devices_deleted.append(keys)
    accounts.hooks.devices_updated.append(keys)
    dehydrated = DehydratedDevices(
        store, accounts.store, accounts.devices, keys, sync.to_device, clock
    )
    return E2e(
        store=store,
        keys=keys,
        query=query,
        cross_signing=cross_signing,
        remote=remote,
        serving=serving,
        backup=backup,
        dehydrated=dehydrated,
        client_endpoints=[
            *KeysResource(keys, query, cross_signing, accounts.uia).endpoints(),
            *RoomKeysResource(backup).endpoints(),
            *DehydratedDeviceResource(dehydrated).endpoints(),
        ],
        federation_endpoints=UserKeysResource(serving).endpoints(),
    )
