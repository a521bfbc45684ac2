"""Serving room history and state to other servers (spec: S-S API > Backfilling and
retrieving missing events; Retrieving events; Room state).

Every request is for a room this server knows, from a server that passes the room's ACL
and has a joined user in the room (or the room is world-readable): else 404 / 403.
Events are served as PDUs; those the requesting server may not see under the history
visibility at the event (`is_event_visible_to_server`) are served *redacted*, so its
DAG keeps no holes (as Synapse). So are all events of erased users (deactivated with
`erase`; Synapse's `filter_events_for_server`). Rejected events are never served; outliers are served
by `/event` and in auth chains, never in timelines.

State (`/state`, `/state_ids`) is the state *before* the event, which is what the
requesting server combines with the event itself (as Synapse answers).
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Final, Literal, Protocol

from ranvier.core.errors import not_found
from ranvier.core.events.event import StateKey
from ranvier.core.events.federation_format import federation_pdu
from ranvier.core.ids import InvalidIdentifierError, domain_of
from ranvier.core.room_versions import RoomVersion
from ranvier.core.server_visibility import is_event_visible_to_server
from ranvier.core.visibility import SHARED, history_visibility_of
from ranvier.services.federation.access import RoomAccess
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.storage.stores.events import EventStore
from ranvier.storage.stores.state import StateStore
from ranvier.util.clock import Clock

__all__ = ["HistoryService"]

JsonDict = dict[str, Any]

MAX_BACKFILL: Final = 100
MAX_MISSING_EVENTS: Final = 20
HISTORY_KEY: Final = ("m.room.history_visibility", "")


def _domain(user_id: str) -> str | None:
    try:
        return domain_of(user_id)
    except InvalidIdentifierError:
        return None


class ErasedUsers(Protocol):
    async def get_erased_users(self, user_ids: Iterable[str]) -> set[str]: ...


class HistoryService:
    def __init__(
        self,
        *,
        server_name: str,
        access: RoomAccess,
        events: EventStore,
        state: StateStore,
        clock: Clock,
        erasure: ErasedUsers | None = None,
    ) -> None:
        self._erasure = erasure
        self._server_name = server_name
        self._access = access
        self._events = events
        self._state = state
        self._clock = clock

    def _transaction(self, pdus: list[JsonDict]) -> JsonDict:
        return {
            "origin": self._server_name,
            "origin_server_ts": self._clock.time_msec(),
            "pdus": pdus,
        }

    # -- single events ------------------------------------------------------------------
    async def get_event(self, origin: str, event_id: str) -> JsonDict:
        stored = await self._events.get_event(event_id)
        if stored is None or stored.rejected_reason is not None:
            raise not_found("Event not found.")
        await self._access.check_can_read(origin, stored.event.room_id)
        return self._transaction(await self.serve(origin, [stored]))

    async def _room_event(self, room_id: str, event_id: str) -> StoredEvent:
        stored = await self._events.get_event(event_id)
        if (
            stored is None
            or stored.rejected_reason is not None
            or stored.event.room_id != room_id
        ):
            raise not_found("Event not found.")
        return stored

    # -- history --------------------------------------------------------------------------
    async def backfill(
        self, origin: str, room_id: str, from_ids: Sequence[str], limit: int
    ) -> JsonDict:
        """Up to `limit` events from `from_ids` (included) backwards through their prev
        events, deepest first."""
        await self._access.check_can_read(origin, room_id)
        limit = max(0, min(limit, MAX_BACKFILL))
        found = await self._walk_back(room_id, from_ids, set(), limit, 0)
        return self._transaction(await self.serve(origin, found))

    async def get_missing_events(
        self,
        origin: str,
        room_id: str,
        *,
        earliest: Collection[str],
        latest: Collection[str],
        limit: int,
        min_depth: int,
    ) -> JsonDict:
        """Events between `earliest` and `latest` (neither included): walking back from
        the prev events of `latest`, stopping at `earliest` and below `min_depth`;
        answered oldest first."""
        await self._access.check_can_read(origin, room_id)
        limit = max(0, min(limit, MAX_MISSING_EVENTS))
        starts = await self._events.get_events(latest)
        prevs = [
            p
            for s in starts.values()
            if s.event.room_id == room_id
            for p in s.event.prev_event_ids
        ]
        stop = set(earliest) | set(latest)
        found = await self._walk_back(room_id, prevs, stop, limit, min_depth)
        found.sort(key=lambda s: (s.depth, s.stream_ordering))
        return {"events": await self.serve(origin, found)}

    async def _walk_back(
        self,
        room_id: str,
        start: Iterable[str],
        stop: set[str],
        limit: int,
        min_depth: int,
    ) -> list[StoredEvent]:
        seen = set(stop)
        heap: list[tuple[int, str]] = []
        await self._push(heap, room_id, start, seen)
        out: list[StoredEvent] = []
        while heap and len(out) < limit:
            _, event_id = heapq.heappop(heap)
            stored = await self._events.get_event(event_id)
            if stored is None or stored.depth < min_depth:
                continue
            out.append(stored)
            await self._push(heap, room_id, stored.event.prev_event_ids, seen)
        return out

    async def _push(
        self,
        heap: list[tuple[int, str]],
        room_id: str,
        event_ids: Iterable[str],
        seen: set[str],
    ) -> None:
        fresh = [e for e in dict.fromkeys(event_ids) if e not in seen]
        seen.update(fresh)
        for stored in (await self._events.get_events(fresh)).values():
            if (
                stored.event.room_id == room_id
                and stored.rejected_reason is None
                and not stored.outlier
            ):
                heapq.heappush(heap, (-stored.depth, stored.event_id))

    # -- state and auth chains -------------------------------------------------------------
    async def _state_before(
        self, origin: str, room_id: str, event_id: str
    ) -> tuple[list[str], list[str]]:
        await self._access.check_can_read(origin, room_id)
        stored = await self._room_event(room_id, event_id)
        state = (
            None
            if stored.outlier
            else await self._state.get_state_ids_at_event(event_id, before=True)
        )
        if state is None:
            raise not_found("No state known at this event.")
        state_ids = sorted(set(state.values()))
        chain = await self.get_auth_chain_ids(stored.event.room_version, state_ids)
        # State groups written before rejected events were filtered out of supplied
        # state may still name one: never vouch for a rejected event to another server.
        stored_ids = await self._events.get_events([*state_ids, *chain])
        ok = {e for e, s in stored_ids.items() if s.rejected_reason is None}
        return [e for e in state_ids if e in ok], sorted(chain & ok)

    async def get_state_ids(self, origin: str, room_id: str, event_id: str) -> JsonDict:
        state_ids, chain = await self._state_before(origin, room_id, event_id)
        return {"pdu_ids": state_ids, "auth_chain_ids": chain}

    async def get_state(self, origin: str, room_id: str, event_id: str) -> JsonDict:
        state_ids, chain = await self._state_before(origin, room_id, event_id)
        return {
            "pdus": await self._plain_pdus(state_ids),
            "auth_chain": await self._plain_pdus(chain),
        }

    async def get_event_auth(
        self, origin: str, room_id: str, event_id: str
    ) -> JsonDict:
        await self._access.check_can_read(origin, room_id)
        stored = await self._room_event(room_id, event_id)
        chain = await self.get_auth_chain_ids(stored.event.room_version, [event_id])
        return {"auth_chain": await self._plain_pdus(sorted(chain))}

    async def get_auth_chain_ids(
        self, room_version: RoomVersion, event_ids: Collection[str]
    ) -> set[str]:
        """Every auth ancestor of `event_ids`. Since room v12 (MSC4291) events do not
        cite the create event, but it heads every auth chain: it is added, as Synapse
        does, so a server reading the chain can authorise it."""
        chain = await self._events.get_auth_chain_ids(event_ids)
        if room_version.room_id_from_create_event and event_ids:
            stored = await self._events.get_events(list(event_ids)[:1])
            for s in stored.values():
                create_id = "$" + s.event.room_id[1:]
                if create_id not in event_ids:
                    chain.add(create_id)
        return chain

    async def get_auth_chain_pdus(
        self, room_version: RoomVersion, event_ids: Collection[str]
    ) -> list[JsonDict]:
        """The auth chain of `event_ids` as PDUs (for send_join answers)."""
        chain = await self.get_auth_chain_ids(room_version, event_ids)
        return await self._plain_pdus(sorted(chain))

    async def _plain_pdus(self, event_ids: Sequence[str]) -> list[JsonDict]:
        stored = await self._events.get_events(event_ids)
        ordered = sorted(
            (s for s in stored.values() if s.rejected_reason is None),
            key=lambda s: (s.depth, s.event_id),
        )
        return [federation_pdu(s.event) for s in ordered]

    # -- timestamps ---------------------------------------------------------------------------
    async def timestamp_to_event(
        self, origin: str, room_id: str, ts: int, direction: Literal["f", "b"]
    ) -> JsonDict:
        await self._access.check_can_read(origin, room_id)
        event_id = await self._events.get_event_id_for_timestamp(room_id, ts, direction)
        stored = await self._events.get_event(event_id) if event_id else None
        if stored is None:
            raise not_found("No event found.")
        return {
            "event_id": stored.event_id,
            "origin_server_ts": stored.event.origin_server_ts,
        }

    # -- visibility ----------------------------------------------------------------------------
    async def serve(self, origin: str, events: Sequence[StoredEvent]) -> list[JsonDict]:
        """`events` as PDUs for `origin`, redacted where it may not see them."""
        groups = await self._state.get_state_groups_for_events(
            [e.event_id for e in events]
        )
        erased = (
            await self._erasure.get_erased_users({e.event.sender for e in events})
            if self._erasure is not None and events
            else set()
        )
        verdicts: dict[int, bool] = {}
        out: list[JsonDict] = []
        for stored in events:
            g = groups.get(stored.event_id)
            visible = stored.event.sender not in erased
            if visible and g is not None:
                if g.after not in verdicts:
                    verdicts[g.after] = await self._group_visible(origin, g.after)
                visible = verdicts[g.after]
            out.append(federation_pdu(stored.event, redact=not visible))
        return out

    async def _group_visible(self, origin: str, group_id: int) -> bool:
        group = await self._state.get_state_group(group_id)
        if group is None:
            return True
        return await self._state_visible(origin, group.state)

    async def _state_visible(self, origin: str, state: Mapping[StateKey, str]) -> bool:
        hv_id = state.get(HISTORY_KEY)
        hv_event = await self._events.get_event(hv_id) if hv_id else None
        visibility = (
            history_visibility_of(hv_event.event.content) if hv_event else SHARED
        )
        if is_event_visible_to_server(visibility, ()):
            return True
        member_ids = [
            eid
            for (etype, skey), eid in state.items()
            if etype == "m.room.member" and _domain(skey) == origin
        ]
        members = await self._events.get_events(member_ids)
        return is_event_visible_to_server(
            visibility, (m.event.membership or "leave" for m in members.values())
        )
