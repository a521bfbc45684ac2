"""Read-only queries `/sync` needs over the rooms schema (0003) and the sync schema (0005).

Everything here is batched over the syncing user's rooms: one transaction per kind of
data, never one per room (an initial sync of a big account must stay fast). Queries that
need a per-room bound (the newest N events of each room) run one small indexed statement
per room *inside one transaction*, which costs microseconds on SQLite and avoids a
thread hop per room everywhere.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ranvier.core.filters import RoomEventFilter
from ranvier.storage.database import Database
from ranvier.storage.stores.event_rows import (
    EVENT_COLUMNS,
    StoredEvent,
    row_to_stored_event,
)
from ranvier.storage.stores.events import filter_clause
from ranvier.storage.stores.presence import PresenceRow
from ranvier.storage.txn import Txn
from ranvier.util.lru import LruCache

_SERVABLE = "e.outlier = FALSE AND e.rejected_reason IS NULL AND e.soft_failed = FALSE"

# Event types that count as unread messages until push rules decide notifications.
COUNTED_TYPES: tuple[str, ...] = (
    "m.room.message",
    "m.room.encrypted",
    "m.sticker",
    "m.call.invite",
    "m.poll.start",
    "org.matrix.msc3381.poll.start",
)
# Unread counts stop counting here (clients show "99+" long before).
MAX_UNREAD_COUNT = 1000


@dataclass(frozen=True, slots=True)
class MembershipRow:
    room_id: str
    user_id: str
    membership: str
    event_id: str
    stream_ordering: int
    sender: str = ""
    # Only on rows from the membership history: the membership before this change.
    prev_membership: str | None = None


@dataclass(frozen=True, slots=True)
class RoomSummaryRow:
    joined: int
    invited: int
    heroes: list[str]


@dataclass(frozen=True, slots=True)
class TimelineSlice:
    events: list[StoredEvent]
    limited: bool


class SyncStore:
    def __init__(self, db: Database, *, membership_cache_size: int = 10_000) -> None:
        self._db = db
        # user -> current memberships: read by every sync (several times per long-poll
        # wake-up). Only correct while `invalidate_memberships` is called after every
        # commit changing `current_memberships` (the composition root wires it to the
        # event and room stores); without that wiring nothing is cached.
        self._rooms_for_user: LruCache[str, list[MembershipRow]] = LruCache(
            membership_cache_size
        )
        self._cache_memberships = False

    def enable_membership_cache(self) -> None:
        """Start caching memberships; call once `invalidate_memberships` is wired."""
        self._cache_memberships = True

    def invalidate_memberships(self, user_ids: Collection[str]) -> None:
        self._rooms_for_user.invalidate(user_ids)

    # -- memberships -----------------------------------------------------------------------
    async def get_membership(self, room_id: str, user_id: str) -> MembershipRow | None:
        return await self._db.run_read_txn(
            "sync_get_membership", _get_membership_txn, room_id, user_id
        )

    async def get_rooms_for_user(self, user_id: str) -> list[MembershipRow]:
        """Every current membership of the user (not forgotten)."""
        if not self._cache_memberships:
            return await self._db.run_read_txn(
                "sync_get_rooms_for_user", _get_rooms_for_user_txn, user_id
            )
        cached = self._rooms_for_user.get(user_id)
        if cached is not None:
            return list(cached)
        generation = self._rooms_for_user.generation()
        rows = await self._db.run_read_txn(
            "sync_get_rooms_for_user", _get_rooms_for_user_txn, user_id
        )
        self._rooms_for_user.set_if_unchanged(user_id, rows, generation)
        return list(rows)

    async def get_membership_changes(
        self, user_id: str, from_pos: int, to_pos: int
    ) -> list[MembershipRow]:
        """The user's own membership changes in (from_pos, to_pos], in stream order."""
        if to_pos <= from_pos:
            return []
        return await self._db.run_read_txn(
            "sync_get_membership_changes",
            _get_membership_changes_txn,
            user_id,
            from_pos,
            to_pos,
        )

    async def get_others_membership_changes(
        self, room_ids: Collection[str], user_id: str, from_pos: int, to_pos: int
    ) -> list[MembershipRow]:
        """Other users' membership changes in `room_ids` in (from_pos, to_pos]."""
        if not room_ids or to_pos <= from_pos:
            return []
        return await self._db.run_read_txn(
            "sync_get_others_membership_changes",
            _get_others_changes_txn,
            list(room_ids),
            user_id,
            from_pos,
            to_pos,
        )

    async def get_users_sharing_rooms(
        self, user_id: str, candidates: Collection[str] | None = None
    ) -> set[str]:
        """Users joined to a room the user is joined to (the user included); restricted
        to `candidates` when given."""
        if candidates is not None and not candidates:
            return set()
        return await self._db.run_read_txn(
            "sync_get_users_sharing_rooms",
            _users_sharing_txn,
            user_id,
            None if candidates is None else list(candidates),
        )

    async def get_joined_members(self, room_ids: Collection[str]) -> set[str]:
        if not room_ids:
            return set()
        return await self._db.run_read_txn(
            "sync_get_joined_members", _joined_members_txn, list(room_ids)
        )

    async def is_joined(self, user_id: str, room_id: str) -> bool:
        row = await self.get_membership(room_id, user_id)
        return row is not None and row.membership == "join"

    async def get_joined_room_ids(self, user_id: str) -> set[str]:
        rows = await self.get_rooms_for_user(user_id)
        return {r.room_id for r in rows if r.membership == "join"}

    # -- timelines ---------------------------------------------------------------------------
    async def get_timelines(
        self,
        ranges: Mapping[str, tuple[int, int]],
        limit: int,
        flt: RoomEventFilter | None = None,
    ) -> dict[str, TimelineSlice]:
        """Per room: the newest `limit` servable events in (from, to], oldest first."""
        if not ranges:
            return {}
        extra, extra_params = filter_clause(flt)
        return await self._db.run_read_txn(
            "sync_get_timelines",
            _get_timelines_txn,
            dict(ranges),
            limit,
            extra,
            extra_params,
        )

    async def get_last_event_ids(self, positions: Mapping[str, int]) -> dict[str, str]:
        """Per room: the last servable event at or before the position."""
        if not positions:
            return {}
        return await self._db.run_read_txn(
            "sync_get_last_event_ids", _get_last_events_txn, dict(positions)
        )

    async def get_rooms_with_events(
        self, room_ids: Collection[str], from_pos: int, to_pos: int
    ) -> set[str]:
        if not room_ids or to_pos <= from_pos:
            return set()
        return await self._db.run_read_txn(
            "sync_get_rooms_with_events",
            _rooms_with_events_txn,
            set(room_ids),
            from_pos,
            to_pos,
        )

    # -- counts and summaries ----------------------------------------------------------------
    async def get_unread_counts(
        self, user_id: str, since: Mapping[str, int], to_pos: int
    ) -> dict[str, int]:
        """Per room: messages from others after the position given for the room."""
        if not since:
            return {}
        return await self._db.run_read_txn(
            "sync_get_unread_counts", _unread_counts_txn, user_id, dict(since), to_pos
        )

    async def get_room_summaries(
        self, room_ids: Collection[str], user_id: str
    ) -> dict[str, RoomSummaryRow]:
        if not room_ids:
            return {}
        return await self._db.run_read_txn(
            "sync_get_room_summaries", _summaries_txn, list(room_ids), user_id
        )

    # -- per-user streams joined with memberships ------------------------------------------
    async def get_presence_for_cohabitants(
        self, user_id: str, from_id: int, to_id: int
    ) -> list[PresenceRow]:
        """Presence rows written in (from_id, to_id] of users sharing a room with the
        user (and the user's own)."""
        if to_id <= from_id:
            return []
        return await self._db.run_read_txn(
            "sync_get_presence", _presence_txn, user_id, from_id, to_id
        )

    async def get_device_list_changes_for_cohabitants(
        self, user_id: str, from_id: int, to_id: int
    ) -> set[str]:
        if to_id <= from_id:
            return set()
        return await self._db.run_read_txn(
            "sync_get_device_list_changes", _device_changes_txn, user_id, from_id, to_id
        )


