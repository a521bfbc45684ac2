"""EDUs received in transactions (spec: S-S API > Typing notifications, Receipts,
Presence, Send-to-device messaging, Device management).

Every EDU is checked against its sender: a user's ephemeral data is only accepted from
the user's own server (`origin`), room-scoped EDUs only from servers the room's ACL
allows, for users joined to the room. Bad EDUs are dropped and logged, never an error
for the whole transaction. Each kind is handed to the service that owns it:

* `m.typing` -> typing service; `m.receipt` (`m.read` only) -> receipts service;
* `m.presence` -> presence service (`set_remote_presence`);
* `m.direct_to_device` -> to-device inboxes of local devices (idempotent per
  `message_id`);
* `m.device_list_update`, `m.signing_key_update` -> the remote device-key cache (when
  an E2E `DeviceKeyUpdates` target is wired; it also moves the device-lists stream),
  else just the device-lists stream, so local users sharing a room with that user
  re-query their keys.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any, Final, Protocol

from ranvier.core.errors import MatrixError
from ranvier.core.ids import InvalidIdentifierError, domain_of
from ranvier.core.json import contains_nul, exceeds_nesting

logger = logging.getLogger(__name__)

__all__ = ["EduHandler"]

JsonDict = dict[str, Any]

MAX_TYPING_TIMEOUT_MS: Final = 30_000
MAX_PRESENCE_UPDATES: Final = 500


class TypingTarget(Protocol):
    async def set_typing(
        self, user_id: str, room_id: str, typing: bool, timeout_ms: int | None
    ) -> None: ...


class ReceiptTarget(Protocol):
    async def set_receipt(
        self,
        user_id: str,
        room_id: str,
        receipt_type: str,
        event_id: str,
        thread_id: str | None = None,
    ) -> None: ...


class PresenceTarget(Protocol):
    async def set_remote_presence(
        self,
        user_id: str,
        state: str,
        status_msg: str | None,
        *,
        last_active_ago: int,
        currently_active: bool,
    ) -> None: ...


class ToDeviceTarget(Protocol):
    async def send_to_device(
        self,
        sender_user_id: str,
        sender_device_id: str,
        event_type: str,
        txn_id: str,
        messages: Mapping[str, Any],
    ) -> None: ...


class DeviceListTarget(Protocol):
    async def notify_device_change(self, user_ids: Collection[str]) -> None: ...


class DeviceKeyUpdates(Protocol):
    """The E2E remote key cache: applies the EDU and moves the device-lists stream."""

    async def on_device_list_update(self, origin: str, content: JsonDict) -> None: ...

    async def on_signing_key_update(self, origin: str, content: JsonDict) -> None: ...


class AclCheck(Protocol):
    async def is_server_allowed(self, room_id: str, server_name: str) -> bool: ...


class SharedRooms(Protocol):
    async def get_joined_room_ids(self, user_id: str) -> set[str]: ...


def _owned_by(user_id: Any, origin: str) -> bool:
    if not isinstance(user_id, str):
        return False
    try:
        return domain_of(user_id) == origin
    except InvalidIdentifierError:
        return False


class EduHandler:
    def __init__(
        self,
        *,
        server_name: str,
        typing: TypingTarget,
        receipts: ReceiptTarget,
        presence: PresenceTarget,
        to_device: ToDeviceTarget,
        device_lists: DeviceListTarget,
        acl: AclCheck,
        rooms: SharedRooms,
        device_keys: DeviceKeyUpdates | None = None,
    ) -> None:
        self._server_name = server_name
        self._device_keys = device_keys
        self._typing = typing
        self._receipts = receipts
        self._presence = presence
        self._to_device = to_device
        self._device_lists = device_lists
        self._acl = acl
        self._rooms = rooms

    async def on_edu(self, origin: str, edu_type: str, content: JsonDict) -> None:
        """Handle one EDU; never raises for bad input."""
        handlers = {
            "m.typing": self._on_typing,
            "m.receipt": self._on_receipt,
            "m.presence": self._on_presence,
            "m.direct_to_device": self._on_to_device,
            "m.device_list_update": self._on_device_list,
            "m.signing_key_update": self._on_signing_key,
        }
        handler = handlers.get(edu_type)
        if handler is None:
            logger.debug("ignoring EDU %s from %s", edu_type, origin)
            return
        # Same limits the client API enforces: values we store must be storable on both
        # engines and re-encodable (orjson writes at most 254 levels).
        if contains_nul(content) or exceeds_nesting(content):
            logger.info("dropping malformed %s EDU from %s", edu_type, origin)
            return
        try:
            await handler(origin, content)
        except MatrixError as e:
            logger.info("dropping %s EDU from %s: %s", edu_type, origin, e)

    async def _on_typing(self, origin: str, content: JsonDict) -> None:
        room_id, user_id = content.get("room_id"), content.get("user_id")
        typing = content.get("typing")
        if not isinstance(room_id, str) or not isinstance(typing, bool):
            return
        if not _owned_by(user_id, origin) or not isinstance(user_id, str):
            return
        if not await self._acl.is_server_allowed(room_id, origin):
            return
        timeout = content.get("timeout")
        timeout_ms = (
            min(timeout, MAX_TYPING_TIMEOUT_MS)
            if type(timeout) is int and timeout > 0
            else None
        )
        await self._typing.set_typing(user_id, room_id, typing, timeout_ms)

    async def _on_receipt(self, origin: str, content: JsonDict) -> None:
        for room_id, by_type in content.items():
            if not isinstance(by_type, dict):
                continue
            if not await self._acl.is_server_allowed(room_id, origin):
                continue
            users = by_type.get("m.read")
            if not isinstance(users, dict):
                continue
            for user_id, receipt in users.items():
                if _owned_by(user_id, origin) and isinstance(receipt, dict):
                    await self._one_receipt(room_id, user_id, receipt)

    async def _one_receipt(self, room_id: str, user_id: str, receipt: JsonDict) -> None:
        event_ids = receipt.get("event_ids")
        if not isinstance(event_ids, list):
            return
        data = receipt.get("data")
        thread = data.get("thread_id") if isinstance(data, dict) else None
        for event_id in event_ids[:10]:
            if not isinstance(event_id, str):
                continue
            try:
                await self._receipts.set_receipt(
                    user_id,
                    room_id,
                    "m.read",
                    event_id,
                    thread if isinstance(thread, str) else None,
                )
            except MatrixError as e:
                logger.info("dropping receipt of %s: %s", user_id, e)

    async def _on_presence(self, origin: str, content: JsonDict) -> None:
        push = content.get("push")
        if not isinstance(push, list):
            return
        for update in push[:MAX_PRESENCE_UPDATES]:
            if not isinstance(update, dict):
                continue
            user_id, state = update.get("user_id"), update.get("presence")
            if not _owned_by(user_id, origin) or not isinstance(state, str):
                continue
            assert isinstance(user_id, str)
            if not await self._rooms.get_joined_room_ids(user_id):
                continue  # nobody here can see this user's presence
            ago = update.get("last_active_ago")
            status = update.get("status_msg")
            await self._presence.set_remote_presence(
                user_id,
                state,
                status if isinstance(status, str) else None,
                last_active_ago=ago if type(ago) is int else 0,
                currently_active=update.get("currently_active") is True,
            )

    async def _on_to_device(self, origin: str, content: JsonDict) -> None:
        sender, event_type = content.get("sender"), content.get("type")
        message_id, messages = content.get("message_id"), content.get("messages")
        if not _owned_by(sender, origin) or not isinstance(sender, str):
            return
        if not isinstance(event_type, str) or not isinstance(message_id, str):
            return
        if not isinstance(messages, dict):
            return
        local = {
            user_id: per_device
            for user_id, per_device in messages.items()
            if _owned_by(user_id, self._server_name)
        }
        if local:
            # The sender's server is the "device" the message ID is unique for.
            await self._to_device.send_to_device(
                sender, f"federation:{origin}", event_type, message_id, local
            )

    async def _shared_remote_user(self, origin: str, content: JsonDict) -> bool:
        user_id = content.get("user_id")
        if not _owned_by(user_id, origin) or not isinstance(user_id, str):
            return False
        # Only users sharing a room with ours matter to our clients.
        return bool(await self._rooms.get_joined_room_ids(user_id))

    async def _on_device_list(self, origin: str, content: JsonDict) -> None:
        if not await self._shared_remote_user(origin, content):
            return
        if self._device_keys is not None:
            await self._device_keys.on_device_list_update(origin, content)
        else:
            await self._device_lists.notify_device_change([content["user_id"]])

    async def _on_signing_key(self, origin: str, content: JsonDict) -> None:
        if not await self._shared_remote_user(origin, content):
            return
        if self._device_keys is not None:
            await self._device_keys.on_signing_key_update(origin, content)
        else:
            await self._device_lists.notify_device_change([content["user_id"]])
