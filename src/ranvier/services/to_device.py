"""Send-to-device messaging and device-list change tracking (spec: Send-to-Device
messaging; End-to-End Encryption > tracking the device list).

To-device: `PUT /sendToDevice/{type}/{txnId}` is idempotent per (sender device, txn ID);
`*` targets every device of the user. Each device gets its own copy through its own sync
and the copy is deleted when the device syncs with a `since` past it. Local users only
for now: remote targets are dropped (logged) until the federation sender exists.

Device lists: `notify_device_change(user_id)` is the seam the accounts / E2E services call
when a device is added or removed or its keys change; sync reports those users in
`device_lists.changed` to everyone sharing a room with them.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from ranvier.core.errors import bad_json
from ranvier.core.streams import StreamKey
from ranvier.services.notifier import Notifier
from ranvier.storage.stores.to_device import (
    DeviceListStore,
    InboxMessage,
    OutgoingMessage,
    ToDeviceStore,
)
from ranvier.util.clock import Clock
from ranvier.util.lru import LruCache

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]

# Per sync response, as Synapse: the rest comes with the next (immediate) sync.
MAX_MESSAGES_PER_SYNC = 100
MAX_TARGETS = 10_000
TXN_ID_RETENTION_MS = 24 * 3600 * 1000
ACK_CACHE_DEVICES = 10_000
CLEANUP_INTERVAL_SECONDS = 3600.0


class DeviceLister(Protocol):
    async def get_device_ids(self, user_id: str) -> list[str]: ...


class RoomsOfUser(Protocol):
    async def get_joined_room_ids(self, user_id: str) -> set[str]: ...


class ToDeviceFederation(Protocol):
    """Sends `m.direct_to_device` EDUs to the servers of remote recipients."""

    async def send_to_device(
        self,
        sender: str,
        event_type: str,
        message_id: str,
        messages: Mapping[str, Mapping[str, Any]],
    ) -> None: ...


class ToDeviceService:
    def __init__(
        self,
        store: ToDeviceStore,
        devices: DeviceLister,
        notifier: Notifier,
        clock: Clock,
        server_name: str,
        federation: ToDeviceFederation | None = None,
    ) -> None:
        self._federation = federation
        self._store = store
        self._devices = devices
        self._notifier = notifier
        self._clock = clock
        self._server_name = server_name
        # Per device, the position up to which its inbox is known to be deleted: a device
        # syncing with the same or an older `since` costs no write.
        self._acked: LruCache[tuple[str, str], int] = LruCache(ACK_CACHE_DEVICES)

    def get_current_position(self) -> int:
        return self._store.get_current_position()

    async def send_to_device(
        self,
        sender_user_id: str,
        sender_device_id: str,
        event_type: str,
        txn_id: str,
        messages: Mapping[str, Any],
    ) -> None:
        outgoing = await self._expand(sender_user_id, event_type, messages)
        position = await self._store.add_messages(
            sender_user_id, sender_device_id, txn_id, outgoing, self._clock.time_msec()
        )
        if position is None:
            return  # a retried request: already delivered
        remote = {u: m for u, m in messages.items() if not self._is_local(u)}
        if remote and self._federation is not None:
            await self._federation.send_to_device(
                sender_user_id, event_type, f"{sender_device_id}/{txn_id}", remote
            )
        if not outgoing:
            return
        targets = {(m.user_id, m.device_id) for m in outgoing}
        self._notifier.notify(StreamKey.TO_DEVICE, position, devices=targets)

    def _is_local(self, user_id: str) -> bool:
        return user_id.split(":", 1)[-1] == self._server_name

    async def _expand(
        self, sender: str, event_type: str, messages: Mapping[str, Any]
    ) -> list[OutgoingMessage]:
        out: list[OutgoingMessage] = []
        for user_id, per_device in messages.items():
            if not isinstance(per_device, dict):
                raise bad_json("'messages' must map user IDs to objects.")
            if not user_id.startswith("@") or ":" not in user_id:
                raise bad_json(f"Invalid user ID {user_id!r} in 'messages'.")
            if not self._is_local(user_id):
                if self._federation is None:
                    logger.info(
                        "to-device for remote %s dropped: no federation", user_id
                    )
                continue  # sent over federation by the caller
            existing = await self._devices.get_device_ids(user_id)
            for device_id, content in per_device.items():
                if not isinstance(content, dict):
                    raise bad_json("to-device message contents must be objects.")
                targets = existing if device_id == "*" else [device_id]
                message = {"type": event_type, "sender": sender, "content": content}
                out.extend(
                    OutgoingMessage(user_id, d, message)
                    for d in targets
                    if d in existing
                )
            if len(out) > MAX_TARGETS:
                raise bad_json("Too many to-device targets.")
        return out

    # -- sync ----------------------------------------------------------------------------------
    async def get_messages_for_sync(
        self, user_id: str, device_id: str, since: int, now: int
    ) -> tuple[list[JsonDict], int]:
        """Acknowledge what `since` covers, return what is new and the position to put
        in the next token (short of `now` when more than one response's worth waits)."""
        acked = self._acked.get((user_id, device_id))
        if since > 0 and (acked is None or since > acked):
            await self._store.delete_messages_up_to(user_id, device_id, since)
            self._acked.set((user_id, device_id), since)
        msgs: list[InboxMessage] = await self._store.get_messages(
            user_id, device_id, since, now, MAX_MESSAGES_PER_SYNC
        )
        if len(msgs) < MAX_MESSAGES_PER_SYNC:
            return [m.message for m in msgs], now
        return [m.message for m in msgs], msgs[-1].stream_id

    async def on_devices_deleted(self, user_id: str, device_ids: Sequence[str]) -> None:
        """`AccountHooks.devices_deleted` listener: drop the devices' inboxes."""
        for device_id in device_ids:
            await self._store.delete_device_inbox(user_id, device_id)

    async def delete_old_txn_ids(self) -> int:
        return await self._store.delete_old_txn_ids(
            self._clock.time_msec() - TXN_ID_RETENTION_MS
        )

    async def run_cleanup(self) -> None:
        """Forget old transaction IDs, hourly (run by the supervisor)."""
        while True:
            await self._clock.sleep(CLEANUP_INTERVAL_SECONDS)
            try:
                removed = await self.delete_old_txn_ids()
            except Exception:
                logger.exception("to-device transaction ID cleanup failed")
            else:
                logger.debug("forgot %d to-device transaction IDs", removed)


class DeviceListService:
    def __init__(
        self, store: DeviceListStore, rooms: RoomsOfUser, notifier: Notifier
    ) -> None:
        self._store = store
        self._rooms = rooms
        self._notifier = notifier

    def get_current_position(self) -> int:
        return self._store.get_current_position()

    async def notify_device_change(self, user_ids: Collection[str]) -> None:
        """Devices or device keys of `user_ids` changed (the accounts/E2E seam)."""
        if not user_ids:
            return
        position = await self._store.add_device_list_changes(user_ids)
        rooms: set[str] = set()
        for user_id in user_ids:
            rooms |= await self._rooms.get_joined_room_ids(user_id)
        self._notifier.notify(
            StreamKey.DEVICE_LISTS, position, users=user_ids, rooms=rooms
        )

    async def on_devices_deleted(self, user_id: str, device_ids: Sequence[str]) -> None:
        """`AccountHooks.devices_deleted` listener."""
        await self.notify_device_change([user_id])