# -- transaction functions ------------------------------------------------------------------

_MEMBERSHIP_COLUMNS = (
    "m.room_id, m.user_id, m.membership, m.event_id, m.stream_ordering"
)


def _membership_row(r: tuple[Any, ...]) -> MembershipRow:
    return MembershipRow(str(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]))


def _history_row(r: tuple[Any, ...]) -> MembershipRow:
    return MembershipRow(
        str(r[0]),
        str(r[1]),
        str(r[2]),
        str(r[3]),
        int(r[4]),
        str(r[5]),
        None if r[6] is None else str(r[6]),
    )


def _get_membership_txn(txn: Txn, room_id: str, user_id: str) -> MembershipRow | None:
    txn.execute(
        f"SELECT {_MEMBERSHIP_COLUMNS} FROM current_memberships AS m"
        " WHERE m.room_id = ? AND m.user_id = ?",
        (room_id, user_id),
    )
    row = txn.fetchone()
    return _membership_row(row) if row else None


def _get_rooms_for_user_txn(txn: Txn, user_id: str) -> list[MembershipRow]:
    txn.execute(
        f"SELECT {_MEMBERSHIP_COLUMNS} FROM current_memberships AS m"
        " WHERE m.user_id = ? AND m.forgotten = FALSE",
        (user_id,),
    )
    return [_membership_row(r) for r in txn.fetchall()]


