"""Who may read a room, and which of its events: the one place read paths (and sync) ask.

* `check_can_read(room_id, user_id)` decides room-level access (spec: C-S API > History
  visibility; Guest access; Room previews): joined members read; users who left read up
  to their leave; anyone may peek into a `world_readable` room; everyone else (including
  for rooms that do not exist, so invisible rooms stay invisible) gets 403.
* `filter_events_for_user(user_id, events, is_peeking)` applies the per-event history
  visibility rule (`core.visibility.is_event_visible`) using the state *at* each event.
  Events of erased users (`POST /account/deactivate` with `erase`) come back redacted
  unless the reader was joined at the event (Synapse: `filter_events_for_client`).
  Non-state events of users the reader ignores (`m.ignored_user_list`) are dropped
  (spec: C-S API > Ignoring Users; state events stay, as in Synapse).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ranvier.core.errors import forbidden
from ranvier.core.events.event import Event
from ranvier.core.events.redaction import redact_pdu
from ranvier.core.visibility import (
    WORLD_READABLE,
    history_visibility_of,
    is_event_visible,
)
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.storage.stores.events import EventStore
from ranvier.storage.stores.rooms import RoomStore
from ranvier.storage.stores.state import StateStore

__all__ = ["EventVisibility", "ReadAccess"]

HISTORY_KEY = ("m.room.history_visibility", "")


@dataclass(frozen=True, slots=True)
class ReadAccess:
    # The reader's current membership (None: never had one).
    membership: str | None
    # Reading without being, or having been, joined: `shared` history is hidden.
    is_peeking: bool
    # Users who left read only up to their leave event's stream position.
    max_stream: int | None = None


class ErasedUsers(Protocol):
    async def get_erased_users(self, user_ids: Iterable[str]) -> set[str]: ...


def erased_copy(stored: StoredEvent) -> StoredEvent:
    """`stored` with its PDU redacted (no `redacted_because`: nothing redacted it)."""
    ev = stored.event
    pruned = Event(redact_pdu(ev.data, ev.room_version), ev.event_id, ev.room_version)
    return dataclasses.replace(stored, event=pruned)


class IgnoredUsers(Protocol):
    async def get_ignored_users(self, user_id: str) -> frozenset[str]: ...


class EventVisibility:
    def __init__(
        self,
        *,
        rooms: RoomStore,
        state: StateStore,
        events: EventStore,
        erasure: ErasedUsers | None = None,
        ignored: IgnoredUsers | None = None,
    ) -> None:
        self._erasure = erasure
        self._ignored = ignored
        self._rooms = rooms
        self._state = state
        self._events = events

    async def is_world_readable(self, room_id: str) -> bool:
        ids = await self._state.get_current_state_event_ids(room_id, [HISTORY_KEY])
        if HISTORY_KEY not in ids:
            return False
        event = await self._events.get_event(ids[HISTORY_KEY])
        return event is not None and (
            history_visibility_of(event.event.content) == WORLD_READABLE
        )

    async def check_can_read(self, room_id: str, user_id: str) -> ReadAccess:
        """Room-level read access, or 403 M_FORBIDDEN."""
        membership = await self._rooms.get_membership(room_id, user_id)
        if membership is not None and membership.membership == "join":
            return ReadAccess("join", False)
        if membership is not None and membership.membership in ("leave", "ban"):
            joined_before = await self._rooms.has_ever_joined(room_id, user_id)
            if joined_before:
                return ReadAccess(
                    membership.membership, False, membership.stream_ordering
                )
        if await self.is_world_readable(room_id):
            return ReadAccess(membership.membership if membership else None, True)
        raise forbidden(
            "You aren't a member of the room and weren't previously a member of the room."
        )

    async def filter_events_for_user(
        self, user_id: str, events: Sequence[StoredEvent], *, is_peeking: bool
    ) -> list[StoredEvent]:
        """Those of `events` that `user_id` may see, in the same order."""
        servable = await self.remove_ignored(
            user_id, [e for e in events if e.is_servable]
        )
        if not servable:
            return []
        groups = await self._state.get_state_groups_for_events(
            [e.event_id for e in servable]
        )
        member_key = ("m.room.member", user_id)
        state_groups = await self._state.get_state_groups(
            {g.after for g in groups.values()}
        )
        wanted: dict[str, tuple[str | None, str | None]] = {}
        for stored in servable:
            g = groups.get(stored.event_id)
            group = state_groups.get(g.after) if g is not None else None
            state = group.state if group is not None else {}
            wanted[stored.event_id] = (state.get(HISTORY_KEY), state.get(member_key))
        lookups = {x for pair in wanted.values() for x in pair if x is not None}
        lookups |= {e.replaces_state for e in servable if e.replaces_state is not None}
        loaded = await self._events.get_events(lookups)
        out: list[StoredEvent] = []
        joined: set[str] = set()
        for stored in servable:
            hv_id, member_id = wanted[stored.event_id]
            hv = loaded.get(hv_id) if hv_id is not None else None
            member = loaded.get(member_id) if member_id is not None else None
            replaced = (
                loaded.get(stored.replaces_state)
                if stored.replaces_state is not None
                else None
            )
            ev = stored.event
            if is_event_visible(
                user_id=user_id,
                event_type=ev.type,
                state_key=ev.state_key,
                content=ev.content,
                prev_content=replaced.event.content if replaced is not None else None,
                history_visibility=history_visibility_of(
                    hv.event.content if hv else None
                ),
                membership=member.event.membership if member is not None else None,
                is_peeking=is_peeking,
            ):
                out.append(stored)
                if member is not None and member.event.membership == "join":
                    joined.add(stored.event_id)
        return await self._erase(out, joined)

    async def get_ignored_users(self, user_id: str) -> frozenset[str]:
        if self._ignored is None:
            return frozenset()
        return await self._ignored.get_ignored_users(user_id)

    async def remove_ignored(
        self, user_id: str, events: Sequence[StoredEvent]
    ) -> list[StoredEvent]:
        """`events` minus the non-state events of users `user_id` ignores."""
        if not events:
            return []
        ignored = await self.get_ignored_users(user_id)
        if not ignored:
            return list(events)
        return [
            e for e in events if e.event.is_state() or e.event.sender not in ignored
        ]

    async def _erase(
        self, events: list[StoredEvent], joined: set[str]
    ) -> list[StoredEvent]:
        """Erased senders' events, redacted for a reader not joined at the event."""
        if self._erasure is None or not events:
            return events
        erased = await self._erasure.get_erased_users({e.event.sender for e in events})
        if not erased:
            return events
        return [
            erased_copy(e)
            if e.event.sender in erased and e.event_id not in joined
            else e
            for e in events
        ]
