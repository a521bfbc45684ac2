"""The server's room list for sliding sync (MSC4186 "Lists"): which of the user's
rooms can appear, what the list filters look at, and the order.

* Joined, invited and knocked rooms are always in the list. Rooms the user was kicked
  or banned from are in it too (they may not have seen that happen); rooms they left
  themselves only until the connection has been sent the leave.
* Order: newest `bump_stamp` first (the newest event of `BUMP_EVENT_TYPES`, which is
  what Element X sorts by); for rooms the user is not joined to, their membership
  event's position.
* Facts for the filters (room type, encryption) and bump stamps are cached per room
  and re-read only for rooms that got events since (the notifier knows which), so an
  incremental request costs what changed, not the size of the account.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ranvier.core.events.event import Event
from ranvier.core.sliding_sync import (
    ListConfig,
    RoomFacts,
    room_matches,
    rooms_in_ranges,
    sort_rooms,
)
from ranvier.services.sync.rooms import RoomChanges
from ranvier.services.sync.serialize import EventSource
from ranvier.storage.stores.account_data import AccountDataSnapshot
from ranvier.storage.stores.room_lists import RoomListStore
from ranvier.storage.stores.sliding_sync import SentRoom
from ranvier.storage.stores.sync import MembershipRow, SyncStore
from ranvier.util.lru import LruCache

JsonDict = dict[str, Any]

JOIN, INVITE, KNOCK, LEAVE, BAN = "join", "invite", "knock", "leave", "ban"
_CACHED_ROOMS = 100_000


@dataclass(frozen=True, slots=True)
class MemberInfo:
    sender: str
    is_direct: bool
    # From the stripped state an invite or knock carries (a remote room's state is
    # not known here): what the list filters need.
    room_type: str | None = None
    encrypted: bool = False


@dataclass(frozen=True, slots=True)
class _Cached:
    position: int
    bump_stamp: int | None
    room_type: str | None
    encrypted: bool


@dataclass(slots=True)
class ListResult:
    count: int
    # The rooms of the list's ranges, in order.
    room_ids: list[str] = field(default_factory=list)

    def to_json(self) -> JsonDict:
        # MSC4186 dropped MSC3575's `ops`: clients know the order from bump_stamp.
        return {"count": self.count}


class RoomListBuilder:
    def __init__(
        self,
        store: SyncStore,
        lists: RoomListStore,
        events: EventSource,
        changes: RoomChanges,
    ) -> None:
        self._store = store
        self._events = events
        self._member_info: LruCache[str, MemberInfo] = LruCache(_CACHED_ROOMS)
        self._lists = lists
        self._changes = changes
        self._cache: LruCache[str, _Cached] = LruCache(_CACHED_ROOMS)
        self._facts: LruCache[str, tuple[Any, RoomFacts]] = LruCache(_CACHED_ROOMS)

    async def joined_room_ids(self, user_id: str) -> set[str]:
        return await self._store.get_joined_room_ids(user_id)

    async def rooms_with_events(
        self, room_ids: list[str], from_pos: int, to_pos: int
    ) -> set[str]:
        return await self._store.get_rooms_with_events(room_ids, from_pos, to_pos)

    async def memberships_at(self, user_id: str, pos: int) -> dict[str, MembershipRow]:
        """The user's membership in each room as of the events position `pos`."""
        current = await self._store.get_rooms_for_user(user_id)
        out = {m.room_id: m for m in current if m.stream_ordering <= pos}
        late = {m.room_id for m in current if m.stream_ordering > pos}
        if late:
            for change in await self._store.get_membership_changes(user_id, 0, pos):
                if change.room_id in late:
                    out[change.room_id] = change
        return out

    async def candidates(
        self,
        user_id: str,
        memberships: Mapping[str, MembershipRow],
        sent: Mapping[str, SentRoom],
        ignored: frozenset[str] = frozenset(),
    ) -> dict[str, MembershipRow]:
        out: dict[str, MembershipRow] = {}
        check: list[MembershipRow] = []
        for room_id, m in memberships.items():
            if m.membership in (INVITE, LEAVE):
                check.append(m)
            else:
                out[room_id] = m
        info = await self.membership_info([m.event_id for m in check])
        for m in check:
            prev = sent.get(m.room_id)
            sender = info[m.event_id].sender if m.event_id in info else user_id
            if m.membership == INVITE:
                # Spec (Ignoring users): invites from ignored users are not shown.
                if sender not in ignored:
                    out[m.room_id] = m
            elif sender != user_id or (
                prev is not None and prev.membership not in (LEAVE, BAN)
            ):
                # Kicked (someone else's leave): kept, they may not have seen it
                # happen; left themselves: until the connection was sent the leave.
                out[m.room_id] = m
        return out

    async def membership_info(self, event_ids: list[str]) -> dict[str, MemberInfo]:
        """Sender and `is_direct` of membership events (immutable, so cached)."""
        out = {e: i for e in event_ids if (i := self._member_info.get(e)) is not None}
        missing = [e for e in event_ids if e not in out]
        if missing:
            loaded = await self._events.get_events(missing)
            for event_id, stored in loaded.items():
                info = _member_info(stored.event)
                out[event_id] = info
                self._member_info.set(event_id, info)
        return out

    async def facts(
        self,
        rooms: Mapping[str, MembershipRow],
        now_events: int,
        account: AccountDataSnapshot,
    ) -> dict[str, RoomFacts]:
        cached = await self._cached_facts(rooms, now_events)
        dm_rooms = _dm_rooms(account.global_data.get("m.direct"))
        # An invite marked `is_direct` is a DM before the user accepts it (spec:
        # Direct Messaging), as Element X shows it.
        invites = [
            m.event_id for m in rooms.values() if m.membership in (INVITE, KNOCK)
        ]
        info = await self.membership_info(invites)
        dm_rooms |= {
            m.room_id
            for m in rooms.values()
            if m.membership == INVITE
            and m.event_id in info
            and info[m.event_id].is_direct
        }
        out: dict[str, RoomFacts] = {}
        for room_id, m in rooms.items():
            c = cached.get(room_id)
            stamp = m.stream_ordering
            if m.membership == JOIN and c is not None and c.bump_stamp is not None:
                stamp = c.bump_stamp
            # Backfilled events have negative stream positions, and matrix-rust-sdk
            # reads bump_stamp as unsigned (one negative value fails the response).
            stamp = max(stamp, 0)
            tags = _tags(account.room_data.get(room_id, {}).get("m.tag"))
            key = (m.membership, stamp, c, room_id in dm_rooms, tags)
            kept = self._facts.get(room_id)
            if kept is not None and kept[0] == key:
                # Reused as is: most rooms are unchanged from one request to the next.
                out[room_id] = kept[1]
                continue
            facts = RoomFacts(
                room_id=room_id,
                membership=m.membership,
                bump_stamp=stamp,
                room_type=_room_type(c, info, m),
                encrypted=(c is not None and c.encrypted)
                or _stripped(info, m).encrypted,
                is_dm=key[3],
                tags=tags,
            )
            self._facts.set(room_id, (key, facts))
            out[room_id] = facts
        return out

    async def _cached_facts(
        self, rooms: Mapping[str, MembershipRow], now_events: int
    ) -> dict[str, _Cached]:
        out: dict[str, _Cached] = {}
        stale: dict[str, int] = {}
        by_position: dict[int, list[str]] = {}
        for room_id in rooms:
            c = self._cache.get(room_id)
            if c is None or c.position > now_events:
                stale[room_id] = now_events
            else:
                by_position.setdefault(c.position, []).append(room_id)
                out[room_id] = c
        for position, room_ids in by_position.items():
            changed = self._changes.rooms_changed_since(room_ids, position)
            if changed is None:
                changed = await self._store.get_rooms_with_events(
                    room_ids, position, now_events
                )
            for room_id in changed:
                stale[room_id] = now_events
                out.pop(room_id, None)
        if stale:
            stamps = await self._lists.get_bump_stamps(stale)
            contents = await self._lists.get_fact_contents(list(stale))
            for room_id in stale:
                facts = contents.get(room_id, {})
                room_type = facts.get("m.room.create", {}).get("type")
                c = _Cached(
                    now_events,
                    stamps.get(room_id),
                    room_type if isinstance(room_type, str) else None,
                    "m.room.encryption" in facts,
                )
                self._cache.set(room_id, c)
                out[room_id] = c
        return out

    async def build_lists(
        self,
        user_id: str,
        lists: Mapping[str, ListConfig],
        facts: Mapping[str, RoomFacts],
    ) -> dict[str, ListResult]:
        ordered = sort_rooms(facts.values())
        joined = {f.room_id for f in ordered if f.membership == JOIN}
        out: dict[str, ListResult] = {}
        for name, config in lists.items():
            children: frozenset[str] | None = None
            if config.filters.spaces is not None:
                # Only spaces the user is joined to count (MSC4186 `spaces`).
                spaces = [s for s in config.filters.spaces if s in joined]
                children = frozenset(await self._lists.get_space_children(spaces))
            matching = [
                f.room_id for f in ordered if room_matches(f, config.filters, children)
            ]
            out[name] = ListResult(
                len(matching), rooms_in_ranges(matching, config.ranges)
            )
        return out


