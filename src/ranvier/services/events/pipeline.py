"""The per-room event ingest pipeline (DESIGN.md, "An event arrives").

Every event, local or remote, goes through a `RoomSession`: the room's lock is held for
the session, so one room is strictly serial while rooms run concurrently. For each event:

1. format (`validate_pdu`: done by `finalize_local_event` / `event_from_pdu` upstream);
2. signatures and hashes (remote events: the federation layer, before the session);
3. auth against its own auth events (state-independent rules, then the state-dependent
   rules over the cited events);
4. auth against the state before it: the state after its prev events, resolved with
   state resolution when they differ;
5. soft-fail against the room's current state (remote events only: a local event's
   state before *is* the current state);
6. persist: `commit()` writes every event of the session in ONE transaction (events,
   edges, state groups, extremities, current state, memberships);
7. notify (`RoomEventNotifier`), once the stream positions are readable.

A local event failing 3-4 raises `AuthError` and nothing is written; a remote one is
stored as rejected (so the DAG has no holes) and never served.

The room's tip (forward extremities and the current state group) is cached per room: in
one process every write to a room goes through here, under its lock. A multi-process
deployment gives each room one owning writer (DESIGN.md, "per-room ingest ownership").
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from ranvier.core.auth import (
    CREATE_KEY,
    AuthError,
    auth_types_for_event,
    check_state_dependent_auth_rules,
    check_state_independent_auth_rules,
)
from ranvier.core.events.event import Event, StateKey
from ranvier.core.room_versions import RoomVersion
from ranvier.services.events.notify import RoomEventNotifier
from ranvier.services.events.state import StateCalculator, diff_states
from ranvier.storage.stores.event_rows import (
    CurrentStateDelta,
    EventToPersist,
    MembershipChange,
    NewRoom,
    NewStateGroup,
    PersistBatch,
)
from ranvier.storage.stores.events import EventStore
from ranvier.storage.stores.state import StateGroup, StateStore
from ranvier.util.clock import Clock
from ranvier.util.keyed_lock import KeyedLock
from ranvier.util.lru import LruCache

logger = logging.getLogger(__name__)

__all__ = ["EventPipeline", "PersistedEvent", "RoomSession", "RoomTip"]


@dataclass(frozen=True, slots=True)
class PersistedEvent:
    event: Event
    stream_ordering: int
    rejected_reason: str | None = None
    soft_failed: bool = False
    # Stored without a place in the DAG (auth/state events fetched over federation,
    # out-of-band invites): not in the timeline.
    outlier: bool = False
    # A membership of a local user in a room this server is not in (invite, rejection,
    # knock): an outlier that still moves the user's memberships, so syncs must wake.
    out_of_band: bool = False


@dataclass(frozen=True, slots=True)
class RoomTip:
    """The room's forward extremities (event ID, depth) and current state.

    `unpersisted` is set when `state` was resolved over several extremities on load and
    not stored yet: it is written with the next event built on this tip.
    """

    extremities: tuple[tuple[str, int], ...]
    state: StateGroup | None
    unpersisted: NewStateGroup | None = None


@dataclass(slots=True)
class _Draft:
    event: Event
    received_ts: int
    rejected_reason: str | None = None
    soft_failed: bool = False
    before: StateGroup | None = None
    after: StateGroup | None = None
    new_groups: list[NewStateGroup] = field(default_factory=list)
    replaces_state: str | None = None
    txn_id: str | None = None
    device_id: str | None = None
    applies_redaction_to: str | None = None
    # The current-state change this event caused: (changed, previous).
    state_change: (
        tuple[dict[StateKey, str | None], dict[StateKey, str | None]] | None
    ) = None
    outlier: bool = False
    # An out-of-band membership (a remote invite to a room we are not in): recorded in
    # the membership tables without touching the room's state.
    out_of_band: MembershipChange | None = None
    # Stored as an accepted outlier, now placed in the DAG: its row is upgraded.
    upgrades_outlier: bool = False


class EventPipeline:
    def __init__(
        self,
        *,
        events: EventStore,
        state: StateStore,
        calculator: StateCalculator,
        notifier: RoomEventNotifier,
        clock: Clock,
        tip_cache_size: int = 5_000,
    ) -> None:
        self._events = events
        self._state = state
        self.calculator = calculator
        self._notifier = notifier
        self._clock = clock
        self._locks = KeyedLock()
        self._tips: LruCache[str, RoomTip] = LruCache(tip_cache_size)

    @asynccontextmanager
    async def room_session(
        self,
        room_id: str,
        room_version: RoomVersion,
        *,
        new_room: NewRoom | None = None,
    ) -> AsyncIterator[RoomSession]:
        """Hold `room_id`'s lock; events added to the session are persisted on `commit`."""
        async with self._locks.lock(room_id):
            tip = (
                RoomTip((), None)
                if new_room is not None
                else await self._load_tip(room_id)
            )
            session = RoomSession(self, room_id, room_version, tip, new_room)
            try:
                yield session
            finally:
                if session.uncommitted:
                    logger.debug(
                        "discarding %d uncommitted events", session.uncommitted
                    )

    async def get_room_tip(self, room_id: str) -> RoomTip:
        """The room's current tip (no lock: a snapshot for readers)."""
        return await self._load_tip(room_id)

    async def _load_tip(self, room_id: str) -> RoomTip:
        cached = self._tips.get(room_id)
        if cached is not None:
            return cached
        generation = self._tips.generation()
        extremities = tuple(await self._events.get_forward_extremities(room_id))
        if not extremities:
            return RoomTip((), None)
        stored = await self._events.get_events([e for e, _ in extremities])
        if not stored:
            return RoomTip(extremities, None)
        version = next(iter(stored.values())).event.room_version
        result = await self.calculator.state_after_events(
            room_id, version, [e for e, _ in extremities], {}, {}
        )
        tip = RoomTip(extremities, result.group, result.new_group)
        self._tips.set_if_unchanged(room_id, tip, generation)
        return tip

    def _forget_tip(self, room_id: str) -> None:
        self._tips.invalidate([room_id])

    def _remember_tip(self, room_id: str, tip: RoomTip) -> None:
        self._tips.set(room_id, tip)

    # -- used by RoomSession (not for other callers) -------------------------------------------------------------
    async def persist_session(
        self, room_id: str, drafts: Sequence[_Draft], tip: RoomTip, new_room: NewRoom | None,
        new_aliases: Sequence[tuple[str, str]],
    ) -> list[PersistedEvent]:  # fmt: skip
        ids = self._events.stream_ids
        positions = [ids.allocate() for _ in drafts]
        try:
            batch = await self._build_batch(
                room_id, drafts, positions, tip, new_room, new_aliases
            )
            await self._events.persist_batch(batch)
        except BaseException:
            self._forget_tip(room_id)
            raise
        finally:
            for p in positions:
                ids.complete(p)
        written = {g.id for d in drafts for g in d.new_groups}
        if tip.unpersisted is not None and tip.unpersisted.id in written:
            tip = RoomTip(tip.extremities, tip.state)
        self._remember_tip(room_id, tip)
        for d in drafts:
            for g in (d.before, d.after):
                if g is not None:
                    self._state.cache_group(g)
        persisted = [
            PersistedEvent(
                d.event,
                pos,
                d.rejected_reason,
                d.soft_failed,
                d.outlier,
                out_of_band=d.out_of_band is not None,
            )
            for d, pos in zip(drafts, positions, strict=True)
        ]
        self._notify(persisted)
        return persisted

    async def _build_batch(
        self, room_id: str, drafts: Sequence[_Draft], positions: Sequence[int],
        tip: RoomTip, new_room: NewRoom | None, new_aliases: Sequence[tuple[str, str]],
    ) -> PersistBatch:  # fmt: skip
        known = {d.event.event_id: d.event for d in drafts}
        items: list[EventToPersist] = []
        deltas: list[CurrentStateDelta] = []
        for d, pos in zip(drafts, positions, strict=True):
            items.append(
                EventToPersist(
                    event=d.event,
                    stream_ordering=pos,
                    received_ts=d.received_ts,
                    outlier=d.outlier,
                    rejected_reason=d.rejected_reason,
                    soft_failed=d.soft_failed,
                    state_group_before=d.before.id if d.before is not None else None,
                    state_group_after=d.after.id if d.after is not None else None,
                    new_state_groups=tuple(d.new_groups),
                    replaces_state=d.replaces_state,
                    txn_id=d.txn_id,
                    device_id=d.device_id,
                    applies_redaction_to=d.applies_redaction_to,
                    upgrades_outlier=d.upgrades_outlier,
                )
            )
            if d.state_change is not None:
                changed, previous = d.state_change
                members = await self._membership_changes(
                    room_id, changed, previous, known
                )
                deltas.append(
                    CurrentStateDelta(room_id, pos, changed, previous, members)
                )
            if d.out_of_band is not None:
                deltas.append(CurrentStateDelta(room_id, pos, {}, {}, [d.out_of_band]))
        return PersistBatch(
            room_id=room_id,
            events=items,
            forward_extremities=[e for e, _ in tip.extremities],
            current_state=deltas,
            new_room=new_room,
            new_aliases=tuple(new_aliases),
        )

    async def _membership_changes(
        self,
        room_id: str,
        changed: Mapping[StateKey, str | None],
        previous: Mapping[StateKey, str | None],
        known: Mapping[str, Event],
    ) -> list[MembershipChange]:
        member_keys = [k for k in changed if k[0] == "m.room.member"]
        if not member_keys:
            return []
        wanted = {changed[k] for k in member_keys} | {
            previous.get(k) for k in member_keys
        }
        need = {e for e in wanted if e is not None and e not in known}
        loaded = {e: s.event for e, s in (await self._events.get_events(need)).items()}
        events = {**loaded, **known}
        out: list[MembershipChange] = []
        for key in member_keys:
            new_id = changed[key]
            new = events.get(new_id) if new_id is not None else None
            prev_id = previous.get(key)
            prev = events.get(prev_id) if prev_id is not None else None
            out.append(
                MembershipChange(
                    room_id=room_id,
                    user_id=key[1],
                    event_id=new_id or "",
                    membership=(new.membership or "leave")
                    if new is not None
                    else "leave",
                    sender=new.sender if new is not None else "",
                    prev_membership=prev.membership if prev is not None else None,
                )
            )
        return out

    def _notify(self, persisted: Sequence[PersistedEvent]) -> None:
        for p in persisted:
            if p.rejected_reason is not None or p.soft_failed:
                continue
            if (
                p.outlier
                and not p.out_of_band
                and not (
                    p.event.type == "m.room.member" and p.event.membership == "invite"
                )
            ):
                continue
            try:
                self._notifier.on_new_event(p.event, p.stream_ordering)
            except Exception:
                logger.exception("notifier failed for %s", p.event.event_id)

    async def stored_ids(self, event_ids: Sequence[str]) -> set[str]:
        """Those of `event_ids` stored, whatever their status."""
        return set(await self._events.get_events(event_ids))

    async def foreign_events(self, room_id: str, event_ids: Sequence[str]) -> list[str]:
        """Those of `event_ids` stored for a room other than `room_id` (rejected and
        outliers included: a cited event's room is a fact, whatever its fate)."""
        stored = await self._events.get_events(event_ids)
        return [eid for eid, s in stored.items() if s.event.room_id != room_id]

    async def load_events(self, event_ids: Sequence[str]) -> dict[str, Event]:
        stored = await self._events.get_events(event_ids)
        return {eid: s.event for eid, s in stored.items() if s.rejected_reason is None}

    def now(self) -> int:
        return self._clock.time_msec()


