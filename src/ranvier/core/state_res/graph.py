"""The auth-event graph as state resolution walks it, with per-resolution caches.

One `AuthGraph` lives for one `resolve_state` call: it memoises event lookups, parsed
`auth_events` lists, each event's power-levels parent and each sender's power, so no
event is parsed twice however many walks touch it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Container, Iterable
from collections.abc import Set as AbstractSet

from ranvier.core.auth import (
    CREATE_KEY,
    POWER_LEVELS_KEY,
    get_user_power_level_from,
)
from ranvier.core.events.event import Event

Lookup = Callable[[str], Event | None]
AuthChain = Callable[[str], Collection[str]]


class AuthGraph:
    __slots__ = ("_auth_ids", "_events", "_lookup", "_pl_parent", "_power", "rejected")

    def __init__(self, lookup: Lookup, rejected: Container[str]) -> None:
        self._lookup = lookup
        self.rejected = rejected
        self._events: dict[str, Event | None] = {}
        self._auth_ids: dict[str, tuple[str, ...]] = {}
        self._pl_parent: dict[str, str | None] = {}
        self._power: dict[str, int | float] = {}

    def get(self, event_id: str) -> Event | None:
        events = self._events
        if event_id in events:
            return events[event_id]
        event = events[event_id] = self._lookup(event_id)
        return event

    def get_accepted(self, event_id: str) -> Event | None:
        """The event, unless it is unknown or was rejected on receipt."""
        if event_id in self.rejected:
            return None
        return self.get(event_id)

    def auth_ids(self, event_id: str) -> tuple[str, ...]:
        """`auth_events` of the event, plus the create event it implies since v12.

        Since room v12 (MSC4291) the create event is not listed but every other event is
        authorised by it; its ID is the room ID with the `$` sigil.
        """
        ids = self._auth_ids.get(event_id)
        if ids is None:
            ids = self._auth_ids[event_id] = self._parse_auth_ids(event_id)
        return ids

    def _parse_auth_ids(self, event_id: str) -> tuple[str, ...]:
        event = self.get(event_id)
        if event is None:
            return ()
        rules = event.room_version
        raw = event.data.get("auth_events")
        ids: tuple[str, ...]
        if rules.is_v1_event_format or type(raw) is not list:
            ids = tuple(event.auth_event_ids)
        else:
            ids = tuple(raw)
            for auth_id in ids:
                if type(auth_id) is not str:
                    ids = tuple(a for a in ids if type(a) is str)
                    break
        if rules.room_id_from_create_event:
            room_id = event.data.get("room_id")
            if type(room_id) is str and event.type != "m.room.create":
                create_id = "$" + room_id[1:]
                if create_id not in ids:
                    ids = (*ids, create_id)
        return ids

    def auth_event_of_type(self, event_id: str, key: tuple[str, str]) -> Event | None:
        for auth_id in self.auth_ids(event_id):
            auth_event = self.get(auth_id)
            if (
                auth_event is not None
                and auth_event.type == key[0]
                and auth_event.state_key == key[1]
            ):
                return auth_event
        return None

    def power_levels_parent(self, event_id: str) -> str | None:
        """The ID of the `m.room.power_levels` event among the event's auth events."""
        try:
            return self._pl_parent[event_id]
        except KeyError:
            parent = self.auth_event_of_type(event_id, POWER_LEVELS_KEY)
            result = parent.event_id if parent is not None else None
            self._pl_parent[event_id] = result
            return result

    def sender_power(self, event_id: str) -> int | float:
        """The sender's power level according to the event's own auth events.

        As Synapse and ruma do: the power-levels event among its auth events decides; when
        there is none the creator has 100. Since v12 creators have infinite power.
        """
        try:
            return self._power[event_id]
        except KeyError:
            pass
        event = self.get(event_id)
        level: int | float = 0
        if event is not None:
            create = self.auth_event_of_type(event_id, CREATE_KEY)
            if create is not None:
                pl_id = self.power_levels_parent(event_id)
                pl_event = self.get(pl_id) if pl_id is not None else None
                level = get_user_power_level_from(event.sender, create, pl_event)
        self._power[event_id] = level
        return level

    def closure(
        self,
        starts: Iterable[str],
        stop: Container[str],
        auth_chain: AuthChain | None,
    ) -> set[str]:
        """`starts` and all their auth ancestors, skipping whatever is in `stop`.

        `stop` must be closed under ancestry (the closure of some other set), so skipping a
        node never hides an ancestor outside `stop`.
        """
        seen: set[str] = set()
        if auth_chain is not None:
            for start in starts:
                if start in stop or start in seen:
                    continue
                seen.add(start)
                seen.update(a for a in auth_chain(start) if a not in stop)
            return seen
        todo = [s for s in starts if s not in stop]
        seen.update(todo)
        cache = self._auth_ids
        while todo:
            node = todo.pop()
            parents = cache.get(node)
            if parents is None:
                parents = cache[node] = self._parse_auth_ids(node)
            for parent in parents:
                if parent not in seen and parent not in stop:
                    seen.add(parent)
                    todo.append(parent)
        return seen

    def conflicted_subgraph(self, conflicted: AbstractSet[str]) -> set[str]:
        """Events on some auth-event path between two conflicted events, endpoints included.

        State resolution v2.1 (MSC4297): one depth-first walk from every conflicted event
        marks each ancestor that itself reaches a conflicted event.
        """
        reaches: dict[str, bool] = {}
        for start in conflicted:
            if start in reaches:
                continue
            reaches[start] = True
            stack = [(start, iter(self.auth_ids(start)))]
            while stack:
                node, parents = stack[-1]
                for parent in parents:
                    seen = reaches.get(parent)
                    if seen is None:
                        reaches[parent] = parent in conflicted
                        stack.append((parent, iter(self.auth_ids(parent))))
                        break
                    if seen:
                        reaches[node] = True
                else:
                    stack.pop()
                    if stack and reaches[node]:
                        reaches[stack[-1][0]] = True
        return {node for node, flag in reaches.items() if flag}