_UNKNOWN = MemberInfo("", False)


def _stripped(info: Mapping[str, MemberInfo], m: MembershipRow) -> MemberInfo:
    return info.get(m.event_id, _UNKNOWN)


def _room_type(
    c: _Cached | None, info: Mapping[str, MemberInfo], m: MembershipRow
) -> str | None:
    """From the room's state, or for invites and knocks (remote rooms have no state
    here) from the stripped state they carry."""
    if m.membership in (INVITE, KNOCK) and m.event_id in info:
        stripped = info[m.event_id].room_type
        if stripped is not None or c is None:
            return stripped
    return c.room_type if c is not None else None


def _member_info(event: Event) -> MemberInfo:
    room_type: str | None = None
    encrypted = False
    for key in ("invite_room_state", "knock_room_state"):
        carried = event.unsigned.get(key)
        if not isinstance(carried, list):
            continue
        for e in carried:
            if not isinstance(e, dict) or not isinstance(e.get("content"), dict):
                continue
            if e.get("type") == "m.room.create":
                value = e["content"].get("type")
                room_type = value if isinstance(value, str) else None
            encrypted = encrypted or e.get("type") == "m.room.encryption"
    return MemberInfo(
        event.sender, event.content.get("is_direct") is True, room_type, encrypted
    )


def _dm_rooms(content: Any) -> set[str]:
    """Rooms named in `m.direct` account data ({user_id: [room_id, …]})."""
    if not isinstance(content, dict):
        return set()
    return {
        room
        for rooms in content.values()
        if isinstance(rooms, list)
        for room in rooms
        if isinstance(room, str)
    }


_NO_TAGS: frozenset[str] = frozenset()


def _tags(content: Any) -> frozenset[str]:
    tags = content.get("tags") if isinstance(content, dict) else None
    return frozenset(tags) if isinstance(tags, dict) and tags else _NO_TAGS
