"""Application-service delivery state (schema 0019): each service's position in the
events stream and its persisted, not yet acknowledged transactions."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from ranvier.storage.database import Database
from ranvier.storage.stores.event_rows import (
    EVENT_COLUMNS,
    StoredEvent,
    row_to_stored_event,
)
from ranvier.storage.txn import Txn

_SERVABLE = "e.outlier = FALSE AND e.rejected_reason IS NULL AND e.soft_failed = FALSE"


@dataclass(frozen=True, slots=True)
class PendingTxn:
    txn_id: int
    body: str


class AppServiceStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_or_init_position(self, as_id: str, current: int) -> int:
        """The service's stream position; a service seen for the first time starts at
        `current` (it is sent what happens from now on, not the server's history)."""
        return await self._db.run_txn(
            "appservice_get_or_init_position", _get_or_init_position_txn, as_id, current
        )

    async def get_oldest_txn(self, as_id: str) -> PendingTxn | None:
        return await self._db.run_read_txn(
            "appservice_get_oldest_txn", _get_oldest_txn_txn, as_id
        )

    async def count_txns(self, as_id: str) -> int:
        return await self._db.run_read_txn(
            "appservice_count_txns", _count_txns_txn, as_id
        )

    async def create_txn(self, as_id: str, body: str, position: int) -> int:
        """Persist a transaction and move the position past its events, atomically."""
        return await self._db.run_txn(
            "appservice_create_txn", _create_txn_txn, as_id, body, position
        )

    async def set_position(self, as_id: str, position: int) -> None:
        await self._db.run_txn(
            "appservice_set_position", _set_position_txn, as_id, position
        )

    async def delete_txn(self, as_id: str, txn_id: int) -> None:
        await self._db.run_txn("appservice_delete_txn", _delete_txn_txn, as_id, txn_id)

    async def get_events_after(
        self, from_pos: int, to_pos: int, limit: int
    ) -> list[StoredEvent]:
        """Servable events of every room with `from_pos < stream <= to_pos`, oldest
        first, at most `limit`."""
        return await self._db.run_read_txn(
            "appservice_get_events_after",
            _get_events_after_txn,
            from_pos,
            to_pos,
            limit,
        )

    async def get_joined_members(
        self, room_ids: Collection[str]
    ) -> dict[str, set[str]]:
        if not room_ids:
            return {}
        return await self._db.run_read_txn(
            "appservice_get_joined_members", _joined_members_txn, list(room_ids)
        )


def _get_or_init_position_txn(txn: Txn, as_id: str, current: int) -> int:
    txn.execute(
        "SELECT stream_ordering FROM appservice_state WHERE as_id = ?", (as_id,)
    )
    row = txn.fetchone()
    if row is not None:
        return int(row[0])
    txn.execute(
        "INSERT INTO appservice_state (as_id, stream_ordering, last_txn_id)"
        " VALUES (?, ?, 0)",
        (as_id, current),
    )
    return current


def _get_oldest_txn_txn(txn: Txn, as_id: str) -> PendingTxn | None:
    txn.execute(
        "SELECT txn_id, body FROM appservice_txns WHERE as_id = ?"
        " ORDER BY txn_id LIMIT 1",
        (as_id,),
    )
    row = txn.fetchone()
    return None if row is None else PendingTxn(int(row[0]), str(row[1]))


def _count_txns_txn(txn: Txn, as_id: str) -> int:
    txn.execute("SELECT COUNT(*) FROM appservice_txns WHERE as_id = ?", (as_id,))
    row = txn.fetchone()
    return 0 if row is None else int(row[0])


def _create_txn_txn(txn: Txn, as_id: str, body: str, position: int) -> int:
    txn.execute("SELECT last_txn_id FROM appservice_state WHERE as_id = ?", (as_id,))
    row = txn.fetchone()
    if row is None:
        raise LookupError(f"no delivery state for application service {as_id}")
    txn_id = int(row[0]) + 1
    txn.execute(
        "INSERT INTO appservice_txns (as_id, txn_id, body) VALUES (?, ?, ?)",
        (as_id, txn_id, body),
    )
    txn.execute(
        "UPDATE appservice_state SET stream_ordering = ?, last_txn_id = ?"
        " WHERE as_id = ?",
        (position, txn_id, as_id),
    )
    return txn_id


def _set_position_txn(txn: Txn, as_id: str, position: int) -> None:
    txn.execute(
        "UPDATE appservice_state SET stream_ordering = ? WHERE as_id = ?",
        (position, as_id),
    )


def _delete_txn_txn(txn: Txn, as_id: str, txn_id: int) -> None:
    txn.execute(
        "DELETE FROM appservice_txns WHERE as_id = ? AND txn_id = ?", (as_id, txn_id)
    )


def _get_events_after_txn(
    txn: Txn, from_pos: int, to_pos: int, limit: int
) -> list[StoredEvent]:
    txn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events AS e WHERE e.stream_ordering > ?"
        f" AND e.stream_ordering <= ? AND {_SERVABLE}"
        " ORDER BY e.stream_ordering LIMIT ?",
        (from_pos, to_pos, limit),
    )
    return [row_to_stored_event(r) for r in txn.fetchall()]


def _joined_members_txn(txn: Txn, room_ids: list[str]) -> dict[str, set[str]]:
    cond, params = txn.in_list("m.room_id", room_ids)
    txn.execute(
        "SELECT m.room_id, m.user_id FROM current_memberships AS m"
        f" WHERE {cond} AND m.membership = 'join'",
        params,
    )
    out: dict[str, set[str]] = {}
    for room_id, user_id in txn.fetchall():
        out.setdefault(str(room_id), set()).add(str(user_id))
    return out
