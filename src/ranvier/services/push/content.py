"""What pushers show about a notification: the event, the sender's display name in the
room, the room's name and alias (spec: Push Gateway API, `notification` fields).

`room_name` is the room's display name as Synapse sends it: its `m.room.name`, else its
canonical alias. An invite over federation to a room this server is not in has no room
state here; its name and alias then come from the invite's stripped state.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

from ranvier.core.events.event import Event, StateKey
from ranvier.storage.stores.event_rows import StoredEvent

NAME_KEY: StateKey = ("m.room.name", "")
ALIAS_KEY: StateKey = ("m.room.canonical_alias", "")


class EventSource(Protocol):
    async def get_event(self, event_id: str) -> StoredEvent | None: ...


class StateSource(Protocol):
    async def get_current_state_events(
        self, room_id: str, keys: Collection[StateKey]
    ) -> dict[StateKey, Event]: ...


@dataclass(frozen=True, slots=True)
class NotificationDetails:
    event: Event
    redacted: bool
    sender_display_name: str | None
    room_name: str | None
    room_alias: str | None


def _str(event: Event | None, key: str) -> str | None:
    if event is None:
        return None
    value = event.content.get(key)
    return value if isinstance(value, str) and value else None


def _stripped(event: Event, event_type: str, key: str) -> str | None:
    """`content[key]` of the `event_type` entry of an invite's `invite_room_state`."""
    if event.type != "m.room.member" or event.membership != "invite":
        return None
    room_state: Any = event.unsigned.get("invite_room_state")
    if not isinstance(room_state, list):
        return None
    for entry in room_state:
        if (
            isinstance(entry, dict)
            and entry.get("type") == event_type
            and entry.get("state_key") == ""
            and isinstance(entry.get("content"), dict)
        ):
            value = entry["content"].get(key)
            return value if isinstance(value, str) and value else None
    return None


class NotificationContent:
    def __init__(self, events: EventSource, state: StateSource) -> None:
        self._events = events
        self._state = state

    async def get_details(self, event_id: str) -> NotificationDetails | None:
        stored = await self._events.get_event(event_id)
        if stored is None:
            return None
        event = stored.event
        member_key: StateKey = ("m.room.member", event.sender)
        state = await self._state.get_current_state_events(
            event.room_id, [NAME_KEY, ALIAS_KEY, member_key]
        )
        name = _str(state.get(NAME_KEY), "name") or _stripped(
            event, "m.room.name", "name"
        )
        alias = _str(state.get(ALIAS_KEY), "alias") or _stripped(
            event, "m.room.canonical_alias", "alias"
        )
        return NotificationDetails(
            event=event,
            redacted=stored.redacted_by is not None,
            sender_display_name=_str(state.get(member_key), "displayname"),
            room_name=name or alias,
            room_alias=alias,
        )
