"""Sliding sync connection state (schema 0016): what each connection has been sent.

A connection is (user, device, `conn_id`). Every response is a new *position* (its
`pos`); rooms whose sent-state changed get a row at that position, so a response that
changed nothing about a room writes nothing for it. The state of a room at position P
is its row with the highest position at or before P.

A response is only known to have arrived when a request comes back with its `pos`
(MSC4186 "Connections"). Until then the client may retry with the previous `pos`, so
positions form a chain with short-lived branches: `acknowledge` (run at the start of
every request with a `pos`) keeps P, drops every other position handed out after the
last acknowledged one (responses the client threw away) together with their rows,
and folds rows made redundant by P's rows. Responses built concurrently from the same
`pos` therefore never see each other's rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ranvier.core.json import decode_json, encode_json
from ranvier.storage.database import Database
from ranvier.storage.txn import Txn

JsonDict = dict[str, Any]

LIVE: Final = "live"
PREVIOUSLY: Final = "previously"
# Connections of one device beyond this are dropped, oldest first (MSC4186 "Security
# considerations": bound what a device can make the server store).
MAX_CONNECTIONS_PER_DEVICE: Final = 50


@dataclass(frozen=True, slots=True)
class SentRoom:
    room_id: str
    status: str
    last_stream: int
    membership: str
    config: JsonDict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConnectionState:
    connection_key: int
    position: int
    stream_token: str
    data: JsonDict
    rooms: dict[str, SentRoom]


class SlidingSyncStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_connection(
        self,
        user_id: str,
        device_id: str,
        conn_id: str,
        now_ts: int,
        stream_token: str,
        data: JsonDict,
        rooms: Sequence[SentRoom],
    ) -> int:
        """Start (or restart) the connection; returns its first position."""
        return await self._db.run_txn(
            "sliding_sync_create_connection",
            _create_connection_txn,
            user_id,
            device_id,
            conn_id,
            now_ts,
            stream_token,
            data,
            rooms,
        )

    async def acknowledge(
        self,
        user_id: str,
        device_id: str,
        conn_id: str,
        position: int,
        now_ts: int,
        expire_before_ts: int,
    ) -> ConnectionState | None:
        """The connection's state at `position`, or None if the position is unknown,
        superseded or expired (the client must start over)."""
        return await self._db.run_txn(
            "sliding_sync_acknowledge",
            _acknowledge_txn,
            user_id,
            device_id,
            conn_id,
            position,
            now_ts,
            expire_before_ts,
        )

    async def add_position(
        self,
        connection_key: int,
        parent: int,
        now_ts: int,
        stream_token: str,
        data: JsonDict,
        rooms: Sequence[SentRoom],
    ) -> int | None:
        """The next position after `parent`; None if `parent` was dropped meanwhile (a
        newer request of the connection acknowledged another position)."""
        return await self._db.run_txn(
            "sliding_sync_add_position",
            _add_position_txn,
            connection_key,
            parent,
            now_ts,
            stream_token,
            data,
            rooms,
        )

    async def delete_expired(self, before_ts: int) -> int:
        return await self._db.run_txn(
            "sliding_sync_delete_expired", _delete_expired_txn, before_ts
        )

    async def delete_device_connections(
        self, user_id: str, device_ids: Sequence[str]
    ) -> None:
        await self._db.run_txn(
            "sliding_sync_delete_devices",
            _delete_devices_txn,
            user_id,
            list(device_ids),
        )


# -- transaction functions ------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return encode_json(value).decode()


def _loads_obj(text: str) -> JsonDict:
    value = decode_json(text)
    return value if isinstance(value, dict) else {}


def _insert_position_txn(
    txn: Txn, connection_key: int, now_ts: int, stream_token: str, data: JsonDict
) -> int:
    txn.execute(
        "INSERT INTO sliding_sync_positions"
        " (connection_key, stream_token, data, created_ts) VALUES (?, ?, ?, ?)"
        " RETURNING position",
        (connection_key, stream_token, _dumps(data), now_ts),
    )
    row = txn.fetchone()
    assert row is not None
    return int(row[0])


def _insert_rooms_txn(
    txn: Txn, connection_key: int, position: int, rooms: Sequence[SentRoom]
) -> None:
    if not rooms:
        return
    txn.executemany(
        "INSERT INTO sliding_sync_rooms (connection_key, room_id, position, status,"
        " last_stream, membership, config) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                connection_key,
                r.room_id,
                position,
                r.status,
                r.last_stream,
                r.membership,
                _dumps(r.config),
            )
            for r in rooms
        ],
    )


def _create_connection_txn(
    txn: Txn,
    user_id: str,
    device_id: str,
    conn_id: str,
    now_ts: int,
    stream_token: str,
    data: JsonDict,
    rooms: Sequence[SentRoom],
) -> int:
    _delete_connection_txn(txn, user_id, device_id, conn_id)
    _trim_device_txn(txn, user_id, device_id)
    txn.execute(
        "INSERT INTO sliding_sync_connections (user_id, device_id, conn_id,"
        " created_ts, last_used_ts) VALUES (?, ?, ?, ?, ?) RETURNING connection_key",
        (user_id, device_id, conn_id, now_ts, now_ts),
    )
    row = txn.fetchone()
    assert row is not None
    key = int(row[0])
    position = _insert_position_txn(txn, key, now_ts, stream_token, data)
    _insert_rooms_txn(txn, key, position, rooms)
    return position


def _delete_connection_txn(
    txn: Txn, user_id: str, device_id: str, conn_id: str
) -> None:
    txn.execute(
        "SELECT connection_key FROM sliding_sync_connections"
        " WHERE user_id = ? AND device_id = ? AND conn_id = ?",
        (user_id, device_id, conn_id),
    )
    row = txn.fetchone()
    if row is not None:
        _delete_keys_txn(txn, [int(row[0])])


def _delete_keys_txn(txn: Txn, keys: list[int]) -> None:
    # Children first, explicitly: no reliance on the engine enforcing the cascade.
    if not keys:
        return
    for table in (
        "sliding_sync_rooms",
        "sliding_sync_positions",
        "sliding_sync_connections",
    ):
        cond, params = txn.in_list("connection_key", keys)
        txn.execute(f"DELETE FROM {table} WHERE {cond}", params)


def _trim_device_txn(txn: Txn, user_id: str, device_id: str) -> None:
    txn.execute(
        "SELECT connection_key FROM sliding_sync_connections"
        " WHERE user_id = ? AND device_id = ? ORDER BY last_used_ts DESC, connection_key DESC",
        (user_id, device_id),
    )
    keys = [int(r[0]) for r in txn.fetchall()]
    _delete_keys_txn(txn, keys[MAX_CONNECTIONS_PER_DEVICE - 1 :])


def _acknowledge_txn(
    txn: Txn,
    user_id: str,
    device_id: str,
    conn_id: str,
    position: int,
    now_ts: int,
    expire_before_ts: int,
) -> ConnectionState | None:
    txn.execute(
        "SELECT c.connection_key, c.acked_position, c.last_used_ts, p.stream_token, p.data"
        " FROM sliding_sync_connections AS c JOIN sliding_sync_positions AS p"
        " ON p.connection_key = c.connection_key"
        " WHERE c.user_id = ? AND c.device_id = ? AND c.conn_id = ? AND p.position = ?",
        (user_id, device_id, conn_id, position),
    )
    row = txn.fetchone()
    if row is None:
        return None
    key, acked, last_used = int(row[0]), int(row[1]), int(row[2])
    if last_used < expire_before_ts:
        _delete_keys_txn(txn, [key])
        return None
    token, data = str(row[3]), _loads_obj(str(row[4]))
    # Abandoned responses: handed out after the last acknowledged position, not `pos`.
    txn.execute(
        "DELETE FROM sliding_sync_rooms WHERE connection_key = ? AND position > ?"
        " AND position <> ?",
        (key, acked, position),
    )
    txn.execute(
        "DELETE FROM sliding_sync_positions WHERE connection_key = ? AND position <> ?",
        (key, position),
    )
    if position != acked:
        # Rows of rooms that `pos` wrote again are no longer anyone's state.
        txn.execute(
            "DELETE FROM sliding_sync_rooms WHERE connection_key = ? AND position < ?"
            " AND room_id IN (SELECT r.room_id FROM sliding_sync_rooms AS r"
            " WHERE r.connection_key = ? AND r.position = ?)",
            (key, position, key, position),
        )
    txn.execute(
        "UPDATE sliding_sync_connections SET acked_position = ?, last_used_ts = ?"
        " WHERE connection_key = ?",
        (position, now_ts, key),
    )
    txn.execute(
        "SELECT room_id, position, status, last_stream, membership, config"
        " FROM sliding_sync_rooms WHERE connection_key = ? AND position <= ?",
        (key, position),
    )
    best: dict[str, tuple[int, SentRoom]] = {}
    for room_id, pos, status, last_stream, membership, config in txn.fetchall():
        current = best.get(str(room_id))
        if current is None or int(pos) > current[0]:
            best[str(room_id)] = (
                int(pos),
                SentRoom(
                    str(room_id),
                    str(status),
                    int(last_stream),
                    str(membership),
                    _loads_obj(str(config)),
                ),
            )
    return ConnectionState(
        key, position, token, data, {r: sent for r, (_, sent) in best.items()}
    )


def _add_position_txn(
    txn: Txn,
    connection_key: int,
    parent: int,
    now_ts: int,
    stream_token: str,
    data: JsonDict,
    rooms: Sequence[SentRoom],
) -> int | None:
    txn.execute(
        "SELECT 1 FROM sliding_sync_positions WHERE connection_key = ? AND position = ?",
        (connection_key, parent),
    )
    if txn.fetchone() is None:
        return None
    position = _insert_position_txn(txn, connection_key, now_ts, stream_token, data)
    _insert_rooms_txn(txn, connection_key, position, rooms)
    return position


def _delete_expired_txn(txn: Txn, before_ts: int) -> int:
    txn.execute(
        "SELECT connection_key FROM sliding_sync_connections WHERE last_used_ts < ?",
        (before_ts,),
    )
    keys = [int(r[0]) for r in txn.fetchall()]
    _delete_keys_txn(txn, keys)
    return len(keys)


def _delete_devices_txn(txn: Txn, user_id: str, device_ids: list[str]) -> None:
    if not device_ids:
        return
    cond, params = txn.in_list("device_id", device_ids)
    txn.execute(
        f"SELECT connection_key FROM sliding_sync_connections WHERE user_id = ? AND {cond}",
        (user_id, *params),
    )
    _delete_keys_txn(txn, [int(r[0]) for r in txn.fetchall()])
