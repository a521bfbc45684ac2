"""Events: persistence (one transaction per ingest step), fetching, the events stream and
room timeline pagination.

Events are stored once (`events.json` is the PDU as signed). Reads go through an LRU
cache of `StoredEvent`s; the rows rewritten in place (`redacted_by` set, an outlier
upgraded to a timeline event) are invalidated after commit.

Stream positions come from the store's `StreamIdGenerator`: callers allocate one per
event (`allocate_stream_orderings`), persist, and complete them whether or not the
transaction committed. `get_current_position()` is the highest position readers may use.

Sync seams (see docs/architecture.md): `get_room_events_between`,
`get_rooms_with_events_between`, `get_current_position`, `get_events`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ranvier.core.filters import RoomEventFilter
from ranvier.core.room_tokens import RoomToken
from ranvier.storage.database import Database
from ranvier.storage.stores.event_rows import (
    EVENT_COLUMNS,
    PersistBatch,
    StoredEvent,
    row_to_stored_event,
)
from ranvier.storage.stores.events_persist import persist_batch_txn
from ranvier.storage.stream_ids import StreamIdGenerator
from ranvier.storage.txn import Txn
from ranvier.util.lru import LruCache

__all__ = ["EventStore", "TimelinePage"]

Direction = Literal["b", "f"]
MembershipListener = Callable[[Collection[str]], object]

# Servable timeline events: not outliers, not rejected, not soft-failed.
_SERVABLE = "e.outlier = FALSE AND e.rejected_reason IS NULL AND e.soft_failed = FALSE"


@dataclass(frozen=True, slots=True)
class TimelinePage:
    events: list[StoredEvent]
    # Where the next page starts (the position after the last scanned row), or None when
    # the scan reached the end of the room / the `to` bound.
    next_token: RoomToken | None


def _like_pattern(glob: str) -> str:
    escaped = re.sub(r"([\\%_])", r"\\\1", glob)
    return escaped.replace("*", "%")


def filter_clause(flt: RoomEventFilter | None) -> tuple[str, list[Any]]:
    """SQL narrowing for a timeline filter (" AND ..." or ""). A superset: callers
    re-check with `flt.matches` (SQLite's LIKE ignores ASCII case; PostgreSQL's does
    not). Shared by /messages and /sync."""
    if flt is None:
        return "", []
    clauses: list[str] = []
    params: list[Any] = []
    if flt.senders is not None:
        clauses.append(
            f"e.sender IN ({', '.join('?' * len(flt.senders))})"
            if flt.senders
            else "1 = 0"
        )
        params.extend(sorted(flt.senders))
    for sender in sorted(flt.not_senders):
        clauses.append("e.sender <> ?")
        params.append(sender)
    if flt.types is not None:
        if not flt.types:
            clauses.append("1 = 0")
        else:
            ors = []
            for t in flt.types:
                ors.append("e.type LIKE ? ESCAPE '\\'" if "*" in t else "e.type = ?")
                params.append(_like_pattern(t) if "*" in t else t)
            clauses.append("(" + " OR ".join(ors) + ")")
    for t in flt.not_types:
        if "*" not in t:
            clauses.append("e.type <> ?")
            params.append(t)
    if flt.contains_url is not None:
        clauses.append("e.contains_url = ?")
        params.append(flt.contains_url)
    return "".join(" AND " + c for c in clauses), params


def _get_events_txn(txn: Txn, event_ids: Collection[str]) -> list[StoredEvent]:
    cond, params = txn.in_list("e.event_id", event_ids)
    txn.execute(f"SELECT {EVENT_COLUMNS} FROM events AS e WHERE {cond}", params)
    return [row_to_stored_event(r) for r in txn.fetchall()]


def _max_stream_txn(txn: Txn) -> int:
    txn.execute("SELECT MAX(stream_ordering) FROM events")
    row = txn.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


class EventStore:
    def __init__(
        self, db: Database, stream_ids: StreamIdGenerator, *, cache_size: int = 20_000
    ) -> None:
        self._db = db
        self._ids = stream_ids
        self._cache: LruCache[str, StoredEvent] = LruCache(cache_size)
        self._membership_listeners: list[MembershipListener] = []

    @classmethod
    async def open(cls, db: Database, *, cache_size: int = 20_000) -> EventStore:
        current = await db.run_read_txn("events_max_stream", _max_stream_txn)
        return cls(db, StreamIdGenerator(current), cache_size=cache_size)

    # -- stream positions ---------------------------------------------------------------
    def get_current_position(self) -> int:
        """The events stream position readers may read up to (everything at or below it
        is committed)."""
        return self._ids.get_current_token()

    @property
    def stream_ids(self) -> StreamIdGenerator:
        return self._ids

    # -- writing -------------------------------------------------------------------------
    def add_membership_listener(self, listener: MembershipListener) -> None:
        """Call `listener(user_ids)` after each commit that changed the current
        membership of those users in some room (for caches of memberships)."""
        self._membership_listeners.append(listener)

    async def persist_batch(self, batch: PersistBatch) -> None:
        """Persist one ingest step in one transaction. Stream orderings in the batch must
        have been allocated from `stream_ids`; the caller completes them afterwards."""
        await self._db.run_txn("persist_events", self._persist_batch_txn, batch)

    def _persist_batch_txn(self, txn: Txn, batch: PersistBatch) -> None:
        redacted = persist_batch_txn(txn, batch)
        # Rows rewritten in place: redaction status, and de-outliered events (their
        # cached copies still say outlier, at the old stream position).
        rewritten = redacted + [
            i.event.event_id for i in batch.events if i.upgrades_outlier
        ]
        # After commit, even if the caller was cancelled meanwhile.
        if rewritten:
            txn.call_after(self._cache.invalidate, rewritten)
        users = {m.user_id for d in batch.current_state for m in d.memberships}
        if users:
            for listener in self._membership_listeners:
                txn.call_after(listener, users)

    # -- fetching ------------------------------------------------------------------------
    async def get_events(self, event_ids: Iterable[str]) -> dict[str, StoredEvent]:
        """The stored events among `event_ids` (outliers, rejected and soft-failed
        included: check `StoredEvent.is_servable` before serving one)."""
        found: dict[str, StoredEvent] = {}
        missing: list[str] = []
        for eid in dict.fromkeys(event_ids):
            cached = self._cache.get(eid)
            if cached is not None:
                found[eid] = cached
            else:
                missing.append(eid)
        if missing:
            generation = self._cache.generation()
            rows = await self._db.run_read_txn("get_events", _get_events_txn, missing)
            for stored in rows:
                found[stored.event_id] = stored
                self._cache.set_if_unchanged(stored.event_id, stored, generation)
        return found

    def forget_cached(self, event_ids: Iterable[str]) -> None:
        """Drop cached copies of events rewritten outside `persist_batch` (outliers
        turned into timeline events by backfill)."""
        self._cache.invalidate(list(event_ids))

    async def get_event(self, event_id: str) -> StoredEvent | None:
        return (await self.get_events([event_id])).get(event_id)

    async def get_event_id_for_txn(
        self, room_id: str, user_id: str, device_id: str, txn_id: str
    ) -> str | None:
        def txn_fn(txn: Txn) -> str | None:
            txn.execute(
                "SELECT event_id FROM events WHERE room_id = ? AND sender = ? "
                "AND device_id = ? AND txn_id = ?",
                (room_id, user_id, device_id, txn_id),
            )
            row = txn.fetchone()
            return str(row[0]) if row else None

        return await self._db.run_read_txn("get_event_id_for_txn", txn_fn)

    async def get_forward_extremities(self, room_id: str) -> list[tuple[str, int]]:
        """The room's forward extremities as (event_id, depth), deepest first."""

        def txn_fn(txn: Txn) -> list[tuple[str, int]]:
            txn.execute(
                "SELECT f.event_id, e.depth FROM event_forward_extremities AS f "
                "JOIN events AS e ON e.event_id = f.event_id WHERE f.room_id = ? "
                "ORDER BY e.depth DESC, e.stream_ordering DESC",
                (room_id,),
            )
            return [(str(r[0]), int(r[1])) for r in txn.fetchall()]

        return await self._db.run_read_txn("get_forward_extremities", txn_fn)

    async def get_auth_chain_ids(self, event_ids: Collection[str]) -> set[str]:
        """Every auth ancestor of `event_ids` (not including themselves)."""

        def txn_fn(txn: Txn) -> set[str]:
            cond, params = txn.in_list("event_id", event_ids)
            txn.execute(
                "WITH RECURSIVE chain(id) AS ("
                f" SELECT auth_id FROM event_auth WHERE {cond}"
                " UNION SELECT a.auth_id FROM event_auth AS a"
                " JOIN chain ON a.event_id = chain.id"
                ") SELECT id FROM chain",
                params,
            )
            return {str(r[0]) for r in txn.fetchall()}

        if not event_ids:
            return set()
        return await self._db.run_read_txn("get_auth_chain_ids", txn_fn)

    async def get_rejected(self, event_ids: Collection[str]) -> set[str]:
        """Those of `event_ids` stored as rejected (without loading the events: a
        room's whole state and auth chain may be asked about)."""

        def txn_fn(txn: Txn) -> set[str]:
            cond, params = txn.in_list("event_id", event_ids)
            txn.execute(
                f"SELECT event_id FROM events WHERE {cond} "
                "AND rejected_reason IS NOT NULL",
                params,
            )
            return {str(r[0]) for r in txn.fetchall()}

        if not event_ids:
            return set()
        return await self._db.run_read_txn("get_rejected", txn_fn)

    async def have_children(self, event_ids: Collection[str]) -> set[str]:
        """Those of `event_ids` that some stored event cites as a prev_event."""

        def txn_fn(txn: Txn) -> set[str]:
            cond, params = txn.in_list("prev_event_id", event_ids)
            txn.execute(
                f"SELECT DISTINCT prev_event_id FROM event_edges WHERE {cond}",
                params,
            )
            return {str(r[0]) for r in txn.fetchall()}

        if not event_ids:
            return set()
        return await self._db.run_read_txn("have_children", txn_fn)

    # -- the events stream (sync) -----------------------------------------------------------
    async def get_room_events_between(
        self, room_id: str, from_pos: int, to_pos: int, limit: int
    ) -> tuple[list[StoredEvent], bool]:
        """The newest `limit` servable events of `room_id` with `from_pos < stream <=
        to_pos`, oldest first, and whether older ones in the range were left out."""

        def txn_fn(txn: Txn) -> list[StoredEvent]:
            txn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events AS e WHERE e.room_id = ? "
                f"AND e.stream_ordering > ? AND e.stream_ordering <= ? AND {_SERVABLE} "
                "ORDER BY e.stream_ordering DESC LIMIT ?",
                (room_id, from_pos, to_pos, limit + 1),
            )
            return [row_to_stored_event(r) for r in txn.fetchall()]

        rows = await self._db.run_read_txn("get_room_events_between", txn_fn)
        limited = len(rows) > limit
        rows = rows[:limit]
        rows.reverse()
        return rows, limited

    async def get_rooms_with_events_between(
        self, room_ids: Collection[str], from_pos: int, to_pos: int
    ) -> set[str]:
        """Those of `room_ids` with a servable event in `(from_pos, to_pos]`."""

        def txn_fn(txn: Txn) -> set[str]:
            cond, params = txn.in_list("e.room_id", room_ids)
            txn.execute(
                f"SELECT DISTINCT e.room_id FROM events AS e WHERE {cond} "
                f"AND e.stream_ordering > ? AND e.stream_ordering <= ? AND {_SERVABLE}",
                [*params, from_pos, to_pos],
            )
            return {str(r[0]) for r in txn.fetchall()}

        if not room_ids or from_pos >= to_pos:
            return set()
        return await self._db.run_read_txn("get_rooms_with_events_between", txn_fn)

    # -- timeline pagination ---------------------------------------------------------------
    async def get_topological_token(self, room_id: str, stream: int) -> RoomToken:
        """The timeline position just after the room's last event at or before `stream`
        (turns a stream-only token into a topological one)."""

        def txn_fn(txn: Txn) -> RoomToken:
            txn.execute(
                "SELECT e.depth, e.stream_ordering FROM events AS e WHERE e.room_id = ? "
                f"AND e.stream_ordering <= ? AND {_SERVABLE} "
                "ORDER BY e.stream_ordering DESC LIMIT 1",
                (room_id, stream),
            )
            row = txn.fetchone()
            if row is None:
                return RoomToken(stream=0, depth=0)
            return RoomToken(stream=int(row[1]), depth=int(row[0]))

        return await self._db.run_read_txn("get_topological_token", txn_fn)

    async def paginate_room(
        self,
        room_id: str,
        from_token: RoomToken,
        to_token: RoomToken | None,
        direction: Direction,
        limit: int,
        flt: RoomEventFilter | None = None,
        *,
        max_stream: int | None = None,
    ) -> TimelinePage:
        """Up to `limit` servable events from `from_token` in direction `direction`.

        Tokens are topological (`depth` set): a token is the gap just after the event at
        (depth, stream). Backwards returns events at or before it, newest first; forwards
        returns events after it, oldest first. `flt` narrows in SQL; callers re-check it.
        """
        assert from_token.depth is not None
        max_stream = self.get_current_position() if max_stream is None else max_stream
        extra, extra_params = filter_clause(flt)

        def txn_fn(txn: Txn) -> TimelinePage:
            return _paginate_txn(
                txn, room_id, from_token, to_token, direction, limit, max_stream,
                extra, extra_params,
            )  # fmt: skip

        return await self._db.run_read_txn("paginate_room", txn_fn)

    async def get_last_event_at(self, room_id: str, stream: int) -> StoredEvent | None:
        """The room's last servable event at or before stream position `stream`."""

        def txn_fn(txn: Txn) -> StoredEvent | None:
            txn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events AS e WHERE e.room_id = ? "
                f"AND e.stream_ordering <= ? AND {_SERVABLE} "
                "ORDER BY e.stream_ordering DESC LIMIT 1",
                (room_id, stream),
            )
            row = txn.fetchone()
            return row_to_stored_event(row) if row else None

        return await self._db.run_read_txn("get_last_event_at", txn_fn)

    async def get_event_position(self, event_id: str) -> RoomToken | None:
        stored = await self.get_event(event_id)
        if stored is None:
            return None
        return RoomToken(stream=stored.stream_ordering, depth=stored.depth)

    async def get_event_id_for_timestamp(
        self, room_id: str, ts: int, direction: Direction
    ) -> str | None:
        """The servable event closest to `ts` at or after it (`f`) / at or before it (`b`)."""
        op, order = (">=", "ASC") if direction == "f" else ("<=", "DESC")

        def txn_fn(txn: Txn) -> str | None:
            txn.execute(
                "SELECT e.event_id FROM events AS e WHERE e.room_id = ? "
                f"AND e.origin_server_ts {op} ? AND {_SERVABLE} "
                f"ORDER BY e.origin_server_ts {order}, e.stream_ordering {order} LIMIT 1",
                (room_id, ts),
            )
            row = txn.fetchone()
            return str(row[0]) if row else None

        return await self._db.run_read_txn("get_event_for_timestamp", txn_fn)


