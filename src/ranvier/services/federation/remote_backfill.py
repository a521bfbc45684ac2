"""Backfill: history older than anything we hold, fetched from other servers in the room
when a local user paginates past our earliest event (spec: S-S API > Backfilling and
retrieving missing events, `GET /backfill`).

1. Where to continue: the room's backward extremities (prev events of our timeline
   events that we do not have in the timeline).
2. Ask the other servers in the room, one after the other, for up to `limit` events
   before them; the answer is checked (format, signatures, hashes) like any PDU.
3. Auth events we lack are fetched (`/event_auth`), checked and stored as outliers.
4. Oldest first, each event gets the state before it: from its prev events when we know
   their state, otherwise from the server (`/state_ids` at the event, then the events we
   lack) - or, when that server cannot say, from the other servers in the room in turn.
   It must pass the auth rules against its auth events and that state; failing events
   are stored as rejected (never served). An event whose state no server gives (and any
   event of the batch citing it) is stored as an outlier, not dropped with the whole
   batch: the rest of the batch is kept, and a later backfill from the same backward
   extremities picks the outlier up again and computes its state then.
5. Events are stored with negative stream positions (`BackfillStore`): in the timeline by
   depth, never seen by sync as new, and without touching the current state.

Nothing from the remote server is trusted before these checks. Network requests happen
before the database transaction; one backfill per room runs at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from ranvier.core.auth import (
    CREATE_KEY,
    AuthError,
    auth_types_for_event,
    check_state_dependent_auth_rules,
    check_state_independent_auth_rules,
)
from ranvier.core.events.event import Event, StateKey
from ranvier.core.room_versions import RoomVersion
from ranvier.federation.client import QueryArgs, federation_path
from ranvier.federation.errors import FederationError
from ranvier.services.events.state import MissingStateError, StateCalculator
from ranvier.services.federation.pdu_checks import CheckedPdu, PduChecker
from ranvier.services.federation.remote import RemoteRoomApi
from ranvier.services.federation.remote_events import order_by_auth, order_by_prev
from ranvier.storage.stores.event_rows import EventToPersist, NewStateGroup
from ranvier.storage.stores.state import StateGroup
from ranvier.util.clock import Clock
from ranvier.util.keyed_lock import KeyedLock

logger = logging.getLogger(__name__)

__all__ = ["RoomBackfiller"]

MAX_BACKFILL: Final = 100
# Events asked for per request, whatever the client's page size (Synapse asks for 100):
# a batch reaching back to events whose state we know needs no `/state_ids` at all.
MIN_BACKFILL_REQUEST: Final = 50
BACKFILL_TIMEOUT_SECONDS: Final = 30.0
# Remote state lookups that may fail (on every server) before the rest of a batch that
# needs one is kept as outliers without asking again.
MAX_STATE_FAILURES: Final = 3


class _StateUnavailable(Exception):
    """No server in the room told us the state before this event."""


class BackfillRequests(Protocol):
    async def get_json(
        self, destination: str, path: str, *, args: QueryArgs | None = None, **kw: Any
    ) -> Any: ...


class StoredEventLookup(Protocol):
    async def get_events(self, event_ids: Iterable[str]) -> Mapping[str, Any]: ...

    def forget_cached(self, event_ids: Iterable[str]) -> None: ...


class EventStateGroups(Protocol):
    async def get_state_groups_for_events(
        self, event_ids: Collection[str]
    ) -> Mapping[str, Any]: ...


class BackfillPersistence(Protocol):
    def allocate_position(self) -> int: ...

    async def get_backward_extremities(
        self, room_id: str, limit: int = 5
    ) -> list[str]: ...

    async def persist_backfilled(
        self, room_id: str, items: Sequence[EventToPersist]
    ) -> Collection[str]: ...


class OutlierSink(Protocol):
    """Stores checked remote events as outliers (through the room's pipeline)."""

    async def add_outliers(
        self, room_id: str, room_version: RoomVersion, events: Sequence[Event]
    ) -> set[str]: ...


class RoomVersions(Protocol):
    async def get_room_version(self, room_id: str) -> RoomVersion | None: ...


class OtherServers(Protocol):
    async def get_other_servers(self, room_id: str) -> set[str]: ...


@dataclass(slots=True)
class _Batch:
    room_id: str
    rv: RoomVersion
    server: str
    # Checked events of this batch, and the usable events they may cite.
    pending: dict[str, Event] = field(default_factory=dict)
    known: dict[str, Event] = field(default_factory=dict)
    after: dict[str, StateGroup] = field(default_factory=dict)
    items: list[EventToPersist] = field(default_factory=list)
    # Who to ask for the state before an event: `server` first, then the others.
    state_servers: list[str] = field(default_factory=list)
    state_failures: int = 0
    # Events kept as outliers: no state known before them (yet).
    deferred: dict[str, Event] = field(default_factory=dict)


class RoomBackfiller:
    def __init__(
        self,
        *,
        client: BackfillRequests,
        remote: RemoteRoomApi,
        checker: PduChecker,
        events: StoredEventLookup,
        state_groups: EventStateGroups,
        calculator: StateCalculator,
        store: BackfillPersistence,
        outliers: OutlierSink,
        rooms: RoomVersions,
        servers: OtherServers,
        clock: Clock,
        min_request: int = MIN_BACKFILL_REQUEST,
    ) -> None:
        self._client = client
        self._remote = remote
        self._checker = checker
        self._events = events
        self._state_groups = state_groups
        self._calculator = calculator
        self._store = store
        self._outliers = outliers
        self._rooms = rooms
        self._servers = servers
        self._clock = clock
        self._min_request = min_request
        self._locks = KeyedLock()

    async def backfill(self, room_id: str, limit: int) -> bool:
        """Fetch up to `limit` older events of `room_id`; True if any were stored."""
        async with self._locks.lock(room_id):
            rv = await self._rooms.get_room_version(room_id)
            extremities = await self._store.get_backward_extremities(room_id)
            if rv is None or not extremities:
                return False
            limit = max(1, min(max(limit, self._min_request), MAX_BACKFILL))
            servers = sorted(await self._servers.get_other_servers(room_id))
            for server in servers:
                try:
                    stored = await self._backfill_from(
                        servers, server, room_id, rv, extremities, limit
                    )
                except (FederationError, MissingStateError) as e:
                    logger.info("backfilling %s from %s failed: %s", room_id, server, e)
                    continue
                if stored:
                    return True
            return False

    async def _backfill_from(
        self, servers: list[str], server: str, room_id: str, rv: RoomVersion,
        extremities: list[str], limit: int,
    ) -> bool:  # fmt: skip
        path = federation_path("/_matrix/federation/v1/backfill/{}", room_id)
        answer = await self._client.get_json(
            server,
            path,
            args={"v": extremities, "limit": limit},
            request_timeout=BACKFILL_TIMEOUT_SECONDS,
        )
        pdus = answer.get("pdus") if isinstance(answer, dict) else None
        if not isinstance(pdus, list):
            raise FederationError(server, "backfill answer has no 'pdus' list")
        checked = await self._check(room_id, rv, pdus)
        stored = await self._events.get_events(list(checked))
        fresh = {
            # An accepted outlier joins the timeline as the copy we stored (before v3
            # an ID is not a hash: the received copy may differ); a rejected one
            # stays rejected.
            eid: stored[eid].event if eid in stored else e
            for eid, e in checked.items()
            if eid not in stored
            or (stored[eid].outlier and stored[eid].rejected_reason is None)
        }
        if not fresh:
            return False
        batch = _Batch(room_id, rv, server)
        batch.pending = fresh
        batch.state_servers = [server, *(s for s in servers if s != server)]
        await self._ensure_auth_events(batch)
        for event in order_by_prev(fresh.values()):
            await self._add(batch, event)
        if batch.items:
            replaced = await self._store.persist_backfilled(room_id, batch.items)
            self._events.forget_cached(replaced)
        await self._keep_deferred(batch, stored.keys())
        logger.info(
            "backfilled %d events of %s from %s (%d without state yet)",
            len(batch.items), room_id, server, len(batch.deferred),
        )  # fmt: skip
        return bool(batch.items)

    async def _keep_deferred(self, batch: _Batch, stored: Collection[str]) -> None:
        new = [e for eid, e in batch.deferred.items() if eid not in stored]
        if new:
            await self._outliers.add_outliers(
                batch.room_id, batch.rv, order_by_auth(new)
            )

    async def _check(
        self, room_id: str, rv: RoomVersion, pdus: Sequence[Any]
    ) -> dict[str, Event]:
        out: dict[str, Event] = {}
        for result in await self._checker.check_pdus(pdus, rv):
            if isinstance(result, CheckedPdu) and result.event.room_id == room_id:
                out[result.event.event_id] = result.event
        return out

    # -- auth events ---------------------------------------------------------------------------
    async def _usable(self, event_ids: Iterable[str]) -> dict[str, Event]:
        stored = await self._events.get_events(event_ids)
        return {eid: s.event for eid, s in stored.items() if s.rejected_reason is None}

    async def _ensure_auth_events(self, batch: _Batch) -> None:
        wanted = {a for e in batch.pending.values() for a in e.auth_event_ids}
        if batch.rv.room_id_from_create_event:
            wanted.add("$" + batch.room_id[1:])
        wanted -= batch.pending.keys()
        batch.known.update(await self._usable(wanted))
        missing_for = [
            e for e in batch.pending.values()
            if any(a not in batch.known and a not in batch.pending for a in e.auth_event_ids)
        ]  # fmt: skip
        fetched: dict[str, Event] = {}
        for event in missing_for[:5]:
            pdus = await self._remote.get_event_auth(
                batch.server, batch.room_id, event.event_id
            )
            fetched.update(await self._check(batch.room_id, batch.rv, pdus))
        new = [
            e
            for eid, e in fetched.items()
            if eid not in batch.known and eid not in batch.pending
        ]
        if new:
            rejected = await self._outliers.add_outliers(
                batch.room_id, batch.rv, order_by_auth(new)
            )
            batch.known.update(
                {e.event_id: e for e in new if e.event_id not in rejected}
            )

    # -- one event -------------------------------------------------------------------------------
    async def _add(self, batch: _Batch, event: Event) -> None:
        if await self._cites_other_rooms(batch, event):
            # The state after another room's event is that room's state (see
            # RoomSession.add_event): rejected, with no state of its own.
            logger.info("rejecting backfilled %s: prev events in another room",
                        event.event_id)  # fmt: skip
            batch.items.append(
                EventToPersist(
                    event=event,
                    stream_ordering=self._store.allocate_position(),
                    received_ts=self._clock.time_msec(),
                    rejected_reason="prev_events include events of another room",
                )
            )
            return
        new_groups: list[NewStateGroup] = []
        try:
            if any(a in batch.deferred for a in event.auth_event_ids):
                raise _StateUnavailable(event.event_id)  # its auth is not checked yet
            before = await self._state_before(batch, event, new_groups)
        except _StateUnavailable:
            batch.deferred[event.event_id] = event
            return
        need = [
            before.state[k]
            for k in auth_types_for_event(event)
            if k in before.state and before.state[k] not in batch.known
        ]
        batch.known.update(await self._usable(need))
        rejected = None
        try:
            self._check_auth(batch, event, before)
        except AuthError as e:
            logger.info("rejecting backfilled %s: %s", event.event_id, e.reason)
            rejected = e.reason
        after = before
        replaces = None
        if event.is_state() and rejected is None:
            replaces = before.state.get(event.state_tuple)
            result = self._calculator.add_state_event(batch.room_id, before, event)
            if result.new_group is not None:
                new_groups.append(result.new_group)
            after = result.group
        if rejected is None:
            batch.known[event.event_id] = event
            batch.after[event.event_id] = after
        batch.items.append(
            EventToPersist(
                event=event,
                stream_ordering=self._store.allocate_position(),
                received_ts=self._clock.time_msec(),
                rejected_reason=rejected,
                state_group_before=before.id,
                state_group_after=after.id,
                new_state_groups=tuple(new_groups),
                replaces_state=replaces,
            )
        )

    async def _cites_other_rooms(self, batch: _Batch, event: Event) -> bool:
        prevs = [p for p in event.prev_event_ids if p not in batch.pending]
        stored = await self._events.get_events(prevs)
        return any(s.event.room_id != batch.room_id for s in stored.values())

    async def _state_before(
        self, batch: _Batch, event: Event, new_groups: list[NewStateGroup]
    ) -> StateGroup:
        prevs = event.prev_event_ids
        try:
            if not prevs:  # the create event: the empty state
                raise MissingStateError([])
            result = await self._calculator.state_after_events(
                batch.room_id, batch.rv, prevs, batch.after, batch.known
            )
        except MissingStateError:
            state = await self._remote_state_before(batch, event) if prevs else {}
            result = self._calculator.new_group(batch.room_id, None, state)
        if result.new_group is not None:
            new_groups.append(result.new_group)
        return result.group

    async def _remote_state_before(
        self, batch: _Batch, event: Event
    ) -> dict[StateKey, str]:
        """The state before `event` from the first server in the room that answers
        (the one we backfill from first); `_StateUnavailable` when none does."""
        if batch.state_failures >= MAX_STATE_FAILURES:
            raise _StateUnavailable(event.event_id)
        for server in batch.state_servers:
            try:
                return await self._state_from(batch, server, event)
            except FederationError as e:
                logger.info(
                    "state before %s from %s failed: %s", event.event_id, server, e
                )
        batch.state_failures += 1
        raise _StateUnavailable(event.event_id)

    async def _state_from(
        self, batch: _Batch, server: str, event: Event
    ) -> dict[StateKey, str]:
        """The state before `event` as `server` has it; events we lack are fetched,
        checked and stored as outliers (one that fails its checks is left out)."""
        remote = await self._remote.get_state_ids(server, batch.room_id, event.event_id)
        have = await self._usable(remote.state_ids)
        have.update({e: batch.known[e] for e in remote.state_ids if e in batch.known})
        missing = [e for e in remote.state_ids if e not in have]
        if missing:
            pdus, chain = await self._remote.get_state(
                server, batch.room_id, event.event_id
            )
            fetched = await self._check(batch.room_id, batch.rv, [*pdus, *chain])
            stored = await self._events.get_events(list(fetched))
            new = [e for eid, e in fetched.items() if eid not in stored]
            rejected = await self._outliers.add_outliers(
                batch.room_id, batch.rv, order_by_auth(new)
            )
            usable = {eid: e for eid, e in fetched.items() if eid not in rejected}
            have.update({e: usable[e] for e in missing if e in usable})
            batch.known.update(usable)
        # The server may name events we store for another room: never this room's state.
        return {
            ev.state_tuple: eid
            for eid, ev in have.items()
            if ev.is_state() and ev.room_id == batch.room_id
        }

    def _check_auth(self, batch: _Batch, event: Event, before: StateGroup) -> None:
        """Auth against the event's own auth events, then against the state before it."""
        by_id = {a: batch.known[a] for a in event.auth_event_ids if a in batch.known}
        create_id = (
            "$" + batch.room_id[1:] if batch.rv.room_id_from_create_event else None
        )
        create = batch.known.get(create_id) if create_id else None
        if create is None:
            create = next(
                (e for e in by_id.values() if e.type == "m.room.create"), None
            )
        check_state_independent_auth_rules(event, by_id, create)
        if event.type == "m.room.create":
            return
        auth_state: dict[StateKey, Event] = {
            e.state_tuple: e for e in by_id.values() if e.is_state()
        }
        if create is not None:
            auth_state[CREATE_KEY] = create
        check_state_dependent_auth_rules(event, auth_state)
        state_auth: dict[StateKey, Event] = {}
        for key in auth_types_for_event(event):
            eid = before.state.get(key)
            if eid is not None and eid in batch.known:
                state_auth[key] = batch.known[eid]
        if create is not None:
            state_auth.setdefault(CREATE_KEY, create)
        check_state_dependent_auth_rules(event, state_auth)
