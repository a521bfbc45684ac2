"""The `rooms` of a sliding sync response: one `RoomResult` per room that is new to
the connection or changed since it was last sent (MSC4186 "Room results").

Per room the connection remembers (`SentRoom`) whether everything up to the
previous response's token was sent (`live`) or only up to an older position
(`previously`, the room left the client's ranges while it changed), the membership
it was sent with, and the config (`timeline_limit`, `required_state`, lazy members
sent). From that:

* a room never sent, or sent with another membership and now joined, is `initial`:
  the newest `timeline_limit` events, the whole matching `required_state`;
* otherwise only what happened after the room's position: new timeline events,
  changed state matching `required_state`, members of new senders (`$LAZY`), plus
  state newly asked for and older events when the `timeline_limit` grew
  (`expanded_timeline`, MSC4186 "Changing room configs");
* invites and knocks carry stripped state (`invite_state` / `knock_state`), sent
  again only when the membership event changes;
* rooms the user left or was removed from are read as of that membership event.

Timeline events pass the same history-visibility check as `/sync`
(`EventVisibility`), and are serialised by the same serializer.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ranvier.core.filters import DEFAULT_FILTER
from ranvier.core.room_tokens import RoomToken
from ranvier.core.sliding_sync import MEMBER, RequiredState, RoomConfig, StateQuery
from ranvier.core.streams import SyncToken
from ranvier.services.sync.room_data import StateSource, VisibilityFilter
from ranvier.services.sync.rooms import (
    PREJOIN_STATE_TYPES,
    NotificationCounter,
    RoomChanges,
)
from ranvier.services.sync.serialize import (
    EventSerializer,
    EventSource,
    strip_state_event,
)
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.storage.stores.push import MAIN_THREAD
from ranvier.storage.stores.room_lists import RoomListStore, StateChange
from ranvier.storage.stores.sliding_sync import LIVE, SentRoom
from ranvier.storage.stores.sync import MembershipRow, SyncStore

JsonDict = dict[str, Any]
StateKey = tuple[str, str]

JOIN, INVITE, KNOCK = "join", "invite", "knock"
STRIPPED = {INVITE: "invite_state", KNOCK: "knock_state"}
# Lazy members remembered per room and connection; past this the oldest are forgotten
# (and at worst sent again).
MAX_LAZY_REMEMBERED = 500


@dataclass(frozen=True, slots=True)
class RoomRequest:
    """One room to consider for the response, with its combined config."""

    room_id: str
    config: RoomConfig
    lists: tuple[str, ...]
    membership: MembershipRow
    prev: SentRoom | None
    bump_stamp: int
    is_dm: bool


@dataclass(slots=True)
class _Plan:
    req: RoomRequest
    initial: bool
    from_pos: int
    cap: int
    expanded: bool = False
    timeline: list[StoredEvent] = field(default_factory=list)
    limited: bool = False
    state_ids: dict[StateKey, str | None] = field(default_factory=dict)
    lazy_sent: set[str] = field(default_factory=set)
    # Events happened in the range (even if a zero limit sends none of them).
    changed: bool = False
    limit_confirmed: bool = False


@dataclass(slots=True)
class RoomsOutcome:
    rooms: dict[str, JsonDict] = field(default_factory=dict)
    # New connection rows for rooms whose sent-state changed.
    sent: dict[str, SentRoom] = field(default_factory=dict)
    # Rooms looked at and found current (their old row stays right).
    current: set[str] = field(default_factory=set)
    # Current rooms whose grown timeline_limit covers nothing the client lacks: the
    # bigger limit can be remembered without sending anything.
    limit_confirmed: set[str] = field(default_factory=set)


class RoomResultsBuilder:
    def __init__(
        self,
        store: SyncStore,
        lists: RoomListStore,
        events: EventSource,
        state: StateSource,
        visibility: VisibilityFilter,
        serializer: EventSerializer,
        notification_counts: NotificationCounter | None,
        changes: RoomChanges,
    ) -> None:
        self._changes = changes
        self._store = store
        self._lists = lists
        self._events = events
        self._state = state
        self._visibility = visibility
        self._serializer = serializer
        self._counts = notification_counts

    async def build(
        self,
        user_id: str,
        device_id: str,
        requests: Sequence[RoomRequest],
        since: SyncToken | None,
        now: SyncToken,
        dm_changed: bool,
    ) -> RoomsOutcome:
        out = RoomsOutcome()
        stripped = [r for r in requests if r.membership.membership in STRIPPED]
        await self._build_stripped(stripped, since, out)
        plans = [
            self._plan(r, since, now)
            for r in requests
            if r.membership.membership not in STRIPPED
        ]
        await self._restart_rejoined(user_id, plans, now)
        plans = await self._quiet_rooms_left_out(plans, out)
        await self._load_timelines(user_id, plans)
        await self._load_state(user_id, plans)
        active = [p for p in plans if _has_news(p)]
        out.current |= {p.req.room_id for p in plans if not _has_news(p)}
        out.limit_confirmed |= {p.req.room_id for p in plans if p.limit_confirmed}
        await self._render(user_id, device_id, active, since, dm_changed, out)
        return out

    # -- planning ----------------------------------------------------------------------------
    def _plan(self, req: RoomRequest, since: SyncToken | None, now: SyncToken) -> _Plan:
        m = req.membership
        cap = now.events if m.membership == JOIN else m.stream_ordering
        prev = req.prev
        if (
            prev is None
            or since is None
            or (prev.membership != m.membership and m.membership == JOIN)
        ):
            return _Plan(req, True, 0, cap)
        from_pos = since.events if prev.status == LIVE else prev.last_stream
        plan = _Plan(req, False, min(from_pos, cap), cap)
        plan.lazy_sent = set(_str_list(prev.config.get("lazy")))
        old_limit = prev.config.get("timeline_limit")
        if isinstance(old_limit, int) and req.config.timeline_limit > old_limit:
            plan.expanded = True
        return plan

    async def _restart_rejoined(
        self, user_id: str, plans: Sequence[_Plan], now: SyncToken
    ) -> None:
        """A room left and joined again since it was sent starts over (`initial`),
        as `/sync` sends a rejoined room with full state: what happened while the
        user was away is not a continuation of what the client has."""
        # A rejoin makes the current membership newer than the room's position, so
        # rooms without that need no look at the membership history.
        incremental = {
            p.req.room_id: p
            for p in plans
            if not p.initial
            and p.req.membership.membership == JOIN
            and p.req.membership.stream_ordering > p.from_pos
        }
        if not incremental:
            return
        low = min(p.from_pos for p in incremental.values())
        for change in await self._store.get_membership_changes(
            user_id, low, now.events
        ):
            p = incremental.get(change.room_id)
            if (
                p is not None
                and change.membership == JOIN
                and change.prev_membership != JOIN
                and change.stream_ordering > p.from_pos
            ):
                p.initial, p.from_pos, p.expanded = True, 0, False
                p.lazy_sent = set()

    async def _quiet_rooms_left_out(
        self, plans: list[_Plan], out: RoomsOutcome
    ) -> list[_Plan]:
        """Rooms already sent, with no event since and the same config, need no
        reads at all: the notifier knows which rooms got events (so an incremental
        request costs what changed, not the size of the window)."""
        maybe_quiet: dict[int, list[str]] = {}
        for p in plans:
            if not (p.initial or p.expanded or _state_expanded(p)):
                maybe_quiet.setdefault(p.from_pos, []).append(p.req.room_id)
        quiet: set[str] = set()
        for from_pos, room_ids in maybe_quiet.items():
            changed = self._changes.rooms_changed_since(room_ids, from_pos)
            if changed is not None:
                quiet |= set(room_ids) - changed
        out.current |= quiet
        return [p for p in plans if p.req.room_id not in quiet]

    async def _load_timelines(self, user_id: str, plans: Sequence[_Plan]) -> None:
        by_limit: dict[int, list[_Plan]] = {}
        for p in plans:
            by_limit.setdefault(max(p.req.config.timeline_limit, 1), []).append(p)
        fetched: dict[str, tuple[list[StoredEvent], bool]] = {}
        for limit, group in by_limit.items():
            slices = await self._store.get_timelines(
                {
                    p.req.room_id: (0 if p.initial or p.expanded else p.from_pos, p.cap)
                    for p in group
                },
                limit,
            )
            for p in group:
                part = slices[p.req.room_id]
                fetched[p.req.room_id] = (part.events, part.limited)
        allowed = await self._visible(user_id, plans, fetched)
        for p in plans:
            events, limited = fetched[p.req.room_id]
            _set_timeline(p, [e for e in events if e.event_id in allowed], limited)

    async def _visible(
        self,
        user_id: str,
        plans: Sequence[_Plan],
        fetched: Mapping[str, tuple[list[StoredEvent], bool]],
    ) -> set[str]:
        """IDs of the fetched events the user may see. From their join on, a joined
        user sees everything (as on /sync); before it, and in rooms left, history
        visibility decides: one check for the events of every room at once."""
        allowed: set[str] = set()
        older: list[StoredEvent] = []
        # Spec (Ignoring users): their non-state events are not served; the same
        # check as /sync's.
        kept = {
            e.event_id
            for e in await self._visibility.remove_ignored(
                user_id, [e for events, _ in fetched.values() for e in events]
            )
        }
        for p in plans:
            m = p.req.membership
            cut = m.stream_ordering if m.membership == JOIN else None
            for e in fetched[p.req.room_id][0]:
                if e.event_id not in kept:
                    continue
                if cut is not None and e.stream_ordering >= cut:
                    allowed.add(e.event_id)
                else:
                    older.append(e)
        if older:
            visible = await self._visibility.filter_events_for_user(
                user_id, older, is_peeking=False
            )
            allowed |= {e.event_id for e in visible}
        return allowed

    async def _load_state(self, user_id: str, plans: Sequence[_Plan]) -> None:
        """Pick each room's `required_state`: joined rooms read only the keys their
        config can match (current state); rooms left read the state at the leave."""
        queries = {
            p.req.room_id: _state_query(p, user_id)
            for p in plans
            if p.req.membership.membership == JOIN
        }
        current = await self._lists.get_state_ids(queries)
        at_leave = await self._state_after(
            [
                p.req.membership.event_id
                for p in plans
                if p.req.membership.membership != JOIN
            ]
        )
        incremental = [p for p in plans if not p.initial]
        changes = await self._lists.get_state_changes(
            {p.req.room_id: (p.from_pos, p.cap) for p in incremental}
        )
        for p in plans:
            full = (
                current.get(p.req.room_id, {})
                if p.req.membership.membership == JOIN
                else at_leave.get(p.req.membership.event_id, {})
            )
            if p.initial:
                _select_initial_state(p, full, user_id)
            else:
                _select_incremental_state(
                    p, changes.get(p.req.room_id, []), full, user_id, _state_expanded(p)
                )

    async def _state_after(
        self, event_ids: Collection[str]
    ) -> dict[str, dict[StateKey, str]]:
        if not event_ids:
            return {}
        groups = await self._state.get_state_groups_for_events(event_ids)
        loaded = await self._state.get_state_groups({g.after for g in groups.values()})
        out: dict[str, dict[StateKey, str]] = {}
        for event_id, g in groups.items():
            group = loaded.get(g.after)
            out[event_id] = dict(group.state) if group is not None else {}
        return out

    # -- rendering ---------------------------------------------------------------------------
    async def _render(
        self,
        user_id: str,
        device_id: str,
        plans: Sequence[_Plan],
        since: SyncToken | None,
        dm_changed: bool,
        out: RoomsOutcome,
    ) -> None:
        if not plans:
            return
        wanted = {eid for p in plans for eid in p.state_ids.values() if eid}
        loaded = await self._events.get_events(wanted)
        state_events = {
            p.req.room_id: sorted(
                (loaded[e] for e in p.state_ids.values() if e and e in loaded),
                key=lambda s: s.stream_ordering,
            )
            for p in plans
        }
        flat = [e for p in plans for e in (*state_events[p.req.room_id], *p.timeline)]
        serialized = await self._serializer.serialize(
            flat, user_id=user_id, device_id=device_id, event_filter=DEFAULT_FILTER
        )
        by_id = {e.event_id: s for e, s in zip(flat, serialized, strict=True)}
        joined = [p for p in plans if p.req.membership.membership == JOIN]
        # Member counts and heroes are today's: only for rooms the user is in (a room
        # left is shown as it was, as /sync does).
        summaries = await self._store.get_room_summaries(
            [p.req.room_id for p in joined], user_id
        )
        counts = await self._unread(user_id, joined)
        facts = await self._lists.get_fact_contents([p.req.room_id for p in plans])
        heroes = await self._heroes(plans, summaries, facts)
        for p in plans:
            room_id = p.req.room_id
            body = _room_body(p, since, dm_changed, facts.get(room_id, {}))
            body["required_state"] = [
                by_id[e.event_id] for e in state_events[room_id]
            ] + [
                {"type": k[0], "state_key": k[1]}
                for k, eid in p.state_ids.items()
                if eid is None
            ]
            body["timeline"] = [by_id[e.event_id] for e in p.timeline]
            summary = summaries.get(room_id)
            if summary is not None:
                body["joined_count"] = summary.joined
                body["invited_count"] = summary.invited
            if room_id in heroes:
                body["heroes"] = heroes[room_id]
            if room_id in counts:
                body["notification_count"], body["highlight_count"] = counts[room_id]
            out.rooms[room_id] = body
            out.sent[room_id] = _sent_row(p)

    async def _unread(
        self, user_id: str, plans: Sequence[_Plan]
    ) -> dict[str, tuple[int, int]]:
        if not plans or self._counts is None:
            return {p.req.room_id: (0, 0) for p in plans}
        floors = {p.req.room_id: p.req.membership.stream_ordering for p in plans}
        counts = await self._counts.get_unread_notification_counts(
            user_id, floors, max(p.cap for p in plans)
        )
        out: dict[str, tuple[int, int]] = {}
        for p in plans:
            c = counts.get(p.req.room_id)
            # MSC4186: the main timeline's counts; threads' are not included.
            main = c.threads.get(MAIN_THREAD) if c is not None else None
            out[p.req.room_id] = (
                (main.notifications, main.highlights) if main is not None else (0, 0)
            )
        return out

    async def _heroes(
        self,
        plans: Sequence[_Plan],
        summaries: Mapping[str, Any],
        facts: Mapping[str, Mapping[str, JsonDict]],
    ) -> dict[str, list[JsonDict]]:
        """Heroes of initial rooms without a name (MSC4186 `heroes`), with the display
        names and avatars of their member events."""
        wanted: dict[str, list[str]] = {}
        for p in plans:
            summary = summaries.get(p.req.room_id)
            name = facts.get(p.req.room_id, {}).get("m.room.name", {}).get("name")
            if p.initial and summary is not None and not isinstance(name, str):
                wanted[p.req.room_id] = list(summary.heroes)
        if not wanted:
            return {}
        state = await self._lists.get_state_ids(
            {
                room_id: StateQuery(keys=frozenset((MEMBER, u) for u in users))
                for room_id, users in wanted.items()
            }
        )
        member_ids = {
            room_id: {u: state.get(room_id, {}).get((MEMBER, u)) for u in users}
            for room_id, users in wanted.items()
        }
        loaded = await self._events.get_events(
            eid for ids in member_ids.values() for eid in ids.values() if eid
        )
        out: dict[str, list[JsonDict]] = {}
        for room_id, ids in member_ids.items():
            heroes: list[JsonDict] = []
            for user, eid in ids.items():
                hero: JsonDict = {"user_id": user}
                stored = loaded.get(eid) if eid else None
                content = stored.event.content if stored is not None else {}
                for src, dst in (
                    ("displayname", "displayname"),
                    ("avatar_url", "avatar_url"),
                ):
                    if isinstance(content.get(src), str):
                        hero[dst] = content[src]
                heroes.append(hero)
            out[room_id] = heroes
        return out

    # -- invites and knocks ------------------------------------------------------------------
    async def _build_stripped(
        self,
        requests: Sequence[RoomRequest],
        since: SyncToken | None,
        out: RoomsOutcome,
    ) -> None:
        fresh = [
            r
            for r in requests
            if r.prev is None
            or since is None
            or r.prev.membership != r.membership.membership
            or r.membership.stream_ordering > _from_pos(r.prev, since)
        ]
        out.current |= {r.room_id for r in requests} - {r.room_id for r in fresh}
        if not fresh:
            return
        loaded = await self._events.get_events([r.membership.event_id for r in fresh])
        for r in fresh:
            stored = loaded.get(r.membership.event_id)
            membership = r.membership.membership
            events: list[JsonDict] = []
            if stored is not None:
                carried = stored.event.unsigned.get(f"{membership}_room_state")
                if isinstance(carried, list):
                    events = [
                        strip_state_event(e) for e in carried if isinstance(e, dict)
                    ]
                else:
                    events = await self._prejoin_state(r.room_id)
                events = [e for e in events if e.get("type") != MEMBER]
                events.append(strip_state_event(dict(stored.event.data)))
            body: JsonDict = {
                "initial": True,
                "membership": membership,
                STRIPPED[membership]: events,
                "bump_stamp": r.bump_stamp,
            }
            if r.lists:
                body["lists"] = list(r.lists)
            if r.is_dm:
                body["is_dm"] = True
            out.rooms[r.room_id] = body
            out.sent[r.room_id] = SentRoom(
                r.room_id,
                LIVE,
                r.membership.stream_ordering,
                membership,
                _config_json(r.config, set()),
            )

    async def _prejoin_state(self, room_id: str) -> list[JsonDict]:
        query = StateQuery(keys=frozenset((t, "") for t in PREJOIN_STATE_TYPES))
        state = (await self._lists.get_state_ids({room_id: query})).get(room_id, {})
        ids = [state[(t, "")] for t in PREJOIN_STATE_TYPES if (t, "") in state]
        loaded = await self._events.get_events(ids)
        return [
            strip_state_event(dict(loaded[e].event.data)) for e in ids if e in loaded
        ]


# -- helpers ------------------------------------------------------------------------------------


def _str_list(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _old_limit(p: _Plan) -> int:
    old = p.req.prev.config.get("timeline_limit") if p.req.prev is not None else None
    return old if isinstance(old, int) else 0


def _from_pos(prev: SentRoom, since: SyncToken) -> int:
    return since.events if prev.status == LIVE else prev.last_stream


def _old_required_state(p: _Plan) -> RequiredState | None:
    if p.req.prev is None:
        return None
    return RequiredState.from_json(p.req.prev.config.get("required_state"))


def _state_expanded(p: _Plan) -> bool:
    old = _old_required_state(p)
    return old is not None and old != p.req.config.required_state


def _lazy_targets(p: _Plan) -> set[str]:
    """Members to send with `$LAZY`: the timeline's senders and the targets of its
    membership events (MSC4186 "Lazy loaded memberships")."""
    users = {e.event.sender for e in p.timeline}
    users |= {
        e.event.state_key
        for e in p.timeline
        if e.event.type == MEMBER and e.event.state_key is not None
    }
    return users


def _state_query(p: _Plan, user_id: str) -> StateQuery:
    spec = p.req.config.required_state
    query = StateQuery()
    if p.initial or _state_expanded(p):
        query = spec.state_query(user_id)
    if spec.lazy:
        users = _lazy_targets(p) - (set() if p.initial else p.lazy_sent)
        query = query.union(StateQuery(keys=frozenset((MEMBER, u) for u in users)))
    return query


def _select_initial_state(p: _Plan, full: Mapping[StateKey, str], user_id: str) -> None:
    spec = p.req.config.required_state
    chosen = {k: v for k, v in full.items() if spec.matches(k, user_id)}
    if spec.lazy:
        for user in _lazy_targets(p):
            if (MEMBER, user) in full:
                chosen[(MEMBER, user)] = full[(MEMBER, user)]
        p.lazy_sent = _lazy_targets(p)
    p.state_ids.update(chosen)


def _select_incremental_state(
    p: _Plan,
    changes: Sequence[StateChange],
    full: Mapping[StateKey, str],
    user_id: str,
    expanded: bool,
) -> None:
    spec = p.req.config.required_state
    for change in changes:
        if spec.matches(change.key, user_id) or (
            spec.lazy and change.key[0] == MEMBER and change.key[1] in p.lazy_sent
        ):
            p.state_ids[change.key] = change.event_id
    old = _old_required_state(p)
    if expanded and old is not None:
        # State the client did not ask for before (MSC4186 "Changes to required_state").
        for key, event_id in full.items():
            if spec.matches(key, user_id) and not old.matches(key, user_id):
                p.state_ids.setdefault(key, event_id)
    if spec.lazy:
        for user in _lazy_targets(p) - p.lazy_sent:
            if (MEMBER, user) in full:
                p.state_ids.setdefault((MEMBER, user), full[(MEMBER, user)])
            p.lazy_sent.add(user)


def _set_timeline(p: _Plan, events: list[StoredEvent], limited: bool) -> None:
    new = [e for e in events if e.stream_ordering > p.from_pos]
    if p.expanded and not new and len(events) <= _old_limit(p):
        # The client already has every event the bigger limit covers.
        p.expanded = False
        p.limit_confirmed = True
    if not p.initial and not p.expanded:
        limited = limited and len(new) == len(events)
        events = new
    want = p.req.config.timeline_limit
    p.limited = limited or (want == 0 and bool(events))
    p.changed = bool(events)
    p.timeline = events[-want:] if want else []


def _has_news(p: _Plan) -> bool:
    return p.initial or p.changed or bool(p.state_ids) or p.expanded


def _config_json(config: RoomConfig, lazy: set[str]) -> JsonDict:
    return {
        "timeline_limit": config.timeline_limit,
        "required_state": config.required_state.to_json(),
        "lazy": sorted(lazy)[:MAX_LAZY_REMEMBERED],
    }


def _sent_row(p: _Plan) -> SentRoom:
    m = p.req.membership
    return SentRoom(
        p.req.room_id,
        LIVE,
        p.cap,
        m.membership,
        _config_json(p.req.config, p.lazy_sent),
    )


def _room_body(
    p: _Plan, since: SyncToken | None, dm_changed: bool, facts: Mapping[str, JsonDict]
) -> JsonDict:
    req = p.req
    body: JsonDict = {
        "membership": req.membership.membership,
        "bump_stamp": req.bump_stamp,
    }
    if req.lists:
        body["lists"] = list(req.lists)
    changed = {k[0] for k in p.state_ids if k[1] == ""}
    name = facts.get("m.room.name", {}).get("name")
    avatar = facts.get("m.room.avatar", {}).get("url")
    if p.initial:
        body["initial"] = True
        if isinstance(name, str) and name:
            body["name"] = name
        if isinstance(avatar, str) and avatar:
            body["avatar"] = avatar
    else:
        if "m.room.name" in changed:
            body["name"] = name if isinstance(name, str) and name else None
        if "m.room.avatar" in changed:
            body["avatar"] = avatar if isinstance(avatar, str) and avatar else None
    if req.is_dm and (p.initial or dm_changed):
        body["is_dm"] = True
    elif dm_changed and not p.initial:
        body["is_dm"] = False
    if p.expanded:
        body["expanded_timeline"] = True
    body["limited"] = p.limited
    body["num_live"] = (
        0
        if since is None
        else sum(1 for e in p.timeline if e.stream_ordering > since.events)
    )
    body["prev_batch"] = _prev_batch(p)
    return body


def _prev_batch(p: _Plan) -> str:
    """A `/messages` token (backwards) just before the first timeline event."""
    if not p.timeline:
        return RoomToken(stream=p.cap).encode()
    first = p.timeline[0]
    return RoomToken(stream=first.stream_ordering - 1, depth=first.depth).encode()
