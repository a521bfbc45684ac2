"""Backfilled history: events older than anything we had, fetched over federation.

Backfilled events take *negative* stream positions, allocated downwards from the
smallest position in use: they sit in the room timeline by depth (pagination orders by
depth, then stream position) but never appear to sync as new (sync reads positions
above its `since`). They do not touch the room's forward extremities or current state.

An event we already hold as an outlier (a state or auth event received with a join) is
turned into a timeline event: the outlier's rows are replaced in the same transaction.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence

from ranvier.storage.database import Database
from ranvier.storage.stores.event_rows import EventToPersist, PersistBatch
from ranvier.storage.stores.events_persist import persist_batch_txn
from ranvier.storage.txn import Txn

__all__ = ["BackfillStore"]


def _min_stream_txn(txn: Txn) -> int:
    txn.execute("SELECT MIN(stream_ordering) FROM events")
    row = txn.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _persist_backfilled_txn(
    txn: Txn, room_id: str, items: Sequence[EventToPersist]
) -> list[str]:
    """Insert `items`, replacing outlier copies; returns the replaced outliers' IDs."""
    ids = [i.event.event_id for i in items]
    cond, params = txn.in_list("event_id", ids)
    txn.execute(f"SELECT event_id, outlier FROM events WHERE {cond}", params)
    existing = {str(r[0]): bool(r[1]) for r in txn.fetchall()}
    outliers = [e for e, is_outlier in existing.items() if is_outlier]
    if outliers:
        for table in ("events", "event_edges", "event_auth", "redactions"):
            cond, params = txn.in_list("event_id", outliers)
            txn.execute(f"DELETE FROM {table} WHERE {cond}", params)
    fresh = [
        i
        for i in items
        if i.event.event_id not in existing or existing[i.event.event_id]
    ]
    if fresh:
        persist_batch_txn(txn, PersistBatch(room_id=room_id, events=fresh))
    return outliers


def _backward_extremities_txn(txn: Txn, room_id: str, limit: int) -> list[str]:
    txn.execute(
        "SELECT g.prev_event_id, MIN(e.depth) AS d FROM event_edges AS g "
        "JOIN events AS e ON e.event_id = g.event_id "
        "WHERE e.room_id = ? AND e.outlier = FALSE AND e.rejected_reason IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM events AS p WHERE p.event_id = g.prev_event_id "
        "AND p.outlier = FALSE) "
        "GROUP BY g.prev_event_id ORDER BY d ASC, g.prev_event_id LIMIT ?",
        (room_id, limit),
    )
    return [str(r[0]) for r in txn.fetchall()]


class BackfillStore:
    def __init__(self, db: Database, lowest_position: int) -> None:
        self._db = db
        self._positions = itertools.count(min(lowest_position, 0) - 1, -1)

    @classmethod
    async def open(cls, db: Database) -> BackfillStore:
        return cls(db, await db.run_read_txn("events_min_stream", _min_stream_txn))

    def allocate_position(self) -> int:
        """The next (negative, decreasing) stream position for a backfilled event."""
        return next(self._positions)

    async def get_backward_extremities(self, room_id: str, limit: int = 5) -> list[str]:
        """Prev events of the room's timeline events that we do not have in the
        timeline (oldest gaps first): where backfilling continues."""
        return await self._db.run_read_txn(
            "get_backward_extremities", _backward_extremities_txn, room_id, limit
        )

    async def persist_backfilled(
        self, room_id: str, items: Sequence[EventToPersist]
    ) -> Collection[str]:
        """Persist backfilled events (one transaction); returns the IDs of outliers
        that became timeline events (the caller invalidates cached copies)."""
        if not items:
            return []
        return await self._db.run_txn(
            "persist_backfilled", _persist_backfilled_txn, room_id, items
        )
