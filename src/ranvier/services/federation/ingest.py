"""Remote events into the shared ingest pipeline, filling gaps first (spec: S-S API >
Checks performed on receipt of a PDU; Retrieving missing events; Retrieving state).

For each event, oldest first:

1. auth events we lack are fetched from the origin (`/event_auth`), checked
   (`PduChecker`) and stored as outliers, each checked against its own auth events;
2. prev events we lack are asked for with `/get_missing_events` (at most
   `MISSING_EVENTS_LIMIT`, from our forward extremities to the event) and ingested the
   same way, oldest first, without asking again;
3. prev events still without a known state (missing, or outliers) get their state from
   the origin (`/state_ids`, then `/event` for ids we lack, or `/state` when many are
   missing); the fetched events are stored as outliers and the state before the event
   is the resolution of those states with the ones we know;
4. the event goes through the room's pipeline session (auth against its auth events,
   against the state before it, soft-fail against the current state, persist, notify).

An event already stored is done with, except an accepted outlier (fetched earlier as an
auth or state event, or an invite received out of band for a room we are in): it now
arrives as a timeline event and goes through steps 1-4 like a new one, its stored row
upgraded (de-outliering, as Synapse does). A rejected outlier stays rejected.

Network fetches happen before the room's lock is taken (so a slow peer does not stall
local sends); everything is re-checked under the lock. Every fetch counts against a
per-transaction `FetchBudget`: a transaction cannot make us download a whole room.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ranvier.core.events.event import Event, StateKey
from ranvier.core.room_versions import RoomVersion
from ranvier.federation.errors import FederationError
from ranvier.services.events.pipeline import EventPipeline, RoomSession
from ranvier.services.events.state import MissingStateError
from ranvier.services.federation.pdu_checks import CheckedPdu, PduChecker
from ranvier.services.federation.remote import RemoteRoomApi
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.storage.stores.events import EventStore
from ranvier.storage.stores.state import StateStore

logger = logging.getLogger(__name__)

__all__ = ["FetchBudget", "IngestResult", "RemoteEventIngester"]

JsonDict = dict[str, Any]

MISSING_EVENTS_LIMIT: Final = 10
# With more unknown state events than this, one `/state` beats many `/event`s.
MAX_INDIVIDUAL_FETCHES: Final = 20
# Missing prev events whose state we fetch for one event.
MAX_STATE_FETCHES: Final = 3


class FetchBudget:
    """How many more events one transaction may make us fetch."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def take(self, wanted: int) -> bool:
        if wanted > self.left:
            return False
        self.left -= wanted
        return True


@dataclass(frozen=True, slots=True)
class IngestResult:
    # None: processed (accepted, soft-failed, rejected, or already known); else why we
    # could not process it (missing prev events or auth events, fetch limits).
    error: str | None = None
    # Processed and stored as rejected: why (logged, not an error of the PDU).
    rejected: str | None = None


def _is_done(stored: StoredEvent | None) -> bool:
    """Whether a stored copy settles an incoming event: anything but an accepted
    outlier, which is upgraded to a timeline event."""
    return stored is not None and not (
        stored.outlier and stored.rejected_reason is None
    )


@dataclass(slots=True)
class _Gaps:
    """What one event needs before it can be added: outliers and the states after its
    prev events that we do not know ourselves."""

    outliers: dict[str, Event] = field(default_factory=dict)
    remote_states: dict[str, dict[StateKey, str]] = field(default_factory=dict)
    failed: str | None = None


def _stored_copy(event: Event, stored: StoredEvent | None) -> Event:
    """The event to de-outlier: the copy we stored, not the one just received. Before
    room v3 an event ID is not a hash, so a second copy under the same ID may differ
    (other type or state key): the one whose JSON we keep is the one to check and
    place in state (as "a known event ID is never replaced")."""
    return stored.event if stored is not None else event


