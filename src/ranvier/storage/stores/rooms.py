"""Rooms, local aliases, the public room directory flag, and room memberships.

Membership rows mirror the member keys of each room's current state and are written by
the event persistence transaction (`events_persist.py`); this store reads them and
handles `forget`.

Sync seams: `get_rooms_for_user`, `get_membership_changes_for_user`,
`get_joined_user_ids`, `get_membership`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from ranvier.storage.database import Database
from ranvier.storage.txn import Txn

__all__ = ["MembershipChangeRow", "MembershipRow", "RoomRow", "RoomStore"]


@dataclass(frozen=True, slots=True)
class RoomRow:
    room_id: str
    room_version: str
    creator: str | None
    is_public: bool
    created_ts: int


@dataclass(frozen=True, slots=True)
class MembershipRow:
    room_id: str
    user_id: str
    membership: str
    event_id: str
    stream_ordering: int
    forgotten: bool


@dataclass(frozen=True, slots=True)
class MembershipChangeRow:
    room_id: str
    user_id: str
    stream_ordering: int
    event_id: str
    membership: str
    sender: str
    prev_membership: str | None


def _room(row: Any) -> RoomRow:
    return RoomRow(str(row[0]), str(row[1]), row[2], bool(row[3]), int(row[4]))


def _membership(row: Any) -> MembershipRow:
    return MembershipRow(
        str(row[0]), str(row[1]), str(row[2]), str(row[3]), int(row[4]), bool(row[5])
    )


_MEMBERSHIP_COLUMNS = (
    "room_id, user_id, membership, event_id, stream_ordering, forgotten"
)


class RoomStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        # A room's version never changes: remember it once read.
        self._versions: dict[str, RoomVersion] = {}
        self._membership_listeners: list[Callable[[Collection[str]], object]] = []

    # -- rooms ---------------------------------------------------------------------------
    async def get_room(self, room_id: str) -> RoomRow | None:
        def txn_fn(txn: Txn) -> RoomRow | None:
            txn.execute(
                "SELECT room_id, room_version, creator, is_public, created_ts FROM rooms "
                "WHERE room_id = ?",
                (room_id,),
            )
            row = txn.fetchone()
            return _room(row) if row else None

        return await self._db.run_read_txn("get_room", txn_fn)

    async def get_room_version(self, room_id: str) -> RoomVersion | None:
        """The room's version; None for rooms this server does not know."""
        cached = self._versions.get(room_id)
        if cached is not None:
            return cached
        row = await self.get_room(room_id)
        if row is None:
            return None
        version = KNOWN_ROOM_VERSIONS.get(row.room_version)
        if version is not None:
            self._versions[room_id] = version
        return version

    async def set_room_is_public(self, room_id: str, is_public: bool) -> None:
        def txn_fn(txn: Txn) -> None:
            txn.execute(
                "UPDATE rooms SET is_public = ? WHERE room_id = ?", (is_public, room_id)
            )

        await self._db.run_txn("set_room_is_public", txn_fn)

    async def get_public_rooms(self) -> list[tuple[str, int]]:
        """Published rooms with their joined member counts, most members first."""

        def txn_fn(txn: Txn) -> list[tuple[str, int]]:
            txn.execute(
                "SELECT r.room_id, COUNT(m.user_id) FROM rooms AS r "
                "LEFT JOIN current_memberships AS m "
                "ON m.room_id = r.room_id AND m.membership = 'join' "
                "WHERE r.is_public = TRUE GROUP BY r.room_id "
                "ORDER BY COUNT(m.user_id) DESC, r.room_id",
            )
            return [(str(r[0]), int(r[1])) for r in txn.fetchall()]

        return await self._db.run_read_txn("get_public_rooms", txn_fn)

    # -- aliases ---------------------------------------------------------------------------
    async def create_alias(
        self, alias: str, room_id: str, creator: str, now_ms: int
    ) -> bool:
        """Map `alias` to `room_id`; False if the alias is taken."""

        def txn_fn(txn: Txn) -> bool:
            # One statement, so that two concurrent requests cannot both pass a check.
            txn.execute(
                "INSERT INTO room_aliases (room_alias, room_id, creator, created_ts) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (room_alias) DO NOTHING",
                (alias, room_id, creator, now_ms),
            )
            return txn.rowcount == 1

        return await self._db.run_txn("create_alias", txn_fn)

    async def get_alias(self, alias: str) -> tuple[str, str] | None:
        """(room_id, creator) of a local alias."""

        def txn_fn(txn: Txn) -> tuple[str, str] | None:
            txn.execute(
                "SELECT room_id, creator FROM room_aliases WHERE room_alias = ?",
                (alias,),
            )
            row = txn.fetchone()
            return (str(row[0]), str(row[1])) if row else None

        return await self._db.run_read_txn("get_alias", txn_fn)

    async def delete_alias(self, alias: str) -> bool:
        def txn_fn(txn: Txn) -> bool:
            txn.execute("DELETE FROM room_aliases WHERE room_alias = ?", (alias,))
            return txn.rowcount > 0

        return await self._db.run_txn("delete_alias", txn_fn)

    async def get_aliases_for_room(self, room_id: str) -> list[str]:
        def txn_fn(txn: Txn) -> list[str]:
            txn.execute(
                "SELECT room_alias FROM room_aliases WHERE room_id = ? "
                "ORDER BY created_ts, room_alias",
                (room_id,),
            )
            return [str(r[0]) for r in txn.fetchall()]

        return await self._db.run_read_txn("get_aliases_for_room", txn_fn)

    # -- memberships -----------------------------------------------------------------------
    async def get_membership(self, room_id: str, user_id: str) -> MembershipRow | None:
        def txn_fn(txn: Txn) -> MembershipRow | None:
            txn.execute(
                f"SELECT {_MEMBERSHIP_COLUMNS} FROM current_memberships "
                "WHERE room_id = ? AND user_id = ?",
                (room_id, user_id),
            )
            row = txn.fetchone()
            return _membership(row) if row else None

        return await self._db.run_read_txn("get_membership", txn_fn)

    async def get_rooms_for_user(
        self,
        user_id: str,
        memberships: Collection[str] = ("join",),
        *,
        include_forgotten: bool = False,
    ) -> list[MembershipRow]:
        """The user's current memberships of the given kinds."""

        def txn_fn(txn: Txn) -> list[MembershipRow]:
            cond, params = txn.in_list("membership", memberships)
            sql = (
                f"SELECT {_MEMBERSHIP_COLUMNS} FROM current_memberships "
                f"WHERE user_id = ? AND {cond}"
            )
            if not include_forgotten:
                sql += " AND forgotten = FALSE"
            txn.execute(sql + " ORDER BY stream_ordering", [user_id, *params])
            return [_membership(r) for r in txn.fetchall()]

        return await self._db.run_read_txn("get_rooms_for_user", txn_fn)

    async def get_members(
        self, room_id: str, memberships: Collection[str] | None = None
    ) -> list[MembershipRow]:
        def txn_fn(txn: Txn) -> list[MembershipRow]:
            sql = f"SELECT {_MEMBERSHIP_COLUMNS} FROM current_memberships WHERE room_id = ?"
            params: list[Any] = [room_id]
            if memberships is not None:
                cond, extra = txn.in_list("membership", memberships)
                sql += f" AND {cond}"
                params += extra
            txn.execute(sql + " ORDER BY user_id", params)
            return [_membership(r) for r in txn.fetchall()]

        return await self._db.run_read_txn("get_members", txn_fn)

    async def get_joined_user_ids(self, room_id: str) -> list[str]:
        return [m.user_id for m in await self.get_members(room_id, ("join",))]

    async def get_joined_member_counts(
        self, room_ids: Collection[str]
    ) -> dict[str, int]:
        def txn_fn(txn: Txn) -> dict[str, int]:
            cond, params = txn.in_list("room_id", room_ids)
            txn.execute(
                "SELECT room_id, COUNT(*) FROM current_memberships "
                f"WHERE {cond} AND membership = 'join' GROUP BY room_id",
                params,
            )
            return {str(r[0]): int(r[1]) for r in txn.fetchall()}

        if not room_ids:
            return {}
        return await self._db.run_read_txn("get_joined_member_counts", txn_fn)

    async def get_membership_changes_for_user(
        self, user_id: str, from_pos: int, to_pos: int
    ) -> list[MembershipChangeRow]:
        """The user's membership changes in `(from_pos, to_pos]`, in stream order."""

        def txn_fn(txn: Txn) -> list[MembershipChangeRow]:
            txn.execute(
                "SELECT room_id, user_id, stream_ordering, event_id, membership, sender, "
                "prev_membership FROM room_memberships WHERE user_id = ? "
                "AND stream_ordering > ? AND stream_ordering <= ? ORDER BY stream_ordering",
                (user_id, from_pos, to_pos),
            )
            return [
                MembershipChangeRow(
                    str(r[0]),
                    str(r[1]),
                    int(r[2]),
                    str(r[3]),
                    str(r[4]),
                    str(r[5]),
                    r[6],
                )
                for r in txn.fetchall()
            ]

        if from_pos >= to_pos:
            return []
        return await self._db.run_read_txn("get_membership_changes_for_user", txn_fn)

    async def get_membership_at(
        self, room_id: str, user_id: str, stream_pos: int
    ) -> MembershipChangeRow | None:
        """The user's latest membership change in the room at or before `stream_pos`."""

        def txn_fn(txn: Txn) -> MembershipChangeRow | None:
            txn.execute(
                "SELECT room_id, user_id, stream_ordering, event_id, membership, sender, "
                "prev_membership FROM room_memberships WHERE room_id = ? AND user_id = ? "
                "AND stream_ordering <= ? ORDER BY stream_ordering DESC LIMIT 1",
                (room_id, user_id, stream_pos),
            )
            r = txn.fetchone()
            if r is None:
                return None
            return MembershipChangeRow(
                str(r[0]), str(r[1]), int(r[2]), str(r[3]), str(r[4]), str(r[5]), r[6]
            )

        return await self._db.run_read_txn("get_membership_at", txn_fn)

    async def has_ever_joined(self, room_id: str, user_id: str) -> bool:
        def txn_fn(txn: Txn) -> bool:
            txn.execute(
                "SELECT 1 FROM room_memberships WHERE room_id = ? AND user_id = ? "
                "AND membership = 'join' LIMIT 1",
                (room_id, user_id),
            )
            return txn.fetchone() is not None

        return await self._db.run_read_txn("has_ever_joined", txn_fn)

    def add_membership_listener(
        self, listener: Callable[[Collection[str]], object]
    ) -> None:
        """Call `listener(user_ids)` after a commit that changed those users' current
        memberships (here: forgetting a room)."""
        self._membership_listeners.append(listener)

    async def forget_room(self, room_id: str, user_id: str) -> None:
        def txn_fn(txn: Txn) -> None:
            txn.execute(
                "UPDATE current_memberships SET forgotten = TRUE "
                "WHERE room_id = ? AND user_id = ?",
                (room_id, user_id),
            )
            for listener in self._membership_listeners:
                txn.call_after(listener, {user_id})

        await self._db.run_txn("forget_room", txn_fn)