def _position_clause(op: str) -> str:
    """`(depth, stream) <op> (?, ?)` spelled without row values; takes 3 parameters."""
    strict = op[0]
    return f"(e.depth {strict} ? OR (e.depth = ? AND e.stream_ordering {op} ?))"


def _paginate_txn(
    txn: Txn,
    room_id: str,
    from_token: RoomToken,
    to_token: RoomToken | None,
    direction: Direction,
    limit: int,
    max_stream: int,
    extra: str,
    extra_params: Sequence[Any],
) -> TimelinePage:
    if limit <= 0:
        # Nothing asked for: stay where we are (the page below would be empty and have
        # no last event to continue from).
        return TimelinePage([], from_token)
    if direction == "b":
        start_op, end_op, order = "<=", ">", "DESC"
    else:
        start_op, end_op, order = ">", "<=", "ASC"
    fd = from_token.depth
    sql = (
        f"SELECT {EVENT_COLUMNS} FROM events AS e WHERE e.room_id = ? AND {_SERVABLE} "
        f"AND e.stream_ordering <= ? AND {_position_clause(start_op)}"
    )
    params: list[Any] = [room_id, max_stream, fd, fd, from_token.stream]
    if to_token is not None and to_token.depth is not None:
        sql += f" AND {_position_clause(end_op)}"
        params += [to_token.depth, to_token.depth, to_token.stream]
    sql += f"{extra} ORDER BY e.depth {order}, e.stream_ordering {order} LIMIT ?"
    params += [*extra_params, limit]
    txn.execute(sql, params)
    events = [row_to_stored_event(r) for r in txn.fetchall()]
    if len(events) < limit:
        return TimelinePage(events, None)
    last = events[-1]
    if direction == "b":
        token = RoomToken(stream=last.stream_ordering - 1, depth=last.depth)
    else:
        token = RoomToken(stream=last.stream_ordering, depth=last.depth)
    return TimelinePage(events, token)
