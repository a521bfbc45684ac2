"""Reads sliding sync's room lists need (schema 0003): bump stamps, the few state events
list filters and room names look at, space children, current state and its changes.

Batched over the rooms of one request: one transaction per kind of data; where a
per-room bound is needed (the newest bump event of each room) one small indexed
statement per room runs inside that transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ranvier.core.json import decode_json
from ranvier.core.sliding_sync import BUMP_EVENT_TYPES, StateQuery
from ranvier.storage.database import Database
from ranvier.storage.txn import Txn

JsonDict = dict[str, Any]
StateKey = tuple[str, str]

_SERVABLE = "e.outlier = FALSE AND e.rejected_reason IS NULL AND e.soft_failed = FALSE"

# The state list filters, names and avatars are computed from.
FACT_TYPES: tuple[str, ...] = (
    "m.room.create",
    "m.room.encryption",
    "m.room.name",
    "m.room.avatar",
)


@dataclass(frozen=True, slots=True)
class StateChange:
    stream_ordering: int
    key: StateKey
    # None: the key left the state (state resolution).
    event_id: str | None


class RoomListStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_bump_stamps(self, positions: Mapping[str, int]) -> dict[str, int]:
        """Per room: the position of its newest bump event at or before the room's
        position (rooms without one are left out)."""
        if not positions:
            return {}
        return await self._db.run_read_txn(
            "sliding_get_bump_stamps", _bump_stamps_txn, dict(positions)
        )

    async def get_fact_contents(
        self, room_ids: Collection[str]
    ) -> dict[str, dict[str, JsonDict]]:
        """Per room: the content of each current `FACT_TYPES` event (state key '')."""
        if not room_ids:
            return {}
        return await self._db.run_read_txn(
            "sliding_get_fact_contents", _fact_contents_txn, list(room_ids)
        )

    async def get_space_children(self, space_ids: Collection[str]) -> set[str]:
        """Rooms named by a current `m.space.child` event (with `via`) of the spaces."""
        if not space_ids:
            return set()
        return await self._db.run_read_txn(
            "sliding_get_space_children", _space_children_txn, list(space_ids)
        )

    async def get_state_ids(
        self, queries: Mapping[str, StateQuery]
    ) -> dict[str, dict[StateKey, str]]:
        """Per room: the current state ids its query asks for (only those, so a big
        room's member list is not read to find a few keys)."""
        queries = {r: q for r, q in queries.items() if not q.is_empty()}
        if not queries:
            return {}
        return await self._db.run_read_txn(
            "sliding_get_state_ids", _state_ids_txn, dict(queries)
        )

    async def get_state_changes(
        self, ranges: Mapping[str, tuple[int, int]]
    ) -> dict[str, list[StateChange]]:
        """Per room: the changes of its current state in (from, to], in order."""
        ranges = {r: (a, b) for r, (a, b) in ranges.items() if b > a}
        if not ranges:
            return {}
        return await self._db.run_read_txn(
            "sliding_get_state_changes", _state_changes_txn, ranges
        )


_BUMP_TYPES_SQL = ", ".join(f"'{t}'" for t in BUMP_EVENT_TYPES)
# The newest bump event of one room at or before a position: an index range scan on
# (room_id, stream_ordering), newest first, stopping at the first bump type.
_BUMP_SUBQUERY = (
    "SELECT e.stream_ordering FROM events AS e WHERE e.room_id = {room}"
    " AND e.stream_ordering <= {pos} AND e.type IN (" + _BUMP_TYPES_SQL + ")"
    f" AND {_SERVABLE} ORDER BY e.stream_ordering DESC LIMIT 1"
)


def _bump_stamps_txn(txn: Txn, positions: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    if txn.engine_name == "postgres":
        # One statement (one round trip) for every room: the rooms and positions
        # are passed as two arrays and each row runs the indexed subquery.
        sub = _BUMP_SUBQUERY.format(room="r.room_id", pos="r.pos")
        txn.execute(
            f"SELECT r.room_id, ({sub}) FROM unnest(?::text[], ?::bigint[])"
            " AS r(room_id, pos)",
            (list(positions), list(positions.values())),
        )
        rows = txn.fetchall()
    else:
        # SQLite runs in-process: a statement per room costs microseconds.
        sql = _BUMP_SUBQUERY.format(room="?", pos="?")
        rows = []
        for room_id, pos in positions.items():
            txn.execute(sql, (room_id, pos))
            found = txn.fetchone()
            rows.append((room_id, found[0] if found else None))
    for room_id, stamp in rows:
        if stamp is not None:
            out[str(room_id)] = int(stamp)
    return out


def _content(raw: Any) -> JsonDict:
    pdu = decode_json(str(raw))
    content = pdu.get("content") if isinstance(pdu, dict) else None
    return content if isinstance(content, dict) else {}


def _fact_contents_txn(txn: Txn, room_ids: list[str]) -> dict[str, dict[str, JsonDict]]:
    cond, params = txn.in_list("c.room_id", room_ids)
    types = ", ".join("?" * len(FACT_TYPES))
    txn.execute(
        "SELECT c.room_id, c.type, e.json, e.redacted_by FROM current_state_events AS c"
        " JOIN events AS e ON e.event_id = c.event_id"
        f" WHERE {cond} AND c.type IN ({types}) AND c.state_key = ''",
        (*params, *FACT_TYPES),
    )
    out: dict[str, dict[str, JsonDict]] = {}
    for room_id, etype, raw, redacted_by in txn.fetchall():
        # A redacted name or avatar is no name or avatar (its content is gone).
        content = (
            {}
            if redacted_by is not None and etype != "m.room.create"
            else _content(raw)
        )
        out.setdefault(str(room_id), {})[str(etype)] = content
    return out


def _space_children_txn(txn: Txn, space_ids: list[str]) -> set[str]:
    cond, params = txn.in_list("c.room_id", space_ids)
    txn.execute(
        "SELECT c.state_key, e.json FROM current_state_events AS c"
        " JOIN events AS e ON e.event_id = c.event_id"
        f" WHERE {cond} AND c.type = 'm.space.child' AND e.redacted_by IS NULL",
        params,
    )
    out: set[str] = set()
    for state_key, raw in txn.fetchall():
        via = _content(raw).get("via")
        # Spec (m.space.child): a child without a non-empty `via` is no child.
        if isinstance(via, list) and via:
            out.add(str(state_key))
    return out


def _state_ids_txn(
    txn: Txn, queries: dict[str, StateQuery]
) -> dict[str, dict[StateKey, str]]:
    """At most three statements whatever the number of rooms: whole states, every key
    of some types, and exact keys (read as types x state keys, then narrowed)."""
    out: dict[str, dict[StateKey, str]] = {r: {} for r in queries}
    full = [r for r, q in queries.items() if q.full]
    by_type = {r: q for r, q in queries.items() if not q.full and q.types}
    exact = {r: q for r, q in queries.items() if not q.full and q.keys}
    base = "SELECT room_id, type, state_key, event_id FROM current_state_events WHERE "
    if full:
        cond, params = txn.in_list("room_id", full)
        txn.execute(base + cond, params)
        for room_id, etype, skey, event_id in txn.fetchall():
            out[str(room_id)][(str(etype), str(skey))] = str(event_id)
    if by_type:
        rooms, rparams = txn.in_list("room_id", list(by_type))
        types, tparams = txn.in_list(
            "type", sorted({t for q in by_type.values() for t in q.types})
        )
        txn.execute(f"{base}{rooms} AND {types}", [*rparams, *tparams])
        for room_id, etype, skey, event_id in txn.fetchall():
            if str(etype) in by_type[str(room_id)].types:
                out[str(room_id)][(str(etype), str(skey))] = str(event_id)
    if exact:
        keys = {k for q in exact.values() for k in q.keys}
        rooms, rparams = txn.in_list("room_id", list(exact))
        types, tparams = txn.in_list("type", sorted({t for t, _ in keys}))
        skeys, kparams = txn.in_list("state_key", sorted({k for _, k in keys}))
        txn.execute(
            f"{base}{rooms} AND {types} AND {skeys}", [*rparams, *tparams, *kparams]
        )
        for room_id, etype, skey, event_id in txn.fetchall():
            key = (str(etype), str(skey))
            if key in exact[str(room_id)].keys:
                out[str(room_id)][key] = str(event_id)
    return out


def _state_changes_txn(
    txn: Txn, ranges: dict[str, tuple[int, int]]
) -> dict[str, list[StateChange]]:
    out: dict[str, list[StateChange]] = {}
    for room_id, (from_pos, to_pos) in ranges.items():
        txn.execute(
            "SELECT stream_ordering, type, state_key, event_id"
            " FROM current_state_delta_stream WHERE room_id = ?"
            " AND stream_ordering > ? AND stream_ordering <= ? ORDER BY stream_ordering",
            (room_id, from_pos, to_pos),
        )
        rows = txn.fetchall()
        if rows:
            out[room_id] = [
                StateChange(
                    int(r[0]),
                    (str(r[1]), str(r[2])),
                    None if r[3] is None else str(r[3]),
                )
                for r in rows
            ]
    return out
