"""To-device messages (per device inbox) and the device-list change stream.

To-device: a message is stored once per target device and delivered by that device's
sync; it is deleted when the device syncs with a `since` at or past its position, which
is how the client acknowledges it (spec: Send-to-Device messaging > Server behaviour).

Device lists: a row per (position, user) whose devices or device keys changed; sync
reports the users sharing a room with the syncing user in `device_lists.changed`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from ranvier.core.json import decode_json, encode_json
from ranvier.storage.database import Database
from ranvier.storage.stream_ids import StreamIdGenerator
from ranvier.storage.txn import Txn

JsonDict = dict[str, Any]


@dataclass(frozen=True, slots=True)
class InboxMessage:
    stream_id: int
    message: JsonDict


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    user_id: str
    device_id: str
    message: JsonDict


class ToDeviceStore:
    def __init__(self, db: Database, stream_ids: StreamIdGenerator) -> None:
        self._db = db
        self._ids = stream_ids

    @classmethod
    async def open(cls, db: Database) -> ToDeviceStore:
        current = await db.run_read_txn("device_inbox_max_stream_id", _max_inbox_txn)
        return cls(db, StreamIdGenerator(current))

    def get_current_position(self) -> int:
        return self._ids.get_current_token()

    async def add_messages(
        self,
        sender_user_id: str,
        sender_device_id: str,
        txn_id: str,
        messages: Sequence[OutgoingMessage],
        now_ms: int,
    ) -> int | None:
        """Queue messages under one new position; None if `txn_id` was already used by
        this sender device (the retried request must not deliver twice)."""
        rows = [
            (m.user_id, m.device_id, encode_json(m.message).decode()) for m in messages
        ]
        with self._ids.allocating() as stream_id:
            stored = await self._db.run_txn(
                "add_to_device_messages",
                _add_messages_txn,
                (sender_user_id, sender_device_id, txn_id, now_ms),
                rows,
                stream_id,
            )
        return stream_id if stored else None

    async def get_messages(
        self, user_id: str, device_id: str, from_id: int, to_id: int, limit: int
    ) -> list[InboxMessage]:
        """Up to `limit` messages with from_id < stream_id <= to_id, oldest first."""
        if to_id <= from_id:
            return []
        return await self._db.run_read_txn(
            "get_to_device_messages",
            _get_messages_txn,
            user_id,
            device_id,
            from_id,
            to_id,
            limit,
        )

    async def has_messages(self, user_id: str, device_id: str, from_id: int) -> bool:
        return await self._db.run_read_txn(
            "has_to_device_messages", _has_messages_txn, user_id, device_id, from_id
        )

    async def delete_messages_up_to(
        self, user_id: str, device_id: str, up_to: int
    ) -> int:
        """Delete what the device acknowledged; the number of rows removed."""
        return await self._db.run_txn(
            "delete_to_device_messages", _delete_up_to_txn, user_id, device_id, up_to
        )

    async def delete_device_inbox(self, user_id: str, device_id: str) -> None:
        """For device deletion: drop everything queued for the device."""
        await self._db.run_txn(
            "delete_device_inbox", _delete_up_to_txn, user_id, device_id, 2**62
        )

    async def delete_old_txn_ids(self, older_than_ms: int) -> int:
        return await self._db.run_txn(
            "delete_old_to_device_txns", _delete_old_txns_txn, older_than_ms
        )


class DeviceListStore:
    def __init__(self, db: Database, stream_ids: StreamIdGenerator) -> None:
        self._db = db
        self._ids = stream_ids

    @classmethod
    async def open(cls, db: Database) -> DeviceListStore:
        current = await db.run_read_txn("device_lists_max_stream_id", _max_lists_txn)
        return cls(db, StreamIdGenerator(current))

    def get_current_position(self) -> int:
        return self._ids.get_current_token()

    async def add_device_list_changes(self, user_ids: Collection[str]) -> int:
        with self._ids.allocating() as stream_id:
            await self._db.run_txn(
                "add_device_list_changes", _add_changes_txn, sorted(user_ids), stream_id
            )
        return stream_id

    async def get_users_with_changes(
        self, user_ids: Collection[str], from_id: int, to_id: int
    ) -> set[str]:
        """Which of `user_ids` changed with from_id < stream_id <= to_id."""
        if not user_ids or to_id <= from_id:
            return set()
        return await self._db.run_read_txn(
            "get_device_list_changes",
            _get_changes_txn,
            list(user_ids),
            from_id,
            to_id,
        )


def _max_inbox_txn(txn: Txn) -> int:
    txn.execute("SELECT position FROM sync_stream_positions WHERE stream = 'to_device'")
    row = txn.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _max_lists_txn(txn: Txn) -> int:
    txn.execute("SELECT MAX(stream_id) FROM device_lists_stream")
    row = txn.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _add_messages_txn(
    txn: Txn,
    sender: tuple[str, str, str, int],
    rows: list[tuple[str, str, str]],
    stream_id: int,
) -> bool:
    txn.execute(
        "INSERT INTO to_device_txns (user_id, device_id, txn_id, created_ts)"
        " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        sender,
    )
    if txn.rowcount == 0:
        return False
    txn.execute(
        "UPDATE sync_stream_positions SET position = ?"
        " WHERE stream = 'to_device' AND position < ?",
        (stream_id, stream_id),
    )
    txn.executemany(
        "INSERT INTO device_inbox (user_id, device_id, stream_id, message_json)"
        " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [(user_id, device_id, stream_id, text) for user_id, device_id, text in rows],
    )
    return True


def _get_messages_txn(
    txn: Txn, user_id: str, device_id: str, from_id: int, to_id: int, limit: int
) -> list[InboxMessage]:
    txn.execute(
        "SELECT stream_id, message_json FROM device_inbox"
        " WHERE user_id = ? AND device_id = ? AND stream_id > ? AND stream_id <= ?"
        " ORDER BY stream_id LIMIT ?",
        (user_id, device_id, from_id, to_id, limit),
    )
    out: list[InboxMessage] = []
    for stream_id, text in txn.fetchall():
        message = decode_json(text)
        if isinstance(message, dict):
            out.append(InboxMessage(int(stream_id), message))
    return out


def _has_messages_txn(txn: Txn, user_id: str, device_id: str, from_id: int) -> bool:
    txn.execute(
        "SELECT 1 FROM device_inbox WHERE user_id = ? AND device_id = ? AND stream_id > ?"
        " LIMIT 1",
        (user_id, device_id, from_id),
    )
    return txn.fetchone() is not None


def _delete_up_to_txn(txn: Txn, user_id: str, device_id: str, up_to: int) -> int:
    txn.execute(
        "DELETE FROM device_inbox WHERE user_id = ? AND device_id = ? AND stream_id <= ?",
        (user_id, device_id, up_to),
    )
    return txn.rowcount


def _delete_old_txns_txn(txn: Txn, older_than_ms: int) -> int:
    txn.execute("DELETE FROM to_device_txns WHERE created_ts < ?", (older_than_ms,))
    return txn.rowcount


def _add_changes_txn(txn: Txn, user_ids: list[str], stream_id: int) -> None:
    txn.executemany(
        "INSERT INTO device_lists_stream (stream_id, user_id) VALUES (?, ?)",
        [(stream_id, u) for u in user_ids],
    )


def _get_changes_txn(
    txn: Txn, user_ids: list[str], from_id: int, to_id: int
) -> set[str]:
    cond, params = txn.in_list("user_id", user_ids)
    txn.execute(
        f"SELECT DISTINCT user_id FROM device_lists_stream WHERE {cond}"
        " AND stream_id > ? AND stream_id <= ?",
        (*params, from_id, to_id),
    )
    return {r[0] for r in txn.fetchall()}
