"""The `rooms` section of a sync response: join, invite, knock and leave.

Which rooms appear (spec: Syncing):
* initial sync: every joined, invited and knocked room; left rooms only with
  `room.include_leave`;
* incremental: joined rooms where something happened (events, ephemeral, account data),
  rooms newly joined (sent with full state, as on an initial sync), invites and knocks
  that arrived, and rooms the user left or was removed from since the token.

Membership is read "as of" the token being issued (`now.events`), so an event persisted
while the sync runs is never half-included: it lands in the next sync.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ranvier.core.room_tokens import RoomToken
from ranvier.core.streams import SyncToken
from ranvier.services.account_data import AccountDataService
from ranvier.services.receipts import ReceiptService
from ranvier.services.sync.models import RoomsSection, SyncRequest
from ranvier.services.sync.room_data import RoomData, RoomDataLoader, RoomPlan
from ranvier.services.sync.serialize import EventSource, strip_state_event
from ranvier.storage.stores.account_data import AccountDataSnapshot
from ranvier.storage.stores.push import MAIN_THREAD, Counts, RoomCounts
from ranvier.storage.stores.sync import MembershipRow, SyncStore

JsonDict = dict[str, Any]

JOIN, INVITE, KNOCK, LEAVE, BAN = "join", "invite", "knock", "leave", "ban"

# Stripped state offered with invites and knocks when the invite carries none (spec:
# Stripped state; Synapse's `room_prejoin_state` defaults).
PREJOIN_STATE_TYPES = (
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.encryption",
    "m.room.topic",
)


_NAME_KEYS = (("m.room.name", ""), ("m.room.canonical_alias", ""))


class TypingSource(Protocol):
    def get_typing_users(self, room_id: str) -> list[str]: ...

    def get_changed_rooms(
        self, room_ids: Collection[str], from_pos: int, to_pos: int
    ) -> dict[str, list[str]]: ...


class RoomChanges(Protocol):
    """Which rooms got events since a position, from memory (the notifier)."""

    def rooms_changed_since(
        self, room_ids: Iterable[str], position: int
    ) -> set[str] | None: ...


class NotificationCounter(Protocol):
    """Unread notification counts from push rules (`services/push/counts.py`)."""

    async def get_unread_notification_counts(
        self, user_id: str, floors: Mapping[str, int], to_pos: int
    ) -> Mapping[str, RoomCounts]: ...


class CurrentStateSource(Protocol):
    async def get_current_state_event_ids(
        self, room_id: str, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], str]: ...


@dataclass(frozen=True, slots=True)
class _Classified:
    joined: dict[str, MembershipRow]
    newly_joined: set[str]
    invited: dict[str, MembershipRow]
    knocked: dict[str, MembershipRow]
    left: dict[str, MembershipRow]


class IgnoredUsers(Protocol):
    async def get_ignored_users(self, user_id: str) -> frozenset[str]: ...


class RoomsSectionBuilder:
    def __init__(
        self,
        store: SyncStore,
        loader: RoomDataLoader,
        events: EventSource,
        current_state: CurrentStateSource,
        typing: TypingSource,
        receipts: ReceiptService,
        account_data: AccountDataService,
        changes: RoomChanges,
        notification_counts: NotificationCounter | None = None,
        ignored: IgnoredUsers | None = None,
    ) -> None:
        self._ignored = ignored
        self._changes = changes
        self._notification_counts = notification_counts
        self._store = store
        self._loader = loader
        self._events = events
        self._current_state = current_state
        self._typing = typing
        self._receipts = receipts
        self._account_data = account_data

    async def build(
        self,
        req: SyncRequest,
        now: SyncToken,
        since_account_data: AccountDataSnapshot,
    ) -> RoomsSection:
        rooms = await self._classify(req, now)
        section = RoomsSection(newly_joined=set(rooms.newly_joined))
        await self._build_joined(req, now, rooms, since_account_data, section)
        await self._build_left(req, now, rooms, since_account_data, section)
        ignored = (
            await self._ignored.get_ignored_users(req.user_id)
            if self._ignored is not None
            else frozenset()
        )
        section.invite = await self._stripped(
            rooms.invited, "invite_state", INVITE, ignored
        )
        section.knock = await self._stripped(rooms.knocked, "knock_state", KNOCK)
        return section

    # -- which rooms -----------------------------------------------------------------------------
    async def _memberships_at(self, user_id: str, pos: int) -> dict[str, MembershipRow]:
        current = await self._store.get_rooms_for_user(user_id)
        out = {m.room_id: m for m in current if m.stream_ordering <= pos}
        late = {m.room_id for m in current if m.stream_ordering > pos}
        if late:
            # Changed after the token being issued: use the membership as of the token.
            changes = await self._store.get_membership_changes(user_id, 0, pos)
            for change in changes:
                if change.room_id in late:
                    out[change.room_id] = change
        return out

    async def _classify(self, req: SyncRequest, now: SyncToken) -> _Classified:
        memberships = await self._memberships_at(req.user_id, now.events)
        room_filter = req.filter.room
        changes: list[MembershipRow] = []
        if req.since is not None:
            changes = await self._store.get_membership_changes(
                req.user_id, req.since.events, now.events
            )
        changed = {c.room_id for c in changes}
        # Rooms the user (re-)joined within the range: sent like on an initial sync.
        rejoined = {
            c.room_id
            for c in changes
            if c.membership == JOIN and c.prev_membership != JOIN
        }
        # Rooms the user was in (or invited to) at some point in the range.
        was_in = {
            c.room_id for c in changes if c.prev_membership in (JOIN, INVITE, KNOCK)
        }
        out = _Classified({}, set(), {}, {}, {})
        initial = req.since is None
        show_left = (initial or req.full_state) and room_filter.include_leave
        for room_id, m in memberships.items():
            if not room_filter.includes_room(room_id):
                continue
            if m.membership == JOIN:
                out.joined[room_id] = m
                if not initial and room_id in rejoined:
                    out.newly_joined.add(room_id)
            elif m.membership == INVITE and (initial or room_id in changed):
                out.invited[room_id] = m
            elif m.membership == KNOCK and (initial or room_id in changed):
                out.knocked[room_id] = m
            elif m.membership in (LEAVE, BAN) and (show_left or room_id in was_in):
                out.left[room_id] = m
        return out

    # -- joined rooms ------------------------------------------------------------------------------
    async def _build_joined(
        self,
        req: SyncRequest,
        now: SyncToken,
        rooms: _Classified,
        since_ad: AccountDataSnapshot,
        section: RoomsSection,
    ) -> None:
        if not rooms.joined:
            return
        since = req.since
        full_rooms = (
            set(rooms.joined)
            if since is None or req.full_state
            else set(rooms.newly_joined)
        )
        plans: list[RoomPlan] = []
        active = set(full_rooms)
        if since is not None:
            incremental = set(rooms.joined) - full_rooms
            active |= await self._rooms_with_events(
                incremental, since.events, now.events
            )
        for room_id in rooms.joined:
            if room_id not in active:
                continue
            full = room_id in full_rooms
            from_pos = (
                0 if since is None or room_id in rooms.newly_joined else since.events
            )
            plans.append(
                RoomPlan(
                    room_id=room_id,
                    from_pos=from_pos,
                    to_pos=now.events,
                    full_state=full,
                    visible_from=rooms.joined[room_id].stream_ordering,
                    since_pos=None if since is None else since.events,
                )
            )
        data = await self._loader.load(
            plans,
            user_id=req.user_id,
            device_id=req.device_id,
            event_filter=req.filter,
            use_state_after=req.use_state_after,
        )
        ephemeral = await self._ephemeral(req, now, rooms.joined, full_rooms)
        account_data = await self._room_account_data(
            req, now, since_ad, rooms.joined, full_rooms
        )
        candidates = [
            r
            for r in rooms.joined
            if r in full_rooms
            or (r in data and data[r].has_events())
            or r in ephemeral
            or r in account_data
        ]
        counts = await self._unread_counts(req.user_id, now, candidates, rooms.joined)
        summary_rooms = [
            r
            for r in candidates
            if r in full_rooms or (r in data and data[r].members_changed)
        ]
        summaries = await self._store.get_room_summaries(summary_rooms, req.user_id)
        named = await self._named_rooms(summaries)
        for room_id in candidates:
            room = data.get(room_id) or _empty_room(now)
            body: JsonDict = {
                "timeline": {
                    "events": room.timeline,
                    "limited": room.limited,
                    "prev_batch": room.prev_batch,
                },
                "state_after" if req.use_state_after else "state": {
                    "events": room.state
                },
                "ephemeral": {"events": ephemeral.get(room_id, [])},
                "account_data": {"events": account_data.get(room_id, [])},
            }
            by_thread = req.filter.room.timeline.unread_thread_notifications
            body.update(_counts_json(counts.get(room_id), by_thread))
            summary = summaries.get(room_id)
            if summary is not None:
                body["summary"] = {
                    "m.joined_member_count": summary.joined,
                    "m.invited_member_count": summary.invited,
                }
                if room_id not in named:
                    body["summary"]["m.heroes"] = summary.heroes
            section.join[room_id] = body

    async def _named_rooms(self, room_ids: Iterable[str]) -> set[str]:
        """Rooms with a non-empty `m.room.name` or `m.room.canonical_alias`: their
        summary leaves out `m.heroes` (spec: only required when both are unset or
        empty; Synapse omits them)."""
        ids: dict[str, str] = {}
        for room_id in room_ids:
            state = await self._current_state.get_current_state_event_ids(
                room_id, _NAME_KEYS
            )
            ids.update(dict.fromkeys(state.values(), room_id))
        if not ids:
            return set()
        named = set()
        for event_id, stored in (await self._events.get_events(ids)).items():
            content = stored.event.content
            if content.get("name") or content.get("alias"):
                named.add(ids[event_id])
        return named

    async def _rooms_with_events(
        self, room_ids: set[str], since: int, now: int
    ) -> set[str]:
        if not room_ids or since >= now:
            return set()
        cached = self._changes.rooms_changed_since(room_ids, since)
        if cached is not None:
            return cached
        return await self._store.get_rooms_with_events(room_ids, since, now)

    async def _ephemeral(
        self,
        req: SyncRequest,
        now: SyncToken,
        joined: Mapping[str, MembershipRow],
        full_rooms: set[str],
    ) -> dict[str, list[JsonDict]]:
        flt = req.filter.room.ephemeral
        out: dict[str, list[JsonDict]] = {}
        if flt.excludes_everything():
            return out
        rooms = [r for r in joined if flt.includes_room(r)]
        since = req.since
        if flt.matches_fields("m.typing", None):
            if since is None:
                typing = {r: self._typing.get_typing_users(r) for r in rooms}
                typing = {r: users for r, users in typing.items() if users}
            else:
                typing = self._typing.get_changed_rooms(rooms, since.typing, now.typing)
                for r in full_rooms & set(rooms):
                    users = self._typing.get_typing_users(r)
                    if users:
                        typing[r] = users
            for room_id, users in typing.items():
                out.setdefault(room_id, []).append(
                    {"type": "m.typing", "content": {"user_ids": users}}
                )
        if flt.matches_fields("m.receipt", None):
            from_full = [r for r in rooms if since is None or r in full_rooms]
            from_since = [r for r in rooms if since is not None and r not in full_rooms]
            receipts = await self._receipts.get_receipt_events(
                req.user_id, from_full, 0, now.receipts
            )
            if since is not None:
                receipts.update(
                    await self._receipts.get_receipt_events(
                        req.user_id, from_since, since.receipts, now.receipts
                    )
                )
            for room_id, event in receipts.items():
                out.setdefault(room_id, []).append(event)
        return out

    async def _room_account_data(
        self,
        req: SyncRequest,
        now: SyncToken,
        since_ad: AccountDataSnapshot,
        rooms: Collection[str],
        full_rooms: set[str],
    ) -> dict[str, list[JsonDict]]:
        flt = req.filter.room.account_data
        if flt.excludes_everything():
            return {}
        per_room: dict[str, dict[str, JsonDict]] = dict(since_ad.room_data)
        if req.since is not None and full_rooms:
            everything = await self._account_data.get_account_data_since(
                req.user_id, 0, now.account_data
            )
            for room_id in full_rooms:
                if room_id in everything.room_data:
                    per_room[room_id] = everything.room_data[room_id]
        out: dict[str, list[JsonDict]] = {}
        for room_id in rooms:
            entries = per_room.get(room_id)
            if not entries:
                continue
            events = [
                {"type": t, "content": c}
                for t, c in sorted(entries.items())
                if flt.matches_fields(t, None, room_id)
            ]
            if events:
                out[room_id] = events
        return out

    async def _unread_counts(
        self,
        user_id: str,
        now: SyncToken,
        room_ids: Sequence[str],
        joined: Mapping[str, MembershipRow],
    ) -> Mapping[str, RoomCounts]:
        if not room_ids:
            return {}
        if self._notification_counts is not None:
            floors = {r: joined[r].stream_ordering for r in room_ids}
            return await self._notification_counts.get_unread_notification_counts(
                user_id, floors, now.events
            )
        # Without push rules: unread messages count as notifications.
        read = await self._receipts.get_read_positions(user_id, room_ids)
        since = {r: max(read.get(r, 0), joined[r].stream_ordering) for r in room_ids}
        unread = await self._store.get_unread_counts(user_id, since, now.events)
        return {r: RoomCounts({MAIN_THREAD: Counts(n, 0)}) for r, n in unread.items()}

    # -- left rooms --------------------------------------------------------------------------------
    async def _build_left(
        self,
        req: SyncRequest,
        now: SyncToken,
        rooms: _Classified,
        since_ad: AccountDataSnapshot,
        section: RoomsSection,
    ) -> None:
        if not rooms.left:
            return
        since = req.since
        out_of_band = await self._out_of_band_leaves(req, rooms.left)
        plans = [
            RoomPlan(
                room_id=room_id,
                from_pos=0
                if since is None
                else min(since.events, m.stream_ordering - 1),
                to_pos=m.stream_ordering,
                full_state=since is None or req.full_state,
                visible_from=None,
                since_pos=None if since is None else since.events,
            )
            for room_id, m in rooms.left.items()
            if room_id not in out_of_band
        ]
        data = await self._loader.load(
            plans,
            user_id=req.user_id,
            device_id=req.device_id,
            event_filter=req.filter,
            use_state_after=req.use_state_after,
        )
        account_data = await self._room_account_data(
            req, now, since_ad, rooms.left, set()
        )
        data.update(out_of_band)
        for room_id in rooms.left:
            room = data.get(room_id) or _empty_room(now)
            section.leave[room_id] = {
                "timeline": {
                    "events": room.timeline,
                    "limited": room.limited,
                    "prev_batch": room.prev_batch,
                },
                "state_after" if req.use_state_after else "state": {
                    "events": room.state
                },
                "account_data": {"events": account_data.get(room_id, [])},
            }

    async def _out_of_band_leaves(
        self, req: SyncRequest, left: Mapping[str, MembershipRow]
    ) -> dict[str, RoomData]:
        """Rooms left without this server being in them (a rejected remote invite, a
        withdrawn knock): the leave is an outlier, outside any timeline, so the room's
        timeline is that one event and there is no state to send (as Synapse does)."""
        loaded = await self._events.get_events([m.event_id for m in left.values()])
        out: dict[str, RoomData] = {}
        for room_id, m in left.items():
            stored = loaded.get(m.event_id)
            if stored is None or not stored.outlier:
                continue
            timeline = await self._loader.serialize(
                [stored],
                user_id=req.user_id,
                device_id=req.device_id,
                event_filter=req.filter,
            )
            out[room_id] = RoomData(
                timeline=timeline,
                prev_batch=RoomToken(stream=max(m.stream_ordering - 1, 0)).encode(),
                members_changed=True,
            )
        return out

    # -- invites and knocks ------------------------------------------------------------------------
    async def _stripped(
        self,
        rooms: Mapping[str, MembershipRow],
        section_key: str,
        membership: str,
        ignored_senders: frozenset[str] = frozenset(),
    ) -> dict[str, JsonDict]:
        if not rooms:
            return {}
        loaded = await self._events.get_events([m.event_id for m in rooms.values()])
        out: dict[str, JsonDict] = {}
        for room_id, m in rooms.items():
            stored = loaded.get(m.event_id)
            if stored is not None and stored.event.sender in ignored_senders:
                continue  # spec: invites from ignored users are not sent
            events: list[JsonDict] = []
            if stored is not None:
                carried = stored.event.unsigned.get(f"{membership}_room_state")
                if isinstance(carried, list):
                    events = [
                        strip_state_event(e) for e in carried if isinstance(e, dict)
                    ]
                else:
                    events = await self._prejoin_state(room_id, stored.event.sender)
                # The sender's member event stays (as Synapse sends it: clients show
                # who invited, SyTest checks it); the target's is the event itself.
                sender = stored.event.sender
                events = [
                    e
                    for e in events
                    if e.get("type") != "m.room.member"
                    or (e.get("state_key") == sender != stored.event.state_key)
                ]
                events.append(strip_state_event(dict(stored.event.data)))
            out[room_id] = {section_key: {"events": events}}
        return out

    async def _prejoin_state(self, room_id: str, sender: str) -> list[JsonDict]:
        ids = await self._current_state.get_current_state_event_ids(
            room_id,
            [(t, "") for t in PREJOIN_STATE_TYPES] + [("m.room.member", sender)],
        )
        loaded = await self._events.get_events(ids.values())
        return [
            strip_state_event(dict(loaded[eid].event.data))
            for eid in ids.values()
            if eid in loaded
        ]


def _counts_json(counts: RoomCounts | None, by_thread: bool) -> JsonDict:
    """`unread_notifications`, and `unread_thread_notifications` when the filter asks
    for counts per thread (spec: Receipts > Threaded read receipts): then the main
    timeline's counts stand alone and each thread with unread notifications is listed."""
    counts = counts or RoomCounts()
    if not by_thread:
        total = counts.total()
        return {
            "unread_notifications": {
                "notification_count": total.notifications,
                "highlight_count": total.highlights,
            }
        }
    main = counts.threads.get(MAIN_THREAD, Counts())
    return {
        "unread_notifications": {
            "notification_count": main.notifications,
            "highlight_count": main.highlights,
        },
        "unread_thread_notifications": {
            thread_id: {
                "notification_count": c.notifications,
                "highlight_count": c.highlights,
            }
            for thread_id, c in counts.threads.items()
            if thread_id != MAIN_THREAD and (c.notifications or c.highlights)
        },
    }


def _empty_room(now: SyncToken) -> RoomData:
    return RoomData(prev_batch=f"s{now.events}")