def _get_membership_changes_txn(
    txn: Txn, user_id: str, from_pos: int, to_pos: int
) -> list[MembershipRow]:
    txn.execute(
        f"SELECT {_MEMBERSHIP_COLUMNS}, m.sender, m.prev_membership"
        " FROM room_memberships AS m"
        " WHERE m.user_id = ? AND m.stream_ordering > ? AND m.stream_ordering <= ?"
        " ORDER BY m.stream_ordering",
        (user_id, from_pos, to_pos),
    )
    return [_history_row(r) for r in txn.fetchall()]


def _get_others_changes_txn(
    txn: Txn, room_ids: list[str], user_id: str, from_pos: int, to_pos: int
) -> list[MembershipRow]:
    cond, params = txn.in_list("m.room_id", room_ids)
    txn.execute(
        f"SELECT {_MEMBERSHIP_COLUMNS}, m.sender, m.prev_membership"
        f" FROM room_memberships AS m WHERE {cond} AND m.user_id <> ?"
        " AND m.stream_ordering > ? AND m.stream_ordering <= ? ORDER BY m.stream_ordering",
        (*params, user_id, from_pos, to_pos),
    )
    return [_history_row(r) for r in txn.fetchall()]


_SHARED_USERS_SQL = (
    "SELECT DISTINCT other.user_id FROM current_memberships AS mine"
    " JOIN current_memberships AS other ON other.room_id = mine.room_id"
    " WHERE mine.user_id = ? AND mine.membership = 'join' AND other.membership = 'join'"
)


def _users_sharing_txn(
    txn: Txn, user_id: str, candidates: list[str] | None
) -> set[str]:
    sql = _SHARED_USERS_SQL
    params: list[Any] = [user_id]
    if candidates is not None:
        cond, extra = txn.in_list("other.user_id", candidates)
        sql += f" AND {cond}"
        params += extra
    txn.execute(sql, params)
    return {str(r[0]) for r in txn.fetchall()} | (
        {user_id} if candidates is None or user_id in candidates else set()
    )


def _joined_members_txn(txn: Txn, room_ids: list[str]) -> set[str]:
    cond, params = txn.in_list("m.room_id", room_ids)
    txn.execute(
        "SELECT DISTINCT m.user_id FROM current_memberships AS m"
        f" WHERE {cond} AND m.membership = 'join'",
        params,
    )
    return {str(r[0]) for r in txn.fetchall()}


def _get_timelines_txn(
    txn: Txn,
    ranges: dict[str, tuple[int, int]],
    limit: int,
    extra: str,
    extra_params: list[Any],
) -> dict[str, TimelineSlice]:
    sql = (
        f"SELECT {EVENT_COLUMNS} FROM events AS e WHERE e.room_id = ?"
        f" AND e.stream_ordering > ? AND e.stream_ordering <= ? AND {_SERVABLE}{extra}"
        " ORDER BY e.stream_ordering DESC LIMIT ?"
    )
    out: dict[str, TimelineSlice] = {}
    for room_id, (from_pos, to_pos) in ranges.items():
        if to_pos <= from_pos:
            out[room_id] = TimelineSlice([], False)
            continue
        txn.execute(sql, (room_id, from_pos, to_pos, *extra_params, limit + 1))
        rows = [row_to_stored_event(r) for r in txn.fetchall()]
        limited = len(rows) > limit
        rows = rows[:limit]
        rows.reverse()
        out[room_id] = TimelineSlice(rows, limited)
    return out


