"""Event relationships: the `event_relations` index and the reads built on it.

Rows are written by the persist transaction (`insert_relation_txn`, called for every
servable event) and deleted when their event is redacted (`delete_relation_txn`), so
aggregations never count a redacted relation. Reads: one parent's related events
(`/relations`, optionally recursive), batched aggregations for many parents at once
(bundled into `unsigned.m.relations`), and a room's threads by latest activity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ranvier.core.events.relations import (
    REL_REFERENCE,
    REL_REPLACE,
    REL_THREAD,
    relation_of,
)
from ranvier.storage.database import Database
from ranvier.storage.stores.event_rows import EventToPersist
from ranvier.storage.txn import Txn

__all__ = [
    "Aggregations",
    "EditCandidate",
    "RelationStore",
    "RelationsPage",
    "ThreadUpdate",
    "ThreadsPage",
    "delete_relation_txn",
    "insert_relation_txn",
]

Direction = Literal["b", "f"]

# Synapse follows relations of relations three levels deep for `recurse=true`.
MAX_RECURSION_DEPTH = 3


@dataclass(frozen=True, slots=True)
class RelationsPage:
    event_ids: list[str]
    # Stream position to continue from, or None when this was the last page.
    next_stream: int | None


@dataclass(frozen=True, slots=True)
class ThreadsPage:
    # Thread root IDs, most recent activity first.
    thread_ids: list[str]
    next_stream: int | None


@dataclass(frozen=True, slots=True)
class EditCandidate:
    event_id: str
    sender: str
    type: str
    origin_server_ts: int


@dataclass(slots=True)
class Aggregations:
    """What is bundled for one parent event."""

    thread_count: int = 0
    thread_latest_id: str | None = None
    # The reader sent an event into the thread.
    thread_participated: bool = False
    edits: list[EditCandidate] = field(default_factory=list)
    references: list[str] = field(default_factory=list)


def insert_relation_txn(txn: Txn, item: EventToPersist) -> None:
    """Index `item`'s relationship, if it declares one and is servable."""
    if item.outlier or item.soft_failed or item.rejected_reason is not None:
        return
    ev = item.event
    relation = relation_of(ev.content)
    if relation is None or ev.state_key is not None:
        return
    txn.execute(
        "INSERT INTO event_relations (event_id, room_id, relates_to_id, rel_type, "
        "aggregation_key, sender, type, stream_ordering, origin_server_ts) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
        (
            ev.event_id,
            ev.room_id,
            relation.event_id,
            relation.rel_type,
            relation.key,
            ev.sender,
            ev.type,
            item.stream_ordering,
            ev.origin_server_ts,
        ),
    )


def delete_relation_txn(txn: Txn, event_id: str) -> None:
    """A redacted event no longer relates to anything (spec: redactions remove
    `m.relates_to`, so the relation leaves every aggregation)."""
    txn.execute("DELETE FROM event_relations WHERE event_id = ?", (event_id,))


def _relations_txn(
    txn: Txn,
    room_id: str,
    parent_id: str,
    *,
    rel_type: str | None,
    event_type: str | None,
    from_stream: int | None,
    to_stream: int | None,
    direction: Direction,
    limit: int,
    recurse: bool,
) -> RelationsPage:
    params: list[Any] = []
    if recurse:
        source = (
            "WITH RECURSIVE related (event_id, depth) AS ("
            "SELECT event_id, 1 FROM event_relations "
            "WHERE relates_to_id = ? AND room_id = ? "
            "UNION ALL SELECT c.event_id, related.depth + 1 FROM event_relations AS c "
            "JOIN related ON c.relates_to_id = related.event_id "
            "WHERE related.depth < ?) "
            "SELECT r.event_id, r.stream_ordering FROM event_relations AS r "
            "JOIN related ON related.event_id = r.event_id WHERE r.room_id = ?"
        )
        params += [parent_id, room_id, MAX_RECURSION_DEPTH, room_id]
    else:
        source = (
            "SELECT r.event_id, r.stream_ordering FROM event_relations AS r "
            "WHERE r.relates_to_id = ? AND r.room_id = ?"
        )
        params += [parent_id, room_id]
    conds = _page_conditions(
        params, rel_type, event_type, from_stream, to_stream, direction
    )
    order = "DESC" if direction == "b" else "ASC"
    txn.execute(
        f"{source}{conds} ORDER BY r.stream_ordering {order} LIMIT ?",
        (*params, limit + 1),
    )
    rows = txn.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_stream = int(rows[-1][1]) if more and rows else None
    return RelationsPage([str(r[0]) for r in rows], next_stream)


