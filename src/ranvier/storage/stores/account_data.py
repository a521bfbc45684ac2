"""Account data, global and per room (room tags are the `m.tag` room entry).

One stream of the sync token: every write takes a new position, so "what changed since X"
is an index range scan on (user_id, stream_id).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ranvier.core.json import decode_json, encode_json
from ranvier.storage.database import Database
from ranvier.storage.stream_ids import StreamIdGenerator
from ranvier.storage.txn import Txn

JsonDict = dict[str, Any]

# '' in the room_id column is global account data.
_GLOBAL = ""


@dataclass(slots=True)
class AccountDataSnapshot:
    """Account data of one user: global by type, and per room by type."""

    global_data: dict[str, JsonDict] = field(default_factory=dict)
    room_data: dict[str, dict[str, JsonDict]] = field(default_factory=dict)


def _decode_obj(text: str) -> JsonDict:
    value = decode_json(text)
    return value if isinstance(value, dict) else {}


class AccountDataStore:
    def __init__(self, db: Database, stream_ids: StreamIdGenerator) -> None:
        self._db = db
        self._ids = stream_ids

    @classmethod
    async def open(cls, db: Database) -> AccountDataStore:
        current = await db.run_read_txn(
            "account_data_max_stream_id", _max_stream_id_txn
        )
        return cls(db, StreamIdGenerator(current))

    def get_current_position(self) -> int:
        return self._ids.get_current_token()

    async def set_account_data(
        self, user_id: str, room_id: str | None, data_type: str, content: JsonDict
    ) -> int:
        """Replace one entry; returns its new stream position."""
        text = encode_json(content).decode()
        with self._ids.allocating() as stream_id:
            await self._db.run_txn(
                "set_account_data",
                _upsert_txn,
                user_id,
                room_id or _GLOBAL,
                data_type,
                text,
                stream_id,
            )
        return stream_id

    async def update_account_data(
        self,
        user_id: str,
        room_id: str | None,
        data_type: str,
        update: Callable[[JsonDict], JsonDict | None],
    ) -> int | None:
        """Read-modify-write one entry in one transaction (tags). `update` gets the
        current content ({} if none) and returns the new one, or None for no change."""
        with self._ids.allocating() as stream_id:
            changed = await self._db.run_txn(
                "update_account_data",
                _update_txn,
                user_id,
                room_id or _GLOBAL,
                data_type,
                update,
                stream_id,
            )
        return stream_id if changed else None

    async def get_account_data(
        self, user_id: str, room_id: str | None, data_type: str
    ) -> JsonDict | None:
        return await self._db.run_read_txn(
            "get_account_data", _get_one_txn, user_id, room_id or _GLOBAL, data_type
        )

    async def delete_account_data_for_user(self, user_id: str) -> list[str]:
        """Every entry of `user_id`, global and per room (erasure); the global
        types that were deleted."""
        return await self._db.run_txn(
            "delete_account_data_for_user", _delete_for_user_txn, user_id
        )

    async def get_account_data_since(
        self, user_id: str, from_id: int, to_id: int
    ) -> AccountDataSnapshot:
        """Entries written with from_id < stream_id <= to_id (from_id 0: everything)."""
        if to_id <= from_id:
            return AccountDataSnapshot()
        return await self._db.run_read_txn(
            "get_account_data_since", _get_since_txn, user_id, from_id, to_id
        )


def _max_stream_id_txn(txn: Txn) -> int:
    txn.execute("SELECT MAX(stream_id) FROM account_data")
    row = txn.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _upsert_txn(
    txn: Txn, user_id: str, room_id: str, data_type: str, content: str, stream_id: int
) -> None:
    txn.execute(
        "INSERT INTO account_data (user_id, room_id, data_type, content, stream_id)"
        " VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, room_id, data_type)"
        " DO UPDATE SET content = excluded.content, stream_id = excluded.stream_id",
        (user_id, room_id, data_type, content, stream_id),
    )


def _get_one_txn(
    txn: Txn, user_id: str, room_id: str, data_type: str
) -> JsonDict | None:
    txn.execute(
        "SELECT content FROM account_data"
        " WHERE user_id = ? AND room_id = ? AND data_type = ?",
        (user_id, room_id, data_type),
    )
    row = txn.fetchone()
    return _decode_obj(row[0]) if row else None


def _update_txn(
    txn: Txn,
    user_id: str,
    room_id: str,
    data_type: str,
    update: Callable[[JsonDict], JsonDict | None],
    stream_id: int,
) -> bool:
    txn.execute(
        "SELECT content FROM account_data"
        " WHERE user_id = ? AND room_id = ? AND data_type = ?" + txn.engine.for_update,
        (user_id, room_id, data_type),
    )
    row = txn.fetchone()
    new = update(_decode_obj(row[0]) if row else {})
    if new is None:
        return False
    _upsert_txn(txn, user_id, room_id, data_type, encode_json(new).decode(), stream_id)
    return True


def _get_since_txn(
    txn: Txn, user_id: str, from_id: int, to_id: int
) -> AccountDataSnapshot:
    txn.execute(
        "SELECT room_id, data_type, content FROM account_data"
        " WHERE user_id = ? AND stream_id > ? AND stream_id <= ?",
        (user_id, from_id, to_id),
    )
    out = AccountDataSnapshot()
    for room_id, data_type, content in txn.fetchall():
        if room_id == _GLOBAL:
            out.global_data[data_type] = _decode_obj(content)
        else:
            out.room_data.setdefault(room_id, {})[data_type] = _decode_obj(content)
    return out


def _delete_for_user_txn(txn: Txn, user_id: str) -> list[str]:
    txn.execute(
        "SELECT data_type FROM account_data WHERE user_id = ? AND room_id = ?",
        (user_id, _GLOBAL),
    )
    global_types = sorted(str(r[0]) for r in txn.fetchall())
    txn.execute("DELETE FROM account_data WHERE user_id = ?", (user_id,))
    return global_types
