"""Read receipts (`m.read`, `m.read.private`), one stream of the sync token.

One row per (room, receipt type, user, thread): a newer receipt replaces the older one and
takes a new stream position, so "receipts since X" is a range scan on `stream_id`.
Receipts never move backwards: a receipt for an event older than the current one is
ignored (Synapse behaves the same), which keeps unread counts monotonic.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from ranvier.core.json import decode_json, encode_json
from ranvier.storage.database import Database
from ranvier.storage.stream_ids import StreamIdGenerator
from ranvier.storage.txn import Txn

JsonDict = dict[str, Any]

# '' in the thread_id column is the unthreaded receipt.
_UNTHREADED = ""


@dataclass(frozen=True, slots=True)
class Receipt:
    room_id: str
    receipt_type: str
    user_id: str
    thread_id: str | None
    event_id: str
    data: JsonDict
    stream_id: int


def _row_to_receipt(row: tuple[Any, ...]) -> Receipt:
    room_id, rtype, user_id, thread_id, event_id, data, stream_id = row
    parsed = decode_json(data)
    return Receipt(
        room_id=room_id,
        receipt_type=rtype,
        user_id=user_id,
        thread_id=thread_id or None,
        event_id=event_id,
        data=parsed if isinstance(parsed, dict) else {},
        stream_id=int(stream_id),
    )


_COLUMNS = "room_id, receipt_type, user_id, thread_id, event_id, data, stream_id"


class ReceiptStore:
    def __init__(self, db: Database, stream_ids: StreamIdGenerator) -> None:
        self._db = db
        self._ids = stream_ids

    @classmethod
    async def open(cls, db: Database) -> ReceiptStore:
        current = await db.run_read_txn("receipts_max_stream_id", _max_stream_id_txn)
        return cls(db, StreamIdGenerator(current))

    def get_current_position(self) -> int:
        return self._ids.get_current_token()

    async def upsert_receipt(
        self,
        *,
        room_id: str,
        receipt_type: str,
        user_id: str,
        thread_id: str | None,
        event_id: str,
        event_stream_ordering: int,
        data: JsonDict,
    ) -> int | None:
        """Store a receipt; its stream position, or None if it was not newer."""
        with self._ids.allocating() as stream_id:
            stored = await self._db.run_txn(
                "upsert_receipt",
                _upsert_receipt_txn,
                (room_id, receipt_type, user_id, thread_id or _UNTHREADED),
                event_id,
                event_stream_ordering,
                encode_json(data).decode(),
                stream_id,
            )
        return stream_id if stored else None

    async def get_receipts_for_rooms(
        self, room_ids: Collection[str], from_id: int, to_id: int
    ) -> list[Receipt]:
        """Receipts in `room_ids` with from_id < stream_id <= to_id (all types)."""
        if not room_ids or to_id <= from_id:
            return []
        return await self._db.run_read_txn(
            "get_receipts_for_rooms", _get_receipts_txn, list(room_ids), from_id, to_id
        )

    async def get_read_positions(
        self, user_id: str, room_ids: Collection[str]
    ) -> dict[str, int]:
        """The stream ordering of the user's newest read receipt (public or private,
        any thread) per room; rooms without one are absent."""
        if not room_ids:
            return {}
        return await self._db.run_read_txn(
            "get_read_positions", _get_read_positions_txn, user_id, list(room_ids)
        )

    async def get_receipt(
        self,
        room_id: str,
        receipt_type: str,
        user_id: str,
        thread_id: str | None = None,
    ) -> Receipt | None:
        return await self._db.run_read_txn(
            "get_receipt",
            _get_receipt_txn,
            (room_id, receipt_type, user_id, thread_id or _UNTHREADED),
        )


def _max_stream_id_txn(txn: Txn) -> int:
    txn.execute("SELECT MAX(stream_id) FROM receipts")
    row = txn.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _upsert_receipt_txn(
    txn: Txn,
    key: tuple[str, str, str, str],
    event_id: str,
    event_stream_ordering: int,
    data: str,
    stream_id: int,
) -> bool:
    txn.execute(
        "SELECT event_stream_ordering FROM receipts"
        " WHERE room_id = ? AND receipt_type = ? AND user_id = ? AND thread_id = ?"
        + txn.engine.for_update,
        key,
    )
    row = txn.fetchone()
    if row is not None:
        if int(row[0]) >= event_stream_ordering:
            return False
        txn.execute(
            "UPDATE receipts SET event_id = ?, event_stream_ordering = ?, data = ?,"
            " stream_id = ?"
            " WHERE room_id = ? AND receipt_type = ? AND user_id = ? AND thread_id = ?",
            (event_id, event_stream_ordering, data, stream_id, *key),
        )
        return True
    txn.execute(
        "INSERT INTO receipts (room_id, receipt_type, user_id, thread_id, event_id,"
        " event_stream_ordering, data, stream_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (*key, event_id, event_stream_ordering, data, stream_id),
    )
    return txn.rowcount > 0


def _get_receipts_txn(
    txn: Txn, room_ids: list[str], from_id: int, to_id: int
) -> list[Receipt]:
    cond, params = txn.in_list("room_id", room_ids)
    txn.execute(
        f"SELECT {_COLUMNS} FROM receipts"
        f" WHERE {cond} AND stream_id > ? AND stream_id <= ? ORDER BY stream_id",
        (*params, from_id, to_id),
    )
    return [_row_to_receipt(r) for r in txn.fetchall()]


def _get_read_positions_txn(
    txn: Txn, user_id: str, room_ids: list[str]
) -> dict[str, int]:
    cond, params = txn.in_list("room_id", room_ids)
    txn.execute(
        "SELECT room_id, MAX(event_stream_ordering) FROM receipts"
        f" WHERE user_id = ? AND {cond}"
        " AND receipt_type IN ('m.read', 'm.read.private') GROUP BY room_id",
        (user_id, *params),
    )
    return {r[0]: int(r[1]) for r in txn.fetchall()}


def _get_receipt_txn(txn: Txn, key: tuple[str, str, str, str]) -> Receipt | None:
    txn.execute(
        f"SELECT {_COLUMNS} FROM receipts"
        " WHERE room_id = ? AND receipt_type = ? AND user_id = ? AND thread_id = ?",
        key,
    )
    row = txn.fetchone()
    return _row_to_receipt(row) if row else None
