"""Read room state as events: current state, and the state at an event.

Thin, cached-through-the-stores helpers every room service (and sync) uses instead of
touching the state and event stores directly.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from ranvier.core.auth import (
    CREATE_KEY,
    POWER_LEVELS_KEY,
    get_power_levels_content,
    get_send_level,
    get_user_power_level,
)
from ranvier.core.events.event import Event, StateKey
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.storage.stores.events import EventStore
from ranvier.storage.stores.state import StateStore

__all__ = ["RoomStateReader"]


class RoomStateReader:
    def __init__(self, state: StateStore, events: EventStore) -> None:
        self._state = state
        self._events = events

    async def get_current_state_ids(self, room_id: str) -> dict[StateKey, str]:
        return await self._state.get_current_state_ids(room_id)

    async def get_current_state(self, room_id: str) -> dict[StateKey, StoredEvent]:
        ids = await self._state.get_current_state_ids(room_id)
        return await self._resolve(ids)

    async def get_current_state_events(
        self, room_id: str, keys: Collection[StateKey]
    ) -> dict[StateKey, Event]:
        ids = await self._state.get_current_state_event_ids(room_id, keys)
        return {k: s.event for k, s in (await self._resolve(ids)).items()}

    async def get_current_state_event(
        self, room_id: str, etype: str, state_key: str = ""
    ) -> Event | None:
        return (await self.get_current_state_events(room_id, [(etype, state_key)])).get(
            (etype, state_key)
        )

    async def get_current_content(
        self, room_id: str, etype: str, state_key: str = ""
    ) -> Mapping[str, Any] | None:
        event = await self.get_current_state_event(room_id, etype, state_key)
        return event.content if event is not None else None

    async def get_state_at(
        self,
        event_id: str,
        keys: Collection[StateKey] | None = None,
        *,
        before: bool = False,
    ) -> dict[StateKey, StoredEvent]:
        """The state after (or before) `event_id`, optionally only `keys`."""
        ids = await self._state.get_state_ids_at_event(event_id, before=before)
        if ids is None:
            return {}
        if keys is not None:
            ids = {k: ids[k] for k in keys if k in ids}
        return await self._resolve(ids)

    async def get_state_ids_at(
        self, event_id: str, *, before: bool = False
    ) -> Mapping[StateKey, str] | None:
        return await self._state.get_state_ids_at_event(event_id, before=before)

    async def resolve_ids(
        self, ids: Mapping[StateKey, str]
    ) -> dict[StateKey, StoredEvent]:
        return await self._resolve(ids)

    async def _resolve(
        self, ids: Mapping[StateKey, str]
    ) -> dict[StateKey, StoredEvent]:
        stored = await self._events.get_events(ids.values())
        return {k: stored[e] for k, e in ids.items() if e in stored}

    async def user_can_send_state(self, room_id: str, user_id: str, etype: str) -> bool:
        """Whether `user_id`'s power in the current state reaches the level for a state
        event of `etype` (e.g. may this user publish the room, delete its aliases)."""
        state = await self.get_current_state_events(
            room_id, [CREATE_KEY, POWER_LEVELS_KEY]
        )
        if CREATE_KEY not in state:
            return False
        required = get_send_level(etype, True, get_power_levels_content(state))
        return get_user_power_level(user_id, state) >= required
