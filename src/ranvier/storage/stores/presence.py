"""Presence: one row per user, one stream of the sync token.

Only changes that other users can see take a new stream position (state, status message,
`currently_active`); the service decides what counts as a change and calls
`set_presence` only then, so an active client syncing every few seconds does not write.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from ranvier.storage.database import Database
from ranvier.storage.stream_ids import StreamIdGenerator
from ranvier.storage.txn import Txn


@dataclass(frozen=True, slots=True)
class PresenceRow:
    user_id: str
    state: str
    status_msg: str | None
    last_active_ts: int
    currently_active: bool
    stream_id: int


_COLUMNS = "user_id, state, status_msg, last_active_ts, currently_active, stream_id"


def _row(row: tuple[Any, ...]) -> PresenceRow:
    user_id, state, status_msg, last_active_ts, currently_active, stream_id = row
    return PresenceRow(
        user_id=user_id,
        state=state,
        status_msg=status_msg,
        last_active_ts=int(last_active_ts),
        currently_active=bool(currently_active),
        stream_id=int(stream_id),
    )


class PresenceStore:
    def __init__(self, db: Database, stream_ids: StreamIdGenerator) -> None:
        self._db = db
        self._ids = stream_ids

    @classmethod
    async def open(cls, db: Database) -> PresenceStore:
        current = await db.run_read_txn("presence_max_stream_id", _max_stream_id_txn)
        return cls(db, StreamIdGenerator(current))

    def get_current_position(self) -> int:
        return self._ids.get_current_token()

    async def set_presence(
        self,
        user_id: str,
        *,
        state: str,
        status_msg: str | None,
        last_active_ts: int,
        currently_active: bool,
    ) -> PresenceRow:
        with self._ids.allocating() as stream_id:
            row = PresenceRow(
                user_id, state, status_msg, last_active_ts, currently_active, stream_id
            )
            await self._db.run_txn("set_presence", _upsert_txn, row)
        return row

    async def get_presence(self, user_ids: Collection[str]) -> dict[str, PresenceRow]:
        if not user_ids:
            return {}
        return await self._db.run_read_txn(
            "get_presence", _get_presence_txn, list(user_ids)
        )

    async def get_presence_changes(self, from_id: int, to_id: int) -> list[PresenceRow]:
        """Every user's presence written with from_id < stream_id <= to_id; the caller
        keeps the users it may see (sharing a room)."""
        if to_id <= from_id:
            return []
        return await self._db.run_read_txn(
            "get_presence_changes", _get_changes_txn, from_id, to_id
        )


def _max_stream_id_txn(txn: Txn) -> int:
    txn.execute("SELECT MAX(stream_id) FROM presence")
    row = txn.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _upsert_txn(txn: Txn, row: PresenceRow) -> None:
    txn.execute(
        "INSERT INTO presence (user_id, state, status_msg, last_active_ts,"
        " currently_active, stream_id) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET state = excluded.state,"
        " status_msg = excluded.status_msg, last_active_ts = excluded.last_active_ts,"
        " currently_active = excluded.currently_active, stream_id = excluded.stream_id",
        (
            row.user_id,
            row.state,
            row.status_msg,
            row.last_active_ts,
            row.currently_active,
            row.stream_id,
        ),
    )


def _get_presence_txn(txn: Txn, user_ids: list[str]) -> dict[str, PresenceRow]:
    cond, params = txn.in_list("user_id", user_ids)
    txn.execute(f"SELECT {_COLUMNS} FROM presence WHERE {cond}", params)
    return {r.user_id: r for r in map(_row, txn.fetchall())}


def _get_changes_txn(txn: Txn, from_id: int, to_id: int) -> list[PresenceRow]:
    txn.execute(
        f"SELECT {_COLUMNS} FROM presence"
        " WHERE stream_id > ? AND stream_id <= ? ORDER BY stream_id",
        (from_id, to_id),
    )
    return [_row(r) for r in txn.fetchall()]