class RoomSession:
    """One room, under its lock. Add events (`add_event`), then `commit()`."""

    def __init__(
        self,
        pipeline: EventPipeline,
        room_id: str,
        room_version: RoomVersion,
        tip: RoomTip,
        new_room: NewRoom | None,
    ) -> None:
        self._p = pipeline
        self.room_id = room_id
        self.room_version = room_version
        self._tip = tip
        self._new_room = new_room
        self._drafts: list[_Draft] = []
        self._events: dict[str, Event] = {}
        self._after: dict[str, StateGroup] = {}
        self._aliases: list[tuple[str, str]] = []
        # State groups already queued for writing by this session's drafts.
        self._queued: set[int] = set()
        # Events of this session stored as rejected (known, but never usable).
        self._rejected: set[str] = set()

    @property
    def uncommitted(self) -> int:
        return len(self._drafts)

    @property
    def tip(self) -> RoomTip:
        return self._tip

    @property
    def current_state_ids(self) -> Mapping[StateKey, str]:
        return self._tip.state.state if self._tip.state is not None else {}

    def add_alias(self, alias: str, creator: str) -> None:
        """Create a local alias in the same transaction as the events."""
        self._aliases.append((alias, creator))

    async def get_events(self, event_ids: Sequence[str]) -> dict[str, Event]:
        missing = [e for e in event_ids if e not in self._events]
        if missing:
            self._events.update(await self._p.load_events(missing))
        return {e: self._events[e] for e in event_ids if e in self._events}

    async def get_current_state(
        self, keys: Sequence[StateKey]
    ) -> dict[StateKey, Event]:
        current = self.current_state_ids
        ids = {k: current[k] for k in keys if k in current}
        events = await self.get_events(list(ids.values()))
        return {k: events[eid] for k, eid in ids.items() if eid in events}

    async def auth_state_for(
        self, event: Event, state_ids: Mapping[StateKey, str]
    ) -> dict[StateKey, Event]:
        keys = auth_types_for_event(event)
        ids = {k: state_ids[k] for k in keys if k in state_ids}
        events = await self.get_events(list(ids.values()))
        return {k: events[eid] for k, eid in ids.items() if eid in events}

    # -- adding events -----------------------------------------------------------------
    async def add_event(
        self,
        event: Event,
        *,
        local: bool,
        txn_id: str | None = None,
        device_id: str | None = None,
        redaction_allowed: bool = False,
        state_before: Mapping[StateKey, str] | None = None,
        upgrades_outlier: bool = False,
    ) -> None:
        """Run the checks on `event` and queue it for `commit`.

        Local events raise `AuthError` on failure; remote ones are queued as rejected.
        `redaction_allowed`: the caller checked a local redaction's power.
        `state_before`: for a remote event whose prev events' states are unknown here,
        the state before it as federation computed it (remote `/state_ids` resolved
        with ours); otherwise it is derived from the prev events.
        `upgrades_outlier`: `event` is stored as an accepted outlier (fetched as an
        auth/state event, or an out-of-band invite) and now arrives as a timeline event.
        It is checked like a new event and its row upgraded on commit (de-outliering,
        as Synapse does): it enters the DAG, the timeline and the current state.
        """
        draft = _Draft(
            event,
            self._p.now(),
            txn_id=txn_id,
            device_id=device_id,
            upgrades_outlier=upgrades_outlier,
        )
        if await self._cites_other_rooms(event):
            # The state after another room's event is that room's state: taking it as
            # the state before this event would import a foreign room's power levels
            # and members. Rejected with no state (Synapse refuses such PDUs too).
            if local:
                raise AuthError("prev_events include events of another room")
            reason = "prev_events include events of another room"
            if upgrades_outlier:
                self._keep_outlier(event, reason)
                return
            logger.info("rejecting %s: %s", event.event_id, reason)
            draft.rejected_reason = reason
            self._drafts.append(draft)
            return
        if state_before is not None:
            before: StateGroup | None = await self._supplied_state(draft, state_before)
        else:
            before = await self._state_before(event, draft)
        try:
            await self._check_auth_events(event)
            auth_state = await self.auth_state_for(
                event, before.state if before else {}
            )
            check_state_dependent_auth_rules(event, auth_state)
        except AuthError as e:
            if local:
                raise
            if upgrades_outlier:
                self._keep_outlier(event, e.reason)
                return
            logger.info("rejecting %s: %s", event.event_id, e.reason)
            draft.rejected_reason = e.reason
            self._rejected.add(event.event_id)
        if not local and draft.rejected_reason is None:
            draft.soft_failed = await self._soft_fails(event, before)
        if draft.rejected_reason is None:
            # A rejected event must not authorise later events of this session, nor
            # be looked up as state: only accepted ones are kept for lookups.
            self._events[event.event_id] = event
        self._set_state_after(event, draft, before)
        if event.type == "m.room.redaction" and draft.rejected_reason is None:
            draft.applies_redaction_to = await self._redaction_target(
                event, before, redaction_allowed
            )
        self._drafts.append(draft)
        self._queued.update(g.id for g in draft.new_groups)
        await self._advance_tip(event, draft)

    def _keep_outlier(self, event: Event, reason: str) -> None:
        """An accepted outlier failing as a timeline event stays an accepted outlier.

        It passed the rules over its own auth events and may already be used: as an
        auth event of later events, or in the room state a join gave us. Storing a
        rejection now would withdraw it retroactively, and the state before it may come
        from the very peer sending it (`/state_ids` at a gap): a liar could get an
        honest event rejected for good. Synapse keeps such an event an outlier too
        ("what we have is at least as good")."""
        logger.info("%s stays an outlier: %s", event.event_id, reason)

    async def _supplied_state(
        self, draft: _Draft, state: Mapping[StateKey, str]
    ) -> StateGroup:
        accepted = await self._accepted_state(state)
        result = self._p.calculator.new_group(self.room_id, self._tip.state, accepted)
        if result.new_group is not None:
            draft.new_groups.append(result.new_group)
        draft.before = result.group
        return result.group

    async def _cites_other_rooms(self, event: Event) -> bool:
        prevs = [p for p in event.prev_event_ids if p not in self._after]
        if not prevs or sorted(prevs) == sorted(e for e, _ in self._tip.extremities):
            return False  # the room's own tip (every local event): nothing to check
        return bool(await self._p.foreign_events(self.room_id, prevs))

    async def _accepted_state(
        self, state: Mapping[StateKey, str]
    ) -> dict[StateKey, str]:
        """`state` without the entries no state group may hold: events we do not have,
        rejected ones (stored, or earlier in this session), events of another room and
        events filed under a key that is not theirs.

        A state map supplied from outside (a peer's `/state_ids` at a gap) is only a
        claim: the peer may list an event we rejected, e.g. a power-levels event it made
        up (SyTest "Should not be able to take over the room by pretending there is no
        PL event"). Filtering here, where every supplied state enters the room, keeps
        rejected events out of state groups, current state and state resolution
        whichever path supplied them. The room check matters as much: a peer can name
        an event we store for another room, e.g. a power-levels event of a room where
        its user is an admin.
        """
        found = await self.get_events(list(dict.fromkeys(state.values())))
        accepted: dict[StateKey, str] = {}
        for key, event_id in state.items():
            event = found.get(event_id)
            if (
                event is None
                or event.room_id != self.room_id
                or not event.is_state()
                or event.state_tuple != key
            ):
                logger.info("dropping %s from supplied state at %s", event_id, key)
                continue
            accepted[key] = event_id
        return accepted

    # -- remote events outside the DAG (federation) --------------------------------------
    async def add_outlier(self, event: Event) -> bool:
        """Queue a remote event with no place in the timeline (an auth or state event
        fetched over federation): checked against its own auth events only, stored as
        rejected if it fails them. Returns whether it passed.

        An outlier citing auth events we do not have at all is not stored: rejecting
        it would be final (a known event is never re-checked), so a peer serving an
        honest server's event without its auth chain could get it rejected here for
        good, and with it every later event that cites it."""
        draft = _Draft(event, self._p.now(), outlier=True)
        unknown = await self.unknown_auth_events(event)
        if unknown:
            logger.info(
                "not storing outlier %s: auth events %s unknown",
                event.event_id,
                unknown,
            )
            return False
        try:
            await self._check_auth_events(event)
        except AuthError as e:
            logger.info("rejecting outlier %s: %s", event.event_id, e.reason)
            draft.rejected_reason = e.reason
            self._rejected.add(event.event_id)
        else:
            self._events[event.event_id] = event
        self._drafts.append(draft)
        return draft.rejected_reason is None

    async def unknown_auth_events(self, event: Event) -> list[str]:
        """The auth events `event` cites (since v12 also the create event) that are
        neither stored nor added to this session."""
        wanted = list(event.auth_event_ids)
        if (
            self.room_version.room_id_from_create_event
            and event.type != "m.room.create"
        ):
            wanted.append("$" + self.room_id[1:])
        pending = [
            a for a in wanted if a not in self._events and a not in self._rejected
        ]
        stored = await self._p.stored_ids(pending) if pending else set()
        return [a for a in pending if a not in stored]

    def add_out_of_band_membership(self, event: Event) -> None:
        """Queue a remote membership event for a local user in a room this server is
        not in (an invite over federation): an outlier whose membership is recorded,
        so the user's sync shows it. The caller checked it."""
        target = event.state_key or ""
        change = MembershipChange(
            room_id=self.room_id,
            user_id=target,
            event_id=event.event_id,
            membership=event.membership or "leave",
            sender=event.sender,
            prev_membership=None,
        )
        self._drafts.append(
            _Draft(event, self._p.now(), outlier=True, out_of_band=change)
        )

    async def _state_before(self, event: Event, draft: _Draft) -> StateGroup | None:
        prevs = event.prev_event_ids
        if not prevs:
            return None
        tip = self._tip
        if tip.state is not None and sorted(prevs) == sorted(
            e for e, _ in tip.extremities
        ):
            if tip.unpersisted is not None and tip.unpersisted.id not in self._queued:
                draft.new_groups.append(tip.unpersisted)
            draft.before = tip.state
            return tip.state
        result = await self._p.calculator.state_after_events(
            self.room_id, self.room_version, prevs, self._after, self._events
        )
        if result.new_group is not None:
            draft.new_groups.append(result.new_group)
        draft.before = result.group
        return result.group

    async def _check_auth_events(self, event: Event) -> None:
        """Steps 3: the state-independent rules and the rules over its auth events."""
        create_id = None
        if (
            self.room_version.room_id_from_create_event
            and event.type != "m.room.create"
        ):
            create_id = "$" + self.room_id[1:]
        wanted = list(event.auth_event_ids) + ([create_id] if create_id else [])
        by_id = await self.get_events(wanted)
        create = by_id.get(create_id) if create_id else None
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

    async def _soft_fails(self, event: Event, before: StateGroup | None) -> bool:
        current = self._tip.state
        if current is None or before is None or current.id == before.id:
            return False
        try:
            state = await self.auth_state_for(event, current.state)
            check_state_dependent_auth_rules(event, state)
        except AuthError as e:
            logger.info("soft-failing %s: %s", event.event_id, e.reason)
            return True
        return False

    def _set_state_after(
        self, event: Event, draft: _Draft, before: StateGroup | None
    ) -> None:
        if event.is_state() and draft.rejected_reason is None:
            prev = before.state.get(event.state_tuple) if before is not None else None
            draft.replaces_state = prev
            result = self._p.calculator.add_state_event(self.room_id, before, event)
            assert result.new_group is not None
            draft.new_groups.append(result.new_group)
            draft.after = result.group
        else:
            draft.after = before
        if draft.after is not None:
            self._after[event.event_id] = draft.after

    async def _redaction_target(
        self, event: Event, before: StateGroup | None, allowed: bool
    ) -> str | None:
        target_id = event.redacts
        if target_id is None:
            return None
        target = (await self.get_events([target_id])).get(target_id)
        if target is None or target.room_id != self.room_id:
            return None
        if allowed or target.origin == event.origin:
            return target_id
        return None

    async def _advance_tip(self, event: Event, draft: _Draft) -> None:
        """Move the room's tip past an accepted event and record the current-state change."""
        if (
            draft.rejected_reason is not None
            or draft.soft_failed
            or draft.after is None
        ):
            return
        prevs = set(event.prev_event_ids)
        extremities = [x for x in self._tip.extremities if x[0] not in prevs]
        extremities.append((event.event_id, event.depth))
        old_state = self._tip.state.state if self._tip.state is not None else {}
        if len(extremities) == 1:
            new_state = draft.after
        else:
            result = await self._p.calculator.state_after_events(
                self.room_id,
                self.room_version,
                [e for e, _ in extremities],
                self._after,
                self._events,
            )
            if result.new_group is not None:
                draft.new_groups.append(result.new_group)
            new_state = result.group
        self._tip = RoomTip(tuple(extremities), new_state)
        changed = diff_states(old_state, new_state.state)
        if changed:
            draft.state_change = (changed, {k: old_state.get(k) for k in changed})

    async def commit(self) -> list[PersistedEvent]:
        """Persist every added event in one transaction and notify."""
        if not self._drafts:
            return []
        drafts, self._drafts = self._drafts, []
        aliases, self._aliases = self._aliases, []
        new_room, self._new_room = self._new_room, None
        return await self._p.persist_session(
            self.room_id, drafts, self._tip, new_room, aliases
        )