def _page_conditions(
    params: list[Any],
    rel_type: str | None,
    event_type: str | None,
    from_stream: int | None,
    to_stream: int | None,
    direction: Direction,
) -> str:
    conds = ""
    if rel_type is not None:
        conds += " AND r.rel_type = ?"
        params.append(rel_type)
    if event_type is not None:
        conds += " AND r.type = ?"
        params.append(event_type)
    before, after = ("<", ">=") if direction == "b" else (">", "<=")
    if from_stream is not None:
        conds += f" AND r.stream_ordering {before} ?"
        params.append(from_stream)
    if to_stream is not None:
        conds += f" AND r.stream_ordering {after} ?"
        params.append(to_stream)
    return conds


def _aggregations_txn(
    txn: Txn, parents: dict[str, str], user_id: str | None
) -> dict[str, Aggregations]:
    """`parents` maps event ID to room ID: relations from other rooms are ignored."""
    out: dict[str, Aggregations] = {}
    cond, params = txn.in_list("relates_to_id", list(parents))
    txn.execute(
        "SELECT relates_to_id, room_id, COUNT(*), MAX(stream_ordering) "
        f"FROM event_relations WHERE {cond} AND rel_type = ? "
        "GROUP BY relates_to_id, room_id",
        (*params, REL_THREAD),
    )
    latest: dict[int, str] = {}
    for parent, room, count, max_stream in txn.fetchall():
        if parents[parent] == room:
            out.setdefault(str(parent), Aggregations()).thread_count = int(count)
            latest[int(max_stream)] = str(parent)
    if latest:
        lcond, lparams = txn.in_list("stream_ordering", list(latest))
        txn.execute(
            f"SELECT event_id, stream_ordering FROM event_relations WHERE {lcond}",
            lparams,
        )
        for event_id, stream in txn.fetchall():
            out[latest[int(stream)]].thread_latest_id = str(event_id)
    if user_id is not None and latest:
        txn.execute(
            "SELECT DISTINCT relates_to_id FROM event_relations "
            f"WHERE {cond} AND rel_type = ? AND sender = ?",
            (*params, REL_THREAD, user_id),
        )
        for (parent,) in txn.fetchall():
            if parent in out:
                out[str(parent)].thread_participated = True
    _other_aggregations_txn(txn, parents, out)
    return out


def _other_aggregations_txn(
    txn: Txn, parents: dict[str, str], out: dict[str, Aggregations]
) -> None:
    cond, params = txn.in_list("relates_to_id", list(parents))
    txn.execute(
        "SELECT relates_to_id, room_id, rel_type, event_id, sender, type, "
        f"origin_server_ts FROM event_relations WHERE {cond} AND rel_type IN (?, ?) "
        "ORDER BY stream_ordering",
        (*params, REL_REPLACE, REL_REFERENCE),
    )
    for parent, room, rel_type, event_id, sender, etype, ts in txn.fetchall():
        if parents[parent] != room:
            continue
        agg = out.setdefault(str(parent), Aggregations())
        if rel_type == REL_REPLACE:
            agg.edits.append(EditCandidate(str(event_id), str(sender), etype, int(ts)))
        else:
            agg.references.append(str(event_id))


