"""Sending into rooms: messages, state events and redactions.

Spec: C-S API > Events > Sending events to a room; Redactions. Power levels are enforced
by the auth rules inside the pipeline (a refused local event is 403 M_FORBIDDEN with the
rule that failed). `PUT /send` is idempotent per (room, user, device, transaction ID);
setting a state event to what it already is returns the existing event (as Synapse).
"""

from __future__ import annotations

from typing import Any, Protocol

from ranvier.core.auth import (
    CREATE_KEY,
    POWER_LEVELS_KEY,
    get_named_level,
    get_power_levels_content,
    get_user_power_level,
)
from ranvier.core.errors import forbidden, not_found
from ranvier.services.events.creation import LocalEventSender
from ranvier.services.events.pipeline import RoomSession
from ranvier.services.rooms.aliases import DirectoryService
from ranvier.storage.stores.events import EventStore

__all__ = ["RoomMessageService"]

JsonDict = dict[str, Any]


class GuestRemover(Protocol):
    async def remove_guests(self, room_id: str) -> None: ...


class RoomMessageService:
    def __init__(
        self,
        *,
        sender: LocalEventSender,
        directory: DirectoryService,
        events: EventStore,
        guests: GuestRemover | None = None,
    ) -> None:
        self._guests = guests
        self._sender = sender
        self._directory = directory
        self._events = events

    async def send_message(
        self,
        *,
        user_id: str,
        device_id: str | None,
        room_id: str,
        event_type: str,
        content: JsonDict,
        txn_id: str,
        origin_server_ts: int | None = None,
    ) -> str:
        sent = await self._sender.send(
            room_id,
            sender=user_id,
            event_type=event_type,
            content=content,
            txn=(device_id or "", txn_id),
            origin_server_ts=origin_server_ts,
        )
        return sent.event_id

    async def send_state(
        self,
        *,
        user_id: str,
        room_id: str,
        event_type: str,
        state_key: str,
        content: JsonDict,
        origin_server_ts: int | None = None,
    ) -> str:
        if event_type == "m.room.canonical_alias":
            await self._directory.check_canonical_alias_content(room_id, content)

        async def changed(session: RoomSession) -> bool:
            current = await session.get_current_state([(event_type, state_key)])
            existing = current.get((event_type, state_key))
            return not (
                existing is not None
                and existing.sender == user_id
                and dict(existing.content) == content
            )

        sent = await self._sender.send(
            room_id,
            sender=user_id,
            event_type=event_type,
            state_key=state_key,
            content=content,
            precheck=changed,
            origin_server_ts=origin_server_ts,
        )
        if (
            event_type == "m.room.guest_access"
            and content.get("guest_access") != "can_join"
            and self._guests is not None
        ):
            # After the commit, not under the room lock: each guest's leave is an
            # event of its own (Synapse: `kick_guest_users`).
            await self._guests.remove_guests(room_id)
        return sent.event_id

    async def send_canonical_alias(
        self, room_id: str, sender: str, content: JsonDict
    ) -> None:
        """For the directory: rewrite the canonical alias after an alias was deleted."""
        await self.send_state(
            user_id=sender,
            room_id=room_id,
            event_type="m.room.canonical_alias",
            state_key="",
            content=content,
        )

    async def redact(
        self,
        *,
        user_id: str,
        device_id: str | None,
        room_id: str,
        event_id: str,
        reason: str | None,
        txn_id: str,
    ) -> str:
        """Redact `event_id`: the sender may redact their own events; others need the
        room's `redact` level (spec: C-S API > Redactions)."""
        target = await self._events.get_event(event_id)
        if target is None or target.event.room_id != room_id or not target.is_servable:
            raise not_found("Event not found.")
        content: JsonDict = {} if reason is None else {"reason": reason}

        async def allowed(session: RoomSession) -> bool:
            if target.event.sender == user_id:
                return True
            state = await session.get_current_state([CREATE_KEY, POWER_LEVELS_KEY])
            level = get_named_level(get_power_levels_content(state), "redact")
            if get_user_power_level(user_id, state) < level:
                raise forbidden("You don't have permission to redact this event.")
            return True

        sent = await self._sender.send(
            room_id,
            sender=user_id,
            event_type="m.room.redaction",
            content=content,
            redacts=event_id,
            txn=(device_id or "", txn_id),
            precheck=allowed,
            redaction_allowed=True,
        )
        return sent.event_id