class RemoteEventIngester:
    def __init__(
        self,
        *,
        pipeline: EventPipeline,
        events: EventStore,
        state: StateStore,
        checker: PduChecker,
        remote: RemoteRoomApi,
    ) -> None:
        self._pipeline = pipeline
        self._events = events
        self._state = state
        self._checker = checker
        self._remote = remote

    async def ingest(
        self,
        origin: str,
        room_id: str,
        room_version: RoomVersion,
        checked: Sequence[CheckedPdu],
        budget: FetchBudget,
    ) -> dict[str, IngestResult]:
        """Ingest one room's PDUs of a transaction, oldest first."""
        results: dict[str, IngestResult] = {}
        for pdu in sorted(checked, key=lambda c: c.event.depth):
            try:
                results[pdu.event.event_id] = await self._ingest_one(
                    origin, room_id, room_version, pdu.event, budget, fetch_missing=True
                )
            except MissingStateError:
                results[pdu.event.event_id] = IngestResult("missing prev events")
        return results

    async def ingest_event(
        self, origin: str, room_id: str, room_version: RoomVersion, event: Event,
        budget: FetchBudget,
    ) -> IngestResult:  # fmt: skip
        """One checked event (e.g. an invite for a room we are in)."""
        try:
            return await self._ingest_one(
                origin, room_id, room_version, event, budget, fetch_missing=True
            )
        except MissingStateError:
            return IngestResult("missing prev events")

    # -- one event ----------------------------------------------------------------------------
    async def _ingest_one(
        self,
        origin: str,
        room_id: str,
        rv: RoomVersion,
        event: Event,
        budget: FetchBudget,
        *,
        fetch_missing: bool,
    ) -> IngestResult:
        known = await self._events.get_event(event.event_id)
        if _is_done(known):
            return IngestResult()
        event = _stored_copy(event, known)
        gaps = _Gaps()
        await self._fill_auth_events(origin, room_id, event, budget, gaps)
        missing = await self._prevs_without_state(event)
        if missing and fetch_missing:
            await self._fetch_missing_prevs(origin, room_id, rv, event, budget)
            missing = await self._prevs_without_state(event)
        if missing:
            await self._fetch_prev_states(origin, room_id, rv, missing, budget, gaps)
        if gaps.failed is not None:
            return IngestResult(gaps.failed)
        async with self._pipeline.room_session(room_id, rv) as session:
            await self._persist_outliers(session, gaps.outliers.values())
            stored = await self._events.get_event(event.event_id)
            if _is_done(stored):
                return IngestResult()
            event = _stored_copy(event, stored)
            if await session.unknown_auth_events(event):
                # Not stored, not rejected: the event may be another server's honest
                # one relayed by a peer withholding its auth chain, and a stored
                # rejection would be final (see RoomSession.add_outlier).
                return IngestResult("auth events unavailable")
            state_before = None
            if gaps.remote_states:
                state_before = await self._resolve_before(rv, event, gaps)
            await session.add_event(
                event,
                local=False,
                state_before=state_before,
                upgrades_outlier=stored is not None,
            )
            persisted = await session.commit()
        return IngestResult(
            rejected=persisted[-1].rejected_reason if persisted else None
        )

    async def _unknown(self, event_ids: Iterable[str]) -> list[str]:
        ids = list(dict.fromkeys(event_ids))
        stored = await self._events.get_events(ids)
        return [e for e in ids if e not in stored]

    async def _prevs_without_state(self, event: Event) -> list[str]:
        prevs = event.prev_event_ids
        groups = await self._state.get_state_groups_for_events(prevs)
        return [p for p in prevs if p not in groups]

    # -- auth events ------------------------------------------------------------------------------
    async def _fill_auth_events(
        self, origin: str, room_id: str, event: Event, budget: FetchBudget,
        gaps: _Gaps,
    ) -> None:  # fmt: skip
        missing = await self._unknown(event.auth_event_ids)
        if not missing:
            return
        try:
            pdus = await self._remote.get_event_auth(origin, room_id, event.event_id)
        except FederationError as e:
            logger.info("cannot fetch auth chain of %s: %s", event.event_id, e)
            return  # the pipeline rejects the event for its missing auth events
        await self._add_outliers(room_id, event.room_version, pdus, budget, gaps)

    async def _add_outliers(
        self, room_id: str, rv: RoomVersion, pdus: Sequence[JsonDict],
        budget: FetchBudget, gaps: _Gaps,
    ) -> None:  # fmt: skip
        parsed = [self._checker.parse(p, rv) for p in pdus]
        candidates = [
            e
            for e in parsed
            if isinstance(e, Event)
            and e.room_id == room_id
            and e.event_id not in gaps.outliers
        ]
        unknown = set(await self._unknown(e.event_id for e in candidates))
        fresh = [e for e in candidates if e.event_id in unknown]
        if not budget.take(len(fresh)):
            gaps.failed = "too many events to fetch"
            return
        for result in await self._checker.check_events(fresh):
            if isinstance(result, CheckedPdu):
                gaps.outliers[result.event.event_id] = result.event

    # -- missing prev events ----------------------------------------------------------------------
    async def _fetch_missing_prevs(
        self, origin: str, room_id: str, rv: RoomVersion, event: Event,
        budget: FetchBudget,
    ) -> None:  # fmt: skip
        if not await self._unknown(event.prev_event_ids):
            return
        extremities = await self._events.get_forward_extremities(room_id)
        limit = min(MISSING_EVENTS_LIMIT, budget.left)
        if not extremities or limit <= 0:
            return
        try:
            pdus = await self._remote.get_missing_events(
                origin,
                room_id,
                earliest=[e for e, _ in extremities],
                latest=[event.event_id],
                limit=limit,
                min_depth=min(d for _, d in extremities),
            )
        except FederationError as e:
            logger.info("get_missing_events for %s failed: %s", event.event_id, e)
            return
        pdus = pdus[:limit]
        budget.take(len(pdus))
        checked = await self._checker.check_pdus(pdus, rv)
        fetched = [
            c.event
            for c in checked
            if isinstance(c, CheckedPdu) and c.event.room_id == room_id
        ]
        for missing in sorted(fetched, key=lambda e: e.depth):
            if missing.event_id == event.event_id:
                continue
            try:
                await self._ingest_one(
                    origin, room_id, rv, missing, budget, fetch_missing=False
                )
            except MissingStateError:
                logger.info("could not place fetched event %s", missing.event_id)

    # -- state at missing prev events ---------------------------------------------------------------
    async def _fetch_prev_states(
        self, origin: str, room_id: str, rv: RoomVersion, missing: Sequence[str],
        budget: FetchBudget, gaps: _Gaps,
    ) -> None:  # fmt: skip
        for prev_id in missing[:MAX_STATE_FETCHES]:
            try:
                await self._fetch_state_after(
                    origin, room_id, rv, prev_id, budget, gaps
                )
            except FederationError as e:
                logger.info("cannot fetch state at %s: %s", prev_id, e)
                gaps.failed = "could not fetch the state before the event"
            if gaps.failed is not None:
                return
        if len(missing) > MAX_STATE_FETCHES:
            gaps.failed = "too many prev events with unknown state"

    async def _fetch_state_after(
        self, origin: str, room_id: str, rv: RoomVersion, prev_id: str,
        budget: FetchBudget, gaps: _Gaps,
    ) -> None:  # fmt: skip
        prev = await self._known_or_fetched(origin, room_id, rv, prev_id, budget, gaps)
        if prev is None:
            gaps.failed = gaps.failed or f"cannot fetch prev event {prev_id}"
            return
        remote = await self._remote.get_state_ids(origin, room_id, prev_id)
        wanted = [*remote.state_ids, *remote.auth_chain_ids]
        unknown = [e for e in await self._unknown(wanted) if e not in gaps.outliers]
        if len(unknown) > MAX_INDIVIDUAL_FETCHES:
            state, chain = await self._remote.get_state(origin, room_id, prev_id)
            await self._add_outliers(room_id, rv, [*chain, *state], budget, gaps)
        else:
            for event_id in unknown:
                await self._known_or_fetched(
                    origin, room_id, rv, event_id, budget, gaps
                )
        if gaps.failed is not None:
            return
        keys = await self._state_keys(room_id, remote.state_ids, gaps.outliers)
        after = {keys[e]: e for e in remote.state_ids if e in keys}
        if prev.is_state():
            after[prev.state_tuple] = prev.event_id
        gaps.remote_states[prev_id] = after

    async def _known_or_fetched(
        self, origin: str, room_id: str, rv: RoomVersion, event_id: str,
        budget: FetchBudget, gaps: _Gaps,
    ) -> Event | None:  # fmt: skip
        if event_id in gaps.outliers:
            return gaps.outliers[event_id]
        stored = await self._events.get_event(event_id)
        if stored is not None:
            return stored.event
        if not budget.take(1):
            gaps.failed = "too many events to fetch"
            return None
        pdu = await self._remote.get_event(origin, event_id)
        if pdu is None:
            return None
        checked = (await self._checker.check_pdus([pdu], rv))[0]
        if not isinstance(checked, CheckedPdu):
            return None
        event = checked.event
        if event.event_id != event_id or event.room_id != room_id:
            return None
        gaps.outliers[event_id] = event
        return event

    async def _state_keys(
        self, room_id: str, event_ids: Sequence[str], pending: Mapping[str, Event]
    ) -> dict[str, StateKey]:
        """The state keys of those of `event_ids` that are state events of `room_id`
        (a peer may name events we store for other rooms)."""
        out: dict[str, StateKey] = {}
        stored = await self._events.get_events(
            [e for e in event_ids if e not in pending]
        )
        for event_id in event_ids:
            ev = pending.get(event_id)
            if ev is None and event_id in stored:
                ev = stored[event_id].event
            if ev is not None and ev.room_id == room_id and ev.is_state():
                out[event_id] = ev.state_tuple
        return out

    # -- under the room's lock ----------------------------------------------------------------------
    async def _persist_outliers(
        self, session: RoomSession, outliers: Iterable[Event]
    ) -> None:
        pending = list(outliers)
        if not pending:
            return
        stored = await self._events.get_events(e.event_id for e in pending)
        fresh = [e for e in pending if e.event_id not in stored]
        for event in auth_order(fresh):
            await session.add_outlier(event)
        await session.commit()

    async def _resolve_before(
        self, rv: RoomVersion, event: Event, gaps: _Gaps
    ) -> dict[StateKey, str]:
        sets: list[Mapping[StateKey, str]] = []
        for prev_id in event.prev_event_ids:
            remote = gaps.remote_states.get(prev_id)
            if remote is not None:
                sets.append(remote)
                continue
            ours = await self._state.get_state_ids_at_event(prev_id)
            if ours is not None:
                sets.append(ours)
        distinct = {tuple(sorted(s.items())): s for s in sets}
        if len(distinct) == 1:
            return dict(sets[0])
        return await self._pipeline.calculator.resolve(rv, list(distinct.values()), {})


def auth_order(events: Sequence[Event]) -> list[Event]:
    """`events` ordered so that each comes after those of its auth events in the list
    (depth, then event ID, break ties; cycles, which valid events cannot form, fall back
    to that order)."""
    by_id = {e.event_id: e for e in events}
    placed: set[str] = set()
    out: list[Event] = []
    remaining = sorted(events, key=lambda e: (e.depth, e.event_id))
    while remaining:
        ready = [
            e
            for e in remaining
            if all(a in placed or a not in by_id for a in e.auth_event_ids)
        ]
        if not ready:
            ready = remaining[:1]
        for e in ready:
            placed.add(e.event_id)
            out.append(e)
        ready_ids = {e.event_id for e in ready}
        remaining = [e for e in remaining if e.event_id not in ready_ids]
    return out