def _threads_txn(
    txn: Txn,
    room_id: str,
    *,
    participant: str | None,
    before_stream: int | None,
    limit: int,
) -> ThreadsPage:
    params: list[Any] = [room_id, REL_THREAD]
    where = "r.room_id = ? AND r.rel_type = ?"
    if participant is not None:
        # Participated: the user started the thread or sent an event into it.
        where += (
            " AND (r.relates_to_id IN (SELECT p.relates_to_id FROM event_relations AS p"
            " WHERE p.room_id = ? AND p.rel_type = ? AND p.sender = ?)"
            " OR r.relates_to_id IN (SELECT e.event_id FROM events AS e"
            " WHERE e.room_id = ? AND e.sender = ?))"
        )
        params += [room_id, REL_THREAD, participant, room_id, participant]
    having = ""
    if before_stream is not None:
        having = " HAVING MAX(r.stream_ordering) < ?"
        params.append(before_stream)
    txn.execute(
        "SELECT r.relates_to_id, MAX(r.stream_ordering) AS latest "
        f"FROM event_relations AS r WHERE {where} GROUP BY r.relates_to_id{having} "
        "ORDER BY latest DESC LIMIT ?",
        (*params, limit + 1),
    )
    rows = txn.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_stream = int(rows[-1][1]) if more and rows else None
    return ThreadsPage([str(r[0]) for r in rows], next_stream)


@dataclass(frozen=True, slots=True)
class ThreadUpdate:
    """One event sent into a thread (an `m.thread` relation)."""

    room_id: str
    thread_id: str
    event_id: str
    stream_ordering: int


def _thread_updates_txn(
    txn: Txn, room_ids: list[str], after: int, upto: int, cap: int
) -> list[ThreadUpdate]:
    cond, params = txn.in_list("room_id", room_ids)
    txn.execute(
        "SELECT room_id, relates_to_id, event_id, stream_ordering FROM event_relations"
        f" WHERE {cond} AND rel_type = ? AND stream_ordering > ?"
        " AND stream_ordering <= ? ORDER BY stream_ordering DESC LIMIT ?",
        (*params, REL_THREAD, after, upto, cap),
    )
    return [
        ThreadUpdate(str(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in txn.fetchall()
    ]


class RelationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_relations(
        self,
        room_id: str,
        parent_id: str,
        *,
        rel_type: str | None,
        event_type: str | None,
        from_stream: int | None,
        to_stream: int | None,
        direction: Direction,
        limit: int,
        recurse: bool,
    ) -> RelationsPage:
        """IDs of events relating to `parent_id` in stream order (`b`: newest first);
        `from_stream` is exclusive, `to_stream` inclusive."""
        return await self._db.run_read_txn(
            "get_relations",
            _relations_txn,
            room_id,
            parent_id,
            rel_type=rel_type,
            event_type=event_type,
            from_stream=from_stream,
            to_stream=to_stream,
            direction=direction,
            limit=limit,
            recurse=recurse,
        )

    async def get_aggregations(
        self, parents: Mapping[str, str], user_id: str | None
    ) -> dict[str, Aggregations]:
        """Aggregations of every parent in `parents` (event ID → room ID) that has
        any, in one transaction (no query per event)."""
        if not parents:
            return {}
        return await self._db.run_read_txn(
            "get_relation_aggregations", _aggregations_txn, dict(parents), user_id
        )

    async def get_threads(
        self,
        room_id: str,
        *,
        participant: str | None,
        before_stream: int | None,
        limit: int,
    ) -> ThreadsPage:
        """Thread roots of `room_id`, latest activity first; only threads
        `participant` took part in when given."""
        return await self._db.run_read_txn(
            "get_threads",
            _threads_txn,
            room_id,
            participant=participant,
            before_stream=before_stream,
            limit=limit,
        )

    async def get_thread_updates(
        self, room_ids: list[str], after: int, upto: int, cap: int
    ) -> list[ThreadUpdate]:
        """Events sent into threads of `room_ids` at stream positions in
        (`after`, `upto`], newest first, at most `cap` of them."""
        if not room_ids:
            return []
        return await self._db.run_read_txn(
            "get_thread_updates", _thread_updates_txn, room_ids, after, upto, cap
        )
