"""Sync filters uploaded with `POST /user/{userId}/filter`.

Filter IDs count per user from 0. Uploading JSON identical to an existing filter of the
same user returns that filter's ID: clients re-upload their filter on every start, and
the table would otherwise grow without bound.
"""

from __future__ import annotations

from typing import Any

from ranvier.core.json import decode_json, encode_canonical_json
from ranvier.storage.database import Database
from ranvier.storage.txn import Txn

JsonDict = dict[str, Any]

_MAX_ATTEMPTS = 5


class FilterStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_filter(self, user_id: str, filter_json: JsonDict) -> int:
        # Canonical form, so that key order does not defeat the de-duplication.
        text = encode_canonical_json(filter_json, strict=False).decode()
        return await self._db.run_txn("add_filter", _add_filter_txn, user_id, text)

    async def get_filter(self, user_id: str, filter_id: int) -> JsonDict | None:
        return await self._db.run_read_txn(
            "get_filter", _get_filter_txn, user_id, filter_id
        )


def _add_filter_txn(txn: Txn, user_id: str, text: str) -> int:
    # Two uploads by one user can race on PostgreSQL: the loser of the insert sees the
    # winner's committed row on its next statement and takes the following ID.
    for _ in range(_MAX_ATTEMPTS):
        txn.execute(
            "SELECT filter_id FROM user_filters WHERE user_id = ? AND filter_json = ?",
            (user_id, text),
        )
        row = txn.fetchone()
        if row is not None:
            return int(row[0])
        txn.execute(
            "SELECT COALESCE(MAX(filter_id), -1) + 1 FROM user_filters WHERE user_id = ?",
            (user_id,),
        )
        next_row = txn.fetchone()
        filter_id = int(next_row[0]) if next_row else 0
        txn.execute(
            "INSERT INTO user_filters (user_id, filter_id, filter_json) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (user_id, filter_id, text),
        )
        if txn.rowcount > 0:
            return filter_id
    raise RuntimeError(f"could not allocate a filter ID for {user_id}")


def _get_filter_txn(txn: Txn, user_id: str, filter_id: int) -> JsonDict | None:
    txn.execute(
        "SELECT filter_json FROM user_filters WHERE user_id = ? AND filter_id = ?",
        (user_id, filter_id),
    )
    row = txn.fetchone()
    if row is None:
        return None
    value = decode_json(row[0])
    return value if isinstance(value, dict) else None
