"""Timeline and state of rooms in a sync response, computed for many rooms at once.

Spec: Client-Server API > Syncing (`Timeline`, `State`, `use_state_after`) and
Filtering > Lazy-loading room members.

For each room a `RoomPlan` says which stream range its timeline covers and whether the
client needs the full state (initial sync, newly joined room, `full_state`) or only what
changed since its token. Then, batched over the rooms:

* timelines: the newest `limit` events of each range (one transaction), re-checked
  against the filter and the history-visibility rules;
* state: the state before the first timeline event (or after the last event when the
  timeline is empty), minus, for incremental rooms, the state the client had at `since`.
  With `use_state_after` the state after the timeline replaces it;
* lazy-loaded members: only the member events of the timeline's senders (and the user's
  own on a full-state room); on incremental syncs only those this device was not sent
  already, except membership changes inside a limited timeline's gap, which are always
  sent.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ranvier.core.events.event import StateKey
from ranvier.core.filters import Filter
from ranvier.core.room_tokens import RoomToken
from ranvier.services.sync.serialize import EventSerializer, EventSource
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.storage.stores.state import EventStateGroups, StateGroup
from ranvier.storage.stores.sync import SyncStore
from ranvier.util.lru import LruCache

JsonDict = dict[str, Any]
StateMap = Mapping[StateKey, str]

MEMBER = "m.room.member"
# Devices whose lazy-loading "already sent" memory is kept.
LAZY_MEMBER_CACHE_DEVICES = 2048
LAZY_MEMBER_CACHE_ROOMS = 256


class StateSource(Protocol):
    async def get_state_groups_for_events(
        self, event_ids: Collection[str]
    ) -> dict[str, EventStateGroups]: ...

    async def get_state_groups(
        self, group_ids: Collection[int]
    ) -> dict[int, StateGroup]: ...


class VisibilityFilter(Protocol):
    async def filter_events_for_user(
        self, user_id: str, events: Sequence[StoredEvent], *, is_peeking: bool
    ) -> list[StoredEvent]:
        """Those of `events` the user may see (history visibility), in order."""
        ...

    async def remove_ignored(
        self, user_id: str, events: Sequence[StoredEvent]
    ) -> list[StoredEvent]:
        """`events` minus those of users `user_id` ignores (non-state)."""
        ...


@dataclass(frozen=True, slots=True)
class RoomPlan:
    room_id: str
    from_pos: int
    to_pos: int
    full_state: bool
    # Events at or after this position are visible without a history-visibility check
    # (the user was joined from there on); None: check everything.
    visible_from: int | None = None
    # The position of the client's `since` for state diffs (incremental rooms).
    since_pos: int | None = None


@dataclass(slots=True)
class RoomData:
    timeline: list[JsonDict] = field(default_factory=list)
    limited: bool = False
    prev_batch: str = ""
    state: list[JsonDict] = field(default_factory=list)
    # True when the timeline or state holds a membership event (summary may change).
    members_changed: bool = False

    def has_events(self) -> bool:
        return bool(self.timeline or self.state)


class _LazyMemberCache:
    """Which member event of which user each device was last sent, per room."""

    def __init__(self) -> None:
        self._cache: LruCache[tuple[str, str], LruCache[str, dict[str, str]]] = (
            LruCache(LAZY_MEMBER_CACHE_DEVICES)
        )

    def _rooms(self, user_id: str, device_id: str) -> LruCache[str, dict[str, str]]:
        rooms = self._cache.get((user_id, device_id))
        if rooms is None:
            rooms = LruCache(LAZY_MEMBER_CACHE_ROOMS)
            self._cache.set((user_id, device_id), rooms)
        return rooms

    def sent(self, user_id: str, device_id: str, room_id: str) -> dict[str, str]:
        return self._rooms(user_id, device_id).get(room_id) or {}

    def record(
        self,
        user_id: str,
        device_id: str,
        room_id: str,
        members: Mapping[str, str],
        reset: bool,
    ) -> None:
        rooms = self._rooms(user_id, device_id)
        current = {} if reset else dict(rooms.get(room_id) or {})
        current.update(members)
        rooms.set(room_id, current)


class RoomDataLoader:
    def __init__(
        self,
        store: SyncStore,
        events: EventSource,
        state: StateSource,
        visibility: VisibilityFilter,
        serializer: EventSerializer,
    ) -> None:
        self._store = store
        self._events = events
        self._state = state
        self._visibility = visibility
        self._serializer = serializer
        self._lazy = _LazyMemberCache()

    async def load(
        self,
        plans: Sequence[RoomPlan],
        *,
        user_id: str,
        device_id: str | None,
        event_filter: Filter,
        use_state_after: bool,
    ) -> dict[str, RoomData]:
        if not plans:
            return {}
        room_filter = event_filter.room
        limit = room_filter.timeline_limit
        slices = await self._store.get_timelines(
            {p.room_id: (p.from_pos, p.to_pos) for p in plans},
            limit,
            room_filter.timeline,
        )
        timelines: dict[str, list[StoredEvent]] = {}
        for plan in plans:
            events = [
                e
                for e in slices[plan.room_id].events
                if room_filter.timeline.matches(e.event)
            ]
            timelines[plan.room_id] = await self._visible(user_id, plan, events)
        states = await self._compute_states(plans, timelines, use_state_after)
        state_events: dict[str, list[StoredEvent]] = {}
        for plan in plans:
            state_events[plan.room_id] = await self._select_state(
                plan,
                states.get(plan.room_id, {}),
                timelines[plan.room_id],
                user_id=user_id,
                device_id=device_id,
                event_filter=event_filter,
                use_state_after=use_state_after,
            )
        # Serialise every room's events in one call: redaction lookups and bundled
        # relations then cost one batched read per sync instead of one per room (a
        # round trip each on PostgreSQL). Serialisation is per event and keeps order.
        room_ids = [plan.room_id for plan in plans]
        client_timelines = await self._serialize_per_room(
            room_ids, timelines, user_id, device_id, event_filter
        )
        client_states = await self._serialize_per_room(
            room_ids, state_events, user_id, device_id, event_filter
        )
        out: dict[str, RoomData] = {}
        for plan in plans:
            timeline = timelines[plan.room_id]
            state = state_events[plan.room_id]
            out[plan.room_id] = RoomData(
                timeline=client_timelines[plan.room_id],
                limited=slices[plan.room_id].limited,
                prev_batch=_prev_batch(timeline, plan),
                state=client_states[plan.room_id],
                members_changed=any(
                    e.event.type == MEMBER for e in (*timeline, *state)
                ),
            )
        return out

    async def serialize(
        self,
        events: Sequence[StoredEvent],
        *,
        user_id: str,
        device_id: str | None,
        event_filter: Filter,
    ) -> list[JsonDict]:
        """Client events, as timelines are served (for events outside any timeline)."""
        return await self._serializer.serialize(
            events, user_id=user_id, device_id=device_id, event_filter=event_filter
        )

    async def _serialize_per_room(
        self,
        room_ids: list[str],
        events: dict[str, list[StoredEvent]],
        user_id: str,
        device_id: str | None,
        event_filter: Filter,
    ) -> dict[str, list[JsonDict]]:
        flat = [e for room_id in room_ids for e in events[room_id]]
        serialized = await self._serializer.serialize(
            flat, user_id=user_id, device_id=device_id, event_filter=event_filter
        )
        out: dict[str, list[JsonDict]] = {}
        start = 0
        for room_id in room_ids:
            end = start + len(events[room_id])
            out[room_id] = serialized[start:end]
            start = end
        return out

    async def _visible(
        self, user_id: str, plan: RoomPlan, events: list[StoredEvent]
    ) -> list[StoredEvent]:
        if plan.visible_from is None:
            return await self._visibility.filter_events_for_user(
                user_id, events, is_peeking=False
            )
        cut = plan.visible_from
        events = await self._visibility.remove_ignored(user_id, events)
        older = [e for e in events if e.stream_ordering < cut]
        if not older:
            return events
        allowed = {
            e.event_id: e
            for e in await self._visibility.filter_events_for_user(
                user_id, older, is_peeking=False
            )
        }
        # The filtered copies: an erased sender's event comes back redacted.
        return [
            e if e.stream_ordering >= cut else allowed[e.event_id]
            for e in events
            if e.stream_ordering >= cut or e.event_id in allowed
        ]

    # -- state -------------------------------------------------------------------------------
    async def _compute_states(
        self,
        plans: Sequence[RoomPlan],
        timelines: Mapping[str, list[StoredEvent]],
        use_state_after: bool,
    ) -> dict[str, dict[StateKey, str]]:
        """Per room: the state to send (a full map, or a diff against `since`)."""
        # Where the state is read: (event_id, before?) per room.
        points: dict[str, tuple[str, bool]] = {}
        missing: dict[str, int] = {}
        for plan in plans:
            timeline = timelines[plan.room_id]
            if timeline and not use_state_after:
                points[plan.room_id] = (timeline[0].event_id, True)
            elif timeline:
                points[plan.room_id] = (timeline[-1].event_id, False)
            else:
                missing[plan.room_id] = plan.to_pos
        last = await self._store.get_last_event_ids(missing)
        for room_id, event_id in last.items():
            points[room_id] = (event_id, False)
        since_positions = {
            p.room_id: p.since_pos
            for p in plans
            if not p.full_state and p.since_pos is not None
        }
        since_last = await self._store.get_last_event_ids(since_positions)
        since_points = {r: (e, False) for r, e in since_last.items()}
        at_points, at_since = await self._states_at_many(points, since_points)
        out: dict[str, dict[StateKey, str]] = {}
        for plan in plans:
            state = dict(at_points.get(plan.room_id, {}))
            if not plan.full_state:
                before = at_since.get(plan.room_id, {})
                state = {k: v for k, v in state.items() if before.get(k) != v}
            out[plan.room_id] = state
        return out

    async def _states_at(
        self, points: Mapping[str, tuple[str, bool]]
    ) -> dict[str, StateMap]:
        return (await self._states_at_many(points))[0]

    async def _states_at_many(
        self, *point_sets: Mapping[str, tuple[str, bool]]
    ) -> list[dict[str, StateMap]]:
        """Per set of points: room -> the state at that room's point. Every set's
        groups are looked up together (one transaction each for the missing ones)."""
        event_ids = {eid for points in point_sets for eid, _ in points.values()}
        if not event_ids:
            return [{} for _ in point_sets]
        groups = await self._state.get_state_groups_for_events(event_ids)
        wanted: list[dict[str, int | None]] = []
        for points in point_sets:
            chosen: dict[str, int | None] = {}
            for room_id, (event_id, before) in points.items():
                g = groups.get(event_id)
                chosen[room_id] = (
                    None if g is None else (g.before if before else g.after)
                )
            wanted.append(chosen)
        loaded = await self._state.get_state_groups(
            {gid for chosen in wanted for gid in chosen.values() if gid is not None}
        )
        empty: StateMap = {}
        return [
            {
                room_id: loaded[gid].state
                if gid is not None and gid in loaded
                else empty
                for room_id, gid in chosen.items()
            }
            for chosen in wanted
        ]

    async def _select_state(
        self,
        plan: RoomPlan,
        state: Mapping[StateKey, str],
        timeline: Sequence[StoredEvent],
        *,
        user_id: str,
        device_id: str | None,
        event_filter: Filter,
        use_state_after: bool,
    ) -> list[StoredEvent]:
        state_filter = event_filter.room.state
        if (
            not state_filter.includes_room(plan.room_id)
            or state_filter.excludes_everything()
        ):
            return []
        in_timeline = {e.event_id for e in timeline}
        wanted: dict[StateKey, str] = {
            k: v
            for k, v in state.items()
            if (use_state_after or v not in in_timeline)
            and state_filter.matches_fields(k[0], None)
        }
        if state_filter.lazy_load_members:
            wanted = await self._lazy_members(
                plan,
                wanted,
                timeline,
                user_id,
                device_id,
                event_filter,
                use_state_after,
            )
        loaded = await self._events.get_events(wanted.values())
        return [
            loaded[eid]
            for eid in sorted(wanted.values(), key=lambda x: _order(loaded, x))
            if eid in loaded and state_filter.matches(loaded[eid].event)
        ]

    async def _lazy_members(
        self,
        plan: RoomPlan,
        wanted: dict[StateKey, str],
        timeline: Sequence[StoredEvent],
        user_id: str,
        device_id: str | None,
        event_filter: Filter,
        use_state_after: bool,
    ) -> dict[StateKey, str]:
        redundant_ok = event_filter.room.state.include_redundant_members
        senders = {e.event.sender for e in timeline}
        key = device_id or ""
        if plan.full_state:
            senders.add(user_id)
            needed = {
                k: v for k, v in wanted.items() if k[0] != MEMBER or k[1] in senders
            }
        else:
            # A diff: membership changes in the gap are sent whatever the cache says.
            needed = dict(wanted)
            cache = self._lazy.sent(user_id, key, plan.room_id)
            missing = [s for s in senders if (MEMBER, s) not in needed]
            start = await self._member_events_at_start(
                plan, timeline, missing, use_state_after
            )
            in_timeline = {e.event_id for e in timeline}
            for sender, event_id in start.items():
                if event_id in in_timeline and not use_state_after:
                    continue
                if redundant_ok or cache.get(sender) != event_id:
                    needed[(MEMBER, sender)] = event_id
        sent_now = {k[1]: v for k, v in needed.items() if k[0] == MEMBER}
        for e in timeline:
            if e.event.type == MEMBER and e.event.state_key is not None:
                sent_now[e.event.state_key] = e.event_id
        self._lazy.record(user_id, key, plan.room_id, sent_now, reset=plan.full_state)
        return needed

    async def _member_events_at_start(
        self,
        plan: RoomPlan,
        timeline: Sequence[StoredEvent],
        users: Iterable[str],
        use_state_after: bool,
    ) -> dict[str, str]:
        """The member event of each of `users` in the room state at the timeline start."""
        if timeline and not use_state_after:
            point = (timeline[0].event_id, True)
        elif timeline:
            point = (timeline[-1].event_id, False)
        else:
            last = await self._store.get_last_event_ids({plan.room_id: plan.to_pos})
            if plan.room_id not in last:
                return {}
            point = (last[plan.room_id], False)
        state = (await self._states_at({plan.room_id: point})).get(plan.room_id, {})
        return {u: state[(MEMBER, u)] for u in users if (MEMBER, u) in state}


def _order(loaded: Mapping[str, StoredEvent], event_id: str) -> int:
    found = loaded.get(event_id)
    return found.stream_ordering if found is not None else 0


def _prev_batch(timeline: Sequence[StoredEvent], plan: RoomPlan) -> str:
    """A `/messages` token (backwards) just before the first timeline event."""
    if not timeline:
        return RoomToken(stream=plan.to_pos).encode()
    first = timeline[0]
    return RoomToken(stream=first.stream_ordering - 1, depth=first.depth).encode()
