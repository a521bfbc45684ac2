"""State calculation for the ingest pipeline: the state before an event (from its prev
events' states, resolved when they differ) and new state groups.

New groups are deltas on a base group, or snapshots once the base's delta chain is at
the store's limit (`StateStore.max_chain_length`): reads stay bounded while most writes
store only the keys that changed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from ranvier.core.events.event import Event, StateKey
from ranvier.core.room_versions import RoomVersion
from ranvier.core.state_res import resolve_state
from ranvier.storage.stores.event_rows import NewStateGroup
from ranvier.storage.stores.events import EventStore
from ranvier.storage.stores.state import StateGroup, StateStore

__all__ = ["MissingStateError", "StateCalculator", "StateResult"]

StateMap = Mapping[StateKey, str]


class MissingStateError(Exception):
    """The state after a prev event is unknown (missing event or an outlier); federation
    must fetch it before the event can be processed."""

    def __init__(self, event_ids: Collection[str]) -> None:
        super().__init__(f"no state known after {sorted(event_ids)}")
        self.event_ids = event_ids


@dataclass(frozen=True, slots=True)
class StateResult:
    """A room state: an existing group, or a new one the caller must persist."""

    group: StateGroup
    new_group: NewStateGroup | None = None


def diff_states(old: StateMap, new: StateMap) -> dict[StateKey, str | None]:
    delta: dict[StateKey, str | None] = {
        k: v for k, v in new.items() if old.get(k) != v
    }
    delta.update(dict.fromkeys(old.keys() - new.keys()))
    return delta


class StateCalculator:
    def __init__(self, events: EventStore, state: StateStore) -> None:
        self._events = events
        self._state = state

    async def get_group(self, group_id: int) -> StateGroup:
        group = await self._state.get_state_group(group_id)
        if group is None:
            raise MissingStateError([f"state group {group_id}"])
        return group

    def new_group(
        self,
        room_id: str,
        base: StateGroup | None,
        state: StateMap,
        delta: Mapping[StateKey, str | None] | None = None,
    ) -> StateResult:
        """A new group holding `state`, as a delta on `base` when the chain allows."""
        gid = self._state.allocate_group_id()
        if base is None or base.chain_length >= self._state.max_chain_length:
            row = NewStateGroup(gid, room_id, None, 0, dict(state))
            return StateResult(StateGroup(gid, state, 0), row)
        changes = diff_states(base.state, state) if delta is None else delta
        length = base.chain_length + 1
        row = NewStateGroup(gid, room_id, base.id, length, changes)
        return StateResult(StateGroup(gid, state, length), row)

    def add_state_event(
        self, room_id: str, base: StateGroup | None, event: Event
    ) -> StateResult:
        """The state after a state event, given the state before it."""
        key = event.state_tuple
        state = dict(base.state) if base is not None else {}
        state[key] = event.event_id
        return self.new_group(room_id, base, state, {key: event.event_id})

    async def state_after_events(
        self,
        room_id: str,
        room_version: RoomVersion,
        prev_ids: Sequence[str],
        pending_after: Mapping[str, StateGroup],
        pending_events: Mapping[str, Event],
    ) -> StateResult:
        """The state after all of `prev_ids` (the state before an event citing them).

        `pending_after` gives the state after events of the current batch that are not
        persisted yet; `pending_events` those events themselves.
        """
        groups = await self._groups_after(prev_ids, pending_after)
        distinct = {g.id: g for g in groups}
        if len(distinct) == 1:
            return StateResult(groups[0])
        ordered = sorted(distinct.values(), key=lambda g: g.id)
        resolved = await self.resolve(
            room_version, [g.state for g in ordered], pending_events
        )
        # A delta on the newest input group is usually the smallest.
        return self.new_group(room_id, ordered[-1], resolved)

    async def _groups_after(
        self, prev_ids: Sequence[str], pending_after: Mapping[str, StateGroup]
    ) -> list[StateGroup]:
        out: list[StateGroup] = []
        stored_ids = [e for e in prev_ids if e not in pending_after]
        stored = await self._state.get_state_groups_for_events(stored_ids)
        missing = [e for e in stored_ids if e not in stored]
        if missing:
            raise MissingStateError(missing)
        for eid in prev_ids:
            if eid in pending_after:
                out.append(pending_after[eid])
            else:
                out.append(await self.get_group(stored[eid].after))
        return out

    async def resolve(
        self,
        room_version: RoomVersion,
        state_sets: Sequence[StateMap],
        pending_events: Mapping[str, Event],
    ) -> dict[StateKey, str]:
        """State resolution over `state_sets`, prefetching every event it may read."""
        ids = {eid for s in state_sets for eid in s.values()}
        stored_ids = ids - pending_events.keys()
        chain = await self._events.get_auth_chain_ids(stored_ids)
        for ev in pending_events.values():
            if ev.event_id in ids:
                chain.update(ev.auth_event_ids)
        chain -= pending_events.keys()
        chain |= await self._events.get_auth_chain_ids(chain) if chain else set()
        stored = await self._events.get_events(stored_ids | chain)
        lookup: dict[str, Event] = {eid: s.event for eid, s in stored.items()}
        lookup.update(pending_events)
        rejected = {eid for eid, s in stored.items() if s.rejected_reason is not None}
        return resolve_state(room_version, state_sets, lookup.get, rejected=rejected)
