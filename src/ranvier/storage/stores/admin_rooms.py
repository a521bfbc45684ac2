"""Room reads of the server admin API: one summary per room (Synapse's room list
columns) from `rooms`, current state and current memberships, and the blocked rooms."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from ranvier.storage.database import Database
from ranvier.storage.txn import Txn

# State whose content the summaries show (all with state key "").
SUMMARY_TYPES: Final = (
    "m.room.create",
    "m.room.name",
    "m.room.canonical_alias",
    "m.room.join_rules",
    "m.room.guest_access",
    "m.room.history_visibility",
    "m.room.encryption",
    "m.room.topic",
    "m.room.avatar",
)


@dataclass(frozen=True, slots=True)
class RoomSummaryRow:
    room_id: str
    room_version: str
    creator: str | None
    is_public: bool
    joined_members: int
    joined_local_members: int
    state_events: int
    # Content of the SUMMARY_TYPES events the room has.
    state: dict[str, dict[str, Any]] = field(default_factory=dict)


def _content(raw: Any) -> dict[str, Any]:
    event = orjson.loads(str(raw))
    content = event.get("content") if isinstance(event, dict) else None
    return content if isinstance(content, dict) else {}


def _summaries_txn(
    txn: Txn, server_name: str, room_id: str | None
) -> list[RoomSummaryRow]:
    one = " WHERE room_id = ?" if room_id is not None else ""
    args: tuple[Any, ...] = (room_id,) if room_id is not None else ()
    txn.execute(
        f"SELECT room_id, room_version, creator, is_public FROM rooms{one}", args
    )
    rooms = txn.fetchall()
    members: dict[str, tuple[int, int]] = {}
    txn.execute(
        "SELECT room_id, COUNT(*), SUM(CASE WHEN user_id LIKE ? THEN 1 ELSE 0 END)"
        f" FROM current_memberships WHERE membership = 'join'"
        f"{' AND room_id = ?' if room_id is not None else ''} GROUP BY room_id",
        ("%:" + server_name.replace("%", "\\%"), *args),
    )
    for r in txn.fetchall():
        members[str(r[0])] = (int(r[1]), int(r[2] or 0))
    counts: dict[str, int] = {}
    txn.execute(
        f"SELECT room_id, COUNT(*) FROM current_state_events{one} GROUP BY room_id",
        args,
    )
    for r in txn.fetchall():
        counts[str(r[0])] = int(r[1])
    placeholders = ", ".join("?" for _ in SUMMARY_TYPES)
    txn.execute(
        "SELECT cs.room_id, cs.type, e.json FROM current_state_events cs"
        " JOIN events e ON e.event_id = cs.event_id"
        f" WHERE cs.state_key = '' AND cs.type IN ({placeholders})"
        f"{' AND cs.room_id = ?' if room_id is not None else ''}",
        (*SUMMARY_TYPES, *args),
    )
    state: dict[str, dict[str, dict[str, Any]]] = {}
    for r in txn.fetchall():
        state.setdefault(str(r[0]), {})[str(r[1])] = _content(r[2])
    out = []
    for r in rooms:
        rid = str(r[0])
        joined, local = members.get(rid, (0, 0))
        out.append(
            RoomSummaryRow(
                room_id=rid,
                room_version=str(r[1]),
                creator=None if r[2] is None else str(r[2]),
                is_public=bool(r[3]),
                joined_members=joined,
                joined_local_members=local,
                state_events=counts.get(rid, 0),
                state=state.get(rid, {}),
            )
        )
    return out


def _get_block_txn(txn: Txn, room_id: str) -> str | None:
    txn.execute("SELECT user_id FROM blocked_rooms WHERE room_id = ?", (room_id,))
    r = txn.fetchone()
    return None if r is None else str(r[0])


def _set_block_txn(txn: Txn, room_id: str, user_id: str, block: bool) -> None:
    if block:
        txn.execute(
            "INSERT INTO blocked_rooms (room_id, user_id) VALUES (?, ?)"
            " ON CONFLICT (room_id) DO NOTHING",
            (room_id, user_id),
        )
    else:
        txn.execute("DELETE FROM blocked_rooms WHERE room_id = ?", (room_id,))


def _members_txn(txn: Txn, room_id: str) -> list[str]:
    txn.execute(
        "SELECT user_id FROM current_memberships WHERE room_id = ? AND membership = 'join'"
        " ORDER BY user_id",
        (room_id,),
    )
    return [str(r[0]) for r in txn.fetchall()]


def _forward_extremities_txn(txn: Txn, room_id: str) -> list[tuple[str, int, int]]:
    txn.execute(
        "SELECT f.event_id, e.stream_ordering, e.depth, e.received_ts"
        " FROM event_forward_extremities f JOIN events e ON e.event_id = f.event_id"
        " WHERE f.room_id = ? ORDER BY e.stream_ordering",
        (room_id,),
    )
    return [(str(r[0]), int(r[2]), int(r[3])) for r in txn.fetchall()]


class RoomAdminStore:
    def __init__(self, db: Database, server_name: str) -> None:
        self._db = db
        self._server_name = server_name

    async def get_room_summaries(self) -> list[RoomSummaryRow]:
        return await self._db.run_read_txn(
            "admin_room_summaries", _summaries_txn, self._server_name, None
        )

    async def get_room_summary(self, room_id: str) -> RoomSummaryRow | None:
        rows = await self._db.run_read_txn(
            "admin_room_summary", _summaries_txn, self._server_name, room_id
        )
        return rows[0] if rows else None

    async def get_joined_members(self, room_id: str) -> list[str]:
        return await self._db.run_read_txn("admin_room_members", _members_txn, room_id)

    async def get_block(self, room_id: str) -> str | None:
        """The admin who blocked the room, None if it is not blocked."""
        return await self._db.run_read_txn("get_room_block", _get_block_txn, room_id)

    async def is_room_blocked(self, room_id: str) -> bool:
        return await self.get_block(room_id) is not None

    async def set_block(self, room_id: str, user_id: str, block: bool) -> None:
        await self._db.run_txn(
            "set_room_block", _set_block_txn, room_id, user_id, block
        )

    async def get_forward_extremities(self, room_id: str) -> list[tuple[str, int, int]]:
        """(event ID, depth, received_ts) of each forward extremity."""
        return await self._db.run_read_txn(
            "admin_forward_extremities", _forward_extremities_txn, room_id
        )