def _get_last_events_txn(txn: Txn, positions: dict[str, int]) -> dict[str, str]:
    out: dict[str, str] = {}
    for room_id, pos in positions.items():
        txn.execute(
            f"SELECT e.event_id FROM events AS e WHERE e.room_id = ?"
            f" AND e.stream_ordering <= ? AND {_SERVABLE}"
            " ORDER BY e.stream_ordering DESC LIMIT 1",
            (room_id, pos),
        )
        row = txn.fetchone()
        if row is not None:
            out[room_id] = str(row[0])
    return out


def _rooms_with_events_txn(
    txn: Txn, room_ids: set[str], from_pos: int, to_pos: int
) -> set[str]:
    # Incremental syncs cover a short stream range: scan the range, not the rooms.
    txn.execute(
        "SELECT DISTINCT e.room_id FROM events AS e"
        f" WHERE e.stream_ordering > ? AND e.stream_ordering <= ? AND {_SERVABLE}",
        (from_pos, to_pos),
    )
    return {str(r[0]) for r in txn.fetchall()} & room_ids


def _unread_counts_txn(
    txn: Txn, user_id: str, since: dict[str, int], to_pos: int
) -> dict[str, int]:
    types = ", ".join("?" * len(COUNTED_TYPES))
    sql = (
        "SELECT COUNT(*) FROM (SELECT 1 FROM events AS e"
        " WHERE e.room_id = ? AND e.stream_ordering > ? AND e.stream_ordering <= ?"
        f" AND e.sender <> ? AND e.state_key IS NULL AND e.type IN ({types})"
        f" AND e.redacted_by IS NULL AND {_SERVABLE} LIMIT ?) AS unread"
    )
    out: dict[str, int] = {}
    for room_id, from_pos in since.items():
        txn.execute(
            sql, (room_id, from_pos, to_pos, user_id, *COUNTED_TYPES, MAX_UNREAD_COUNT)
        )
        row = txn.fetchone()
        out[room_id] = int(row[0]) if row else 0
    return out


def _summaries_txn(
    txn: Txn, room_ids: list[str], user_id: str
) -> dict[str, RoomSummaryRow]:
    cond, params = txn.in_list("m.room_id", room_ids)
    txn.execute(
        "SELECT m.room_id, m.membership, COUNT(*) FROM current_memberships AS m"
        f" WHERE {cond} AND m.membership IN ('join', 'invite')"
        " GROUP BY m.room_id, m.membership",
        params,
    )
    counts: dict[str, dict[str, int]] = {r: {} for r in room_ids}
    for room_id, membership, n in txn.fetchall():
        counts[str(room_id)][str(membership)] = int(n)
    out: dict[str, RoomSummaryRow] = {}
    for room_id in room_ids:
        # Heroes (spec: Room Summary): up to 5 other members, joined/invited first, in
        # the order they became members; left members only when nobody else is there.
        txn.execute(
            "SELECT m.user_id FROM current_memberships AS m WHERE m.room_id = ?"
            " AND m.user_id <> ?"
            " ORDER BY CASE WHEN m.membership IN ('join', 'invite') THEN 0 ELSE 1 END,"
            " m.stream_ordering LIMIT 5",
            (room_id, user_id),
        )
        heroes = [str(r[0]) for r in txn.fetchall()]
        c = counts[room_id]
        out[room_id] = RoomSummaryRow(c.get("join", 0), c.get("invite", 0), heroes)
    return out


def _presence_txn(
    txn: Txn, user_id: str, from_id: int, to_id: int
) -> list[PresenceRow]:
    txn.execute(
        "SELECT p.user_id, p.state, p.status_msg, p.last_active_ts,"
        " p.currently_active, p.stream_id FROM presence AS p"
        " WHERE p.stream_id > ? AND p.stream_id <= ?"
        f" AND (p.user_id = ? OR p.user_id IN ({_SHARED_USERS_SQL}))"
        " ORDER BY p.stream_id",
        (from_id, to_id, user_id, user_id),
    )
    return [
        PresenceRow(str(r[0]), str(r[1]), r[2], int(r[3]), bool(r[4]), int(r[5]))
        for r in txn.fetchall()
    ]


def _device_changes_txn(txn: Txn, user_id: str, from_id: int, to_id: int) -> set[str]:
    txn.execute(
        "SELECT DISTINCT d.user_id FROM device_lists_stream AS d"
        " WHERE d.stream_id > ? AND d.stream_id <= ?"
        f" AND (d.user_id = ? OR d.user_id IN ({_SHARED_USERS_SQL}))",
        (from_id, to_id, user_id, user_id),
    )
    return {str(r[0]) for r in txn.fetchall()}
