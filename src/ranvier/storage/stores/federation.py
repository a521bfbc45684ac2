"""Federation transport storage (schemas 0004, 0009): remote server keys, destination
backoff, the persisted outbound queues (bounded per room, coalesced EDUs), the outbound
events-stream position and inbound transaction de-duplication.

Implements the narrow protocols the federation layer and the federation sender declare
(`ServerKeyStore`, `RetryStateStore`, `OutboundQueueStore`); `app/` wires them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from ranvier.core.json import InvalidJsonError, decode_json, encode_json
from ranvier.storage.database import Database
from ranvier.storage.stores.event_rows import (
    EVENT_COLUMNS,
    StoredEvent,
    row_to_stored_event,
)
from ranvier.storage.txn import Txn

JsonDict = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ServerKeyRow:
    server_name: str
    key_id: str
    from_server: str
    verify_key: str
    valid_until_ts: int
    fetched_ts: int
    key_json: str


@dataclass(frozen=True, slots=True)
class DestinationRetryRow:
    destination: str
    failure_ts: int
    retry_last_ts: int
    retry_interval_ms: int


@dataclass(frozen=True, slots=True)
class QueuedPdu:
    pdu_id: int
    event_id: str
    pdu_json: str
    room_id: str = ""


@dataclass(frozen=True, slots=True)
class QueuedEdu:
    edu_id: int
    edu_type: str
    content_json: str


@dataclass(frozen=True, slots=True)
class OutboundBatch:
    pdus: list[QueuedPdu]
    edus: list[QueuedEdu]

    @property
    def is_empty(self) -> bool:
        return not self.pdus and not self.edus


class FederationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- server keys ----------------------------------------------------------------------
    async def get_server_keys(self, server_name: str) -> list[ServerKeyRow]:
        return await self._db.run_read_txn(
            "get_server_keys", _get_server_keys_txn, server_name
        )

    async def store_server_keys(
        self,
        server_name: str,
        from_server: str,
        fetched_ts: int,
        key_json: str,
        keys: Sequence[tuple[str, str, int]],
    ) -> None:
        rows = [
            (
                server_name,
                key_id,
                from_server,
                verify_key,
                valid_until,
                fetched_ts,
                key_json,
            )
            for key_id, verify_key, valid_until in keys
        ]
        await self._db.run_txn("store_server_keys", _store_server_keys_txn, rows)

    # -- destination backoff ----------------------------------------------------------------
    async def get_destination_retry_states(self) -> list[DestinationRetryRow]:
        return await self._db.run_read_txn(
            "get_destination_retry_states", _get_retry_states_txn
        )

    async def set_destination_retry_state(
        self,
        destination: str,
        failure_ts: int,
        retry_last_ts: int,
        retry_interval_ms: int,
    ) -> None:
        await self._db.run_txn(
            "set_destination_retry_state",
            _set_retry_state_txn,
            (destination, failure_ts, retry_last_ts, retry_interval_ms),
        )

    async def clear_destination_retry_state(self, destination: str) -> None:
        await self._db.run_txn(
            "clear_destination_retry_state", _clear_retry_state_txn, destination
        )

    # -- outbound queues ----------------------------------------------------------------------
    async def enqueue_pdu(
        self, destinations: Collection[str], event_id: str, pdu_json: str, now_ms: int
    ) -> int:
        """Queue one PDU for every destination; returns its queue id."""
        return await self._db.run_txn(
            "enqueue_pdu",
            _enqueue_pdu_txn,
            sorted(destinations),
            event_id,
            pdu_json,
            now_ms,
        )

    async def enqueue_room_pdu(
        self,
        destinations: Collection[str],
        event_id: str,
        room_id: str,
        pdu_json: str,
        now_ms: int,
        *,
        max_per_room: int,
        catch_up: Collection[str] = (),
    ) -> list[str]:
        """Queue one PDU of `room_id` for every destination, then bound the room's
        queue: for a destination in `catch_up`, or holding more than `max_per_room`
        PDUs of the room, only this newest one is kept. Returns those destinations."""
        return await self._db.run_txn(
            "enqueue_room_pdu",
            _enqueue_room_pdu_txn,
            sorted(destinations),
            event_id,
            room_id,
            pdu_json,
            now_ms,
            max_per_room,
            frozenset(catch_up),
        )

    async def enqueue_edu(
        self,
        destination: str,
        edu_type: str,
        content_json: str,
        now_ms: int,
        *,
        coalesce_key: str | None = None,
    ) -> int:
        """Queue one EDU; with `coalesce_key`, it replaces a queued EDU of the same
        destination, type and key (only the latest typing/presence state matters)."""
        return await self._db.run_txn(
            "enqueue_edu",
            _enqueue_edu_txn,
            (destination, edu_type, content_json, now_ms, coalesce_key),
        )

    async def get_pending_destinations(self) -> list[str]:
        return await self._db.run_read_txn(
            "get_pending_destinations", _pending_destinations_txn
        )

    async def get_outbound_batch(
        self, destination: str, max_pdus: int, max_edus: int
    ) -> OutboundBatch:
        """The oldest queued PDUs and EDUs for `destination`, in queue order."""
        return await self._db.run_read_txn(
            "get_outbound_batch", _get_batch_txn, destination, max_pdus, max_edus
        )

    async def delete_delivered(
        self, destination: str, pdu_ids: Collection[int], edu_ids: Collection[int]
    ) -> None:
        await self._db.run_txn(
            "delete_delivered",
            _delete_delivered_txn,
            destination,
            sorted(pdu_ids),
            sorted(edu_ids),
        )

    # -- outbound events stream -------------------------------------------------------------
    async def get_stream_position(self, stream_name: str) -> int | None:
        return await self._db.run_read_txn(
            "get_federation_stream_position", _get_position_txn, stream_name
        )

    async def set_stream_position(self, stream_name: str, position: int) -> None:
        await self._db.run_txn(
            "set_federation_stream_position", _set_position_txn, stream_name, position
        )

    async def get_local_events_after(
        self, server_name: str, after: int, upto: int, limit: int
    ) -> tuple[list[StoredEvent], int]:
        """Timeline events sent by `server_name`'s users with `after < stream_ordering
        <= upto`, oldest first (what the notifier would have handed out), scanning at
        most `limit` rows; with the position scanned up to (`upto` when done)."""
        return await self._db.run_read_txn(
            "get_local_events_after",
            _local_events_after_txn,
            server_name,
            after,
            upto,
            limit,
        )

    # -- inbound transactions ---------------------------------------------------------------
    async def get_received_transaction(
        self, origin: str, txn_id: str
    ) -> JsonDict | None:
        """The response we gave to `(origin, txn_id)`, if we processed it already."""
        return await self._db.run_read_txn(
            "get_received_transaction", _get_received_txn, origin, txn_id
        )

    async def set_received_transaction(
        self, origin: str, txn_id: str, response: JsonDict, now_ms: int
    ) -> None:
        await self._db.run_txn(
            "set_received_transaction",
            _set_received_txn,
            (origin, txn_id, encode_json(response).decode(), now_ms),
        )

    async def delete_received_transactions_before(self, before_ms: int) -> int:
        return await self._db.run_txn(
            "delete_old_received_transactions", _delete_received_txn, before_ms
        )


def _get_server_keys_txn(txn: Txn, server_name: str) -> list[ServerKeyRow]:
    txn.execute(
        "SELECT server_name, key_id, from_server, verify_key, valid_until_ts,"
        " fetched_ts, key_json FROM federation_server_keys WHERE server_name = ?"
        " ORDER BY key_id, from_server",
        (server_name,),
    )
    return [
        ServerKeyRow(r[0], r[1], r[2], r[3], int(r[4]), int(r[5]), r[6])
        for r in txn.fetchall()
    ]


def _store_server_keys_txn(
    txn: Txn, rows: list[tuple[str, str, str, str, int, int, str]]
) -> None:
    txn.executemany(
        "INSERT INTO federation_server_keys (server_name, key_id, from_server,"
        " verify_key, valid_until_ts, fetched_ts, key_json) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (server_name, key_id, from_server) DO UPDATE SET"
        " verify_key = excluded.verify_key, valid_until_ts = excluded.valid_until_ts,"
        " fetched_ts = excluded.fetched_ts, key_json = excluded.key_json",
        rows,
    )


def _get_retry_states_txn(txn: Txn) -> list[DestinationRetryRow]:
    txn.execute(
        "SELECT destination, failure_ts, retry_last_ts, retry_interval_ms"
        " FROM federation_destination_retry ORDER BY destination"
    )
    return [
        DestinationRetryRow(r[0], int(r[1]), int(r[2]), int(r[3]))
        for r in txn.fetchall()
    ]


def _set_retry_state_txn(txn: Txn, row: tuple[str, int, int, int]) -> None:
    txn.execute(
        "INSERT INTO federation_destination_retry (destination, failure_ts,"
        " retry_last_ts, retry_interval_ms) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (destination) DO UPDATE SET failure_ts = excluded.failure_ts,"
        " retry_last_ts = excluded.retry_last_ts,"
        " retry_interval_ms = excluded.retry_interval_ms",
        row,
    )


def _clear_retry_state_txn(txn: Txn, destination: str) -> None:
    txn.execute(
        "DELETE FROM federation_destination_retry WHERE destination = ?", (destination,)
    )


def _enqueue_pdu_txn(
    txn: Txn, destinations: list[str], event_id: str, pdu_json: str, now_ms: int
) -> int:
    txn.execute(
        "INSERT INTO federation_outbound_pdus (event_id, pdu_json, created_ts)"
        " VALUES (?, ?, ?) RETURNING pdu_id",
        (event_id, pdu_json, now_ms),
    )
    row = txn.fetchone()
    assert row is not None
    pdu_id = int(row[0])
    txn.executemany(
        "INSERT INTO federation_destination_pdus (destination, pdu_id) VALUES (?, ?)",
        [(d, pdu_id) for d in destinations],
    )
    return pdu_id


def _enqueue_room_pdu_txn(
    txn: Txn,
    destinations: list[str],
    event_id: str,
    room_id: str,
    pdu_json: str,
    now_ms: int,
    max_per_room: int,
    catch_up: frozenset[str],
) -> list[str]:
    txn.execute(
        "INSERT INTO federation_outbound_pdus (event_id, room_id, pdu_json, created_ts)"
        " VALUES (?, ?, ?, ?) RETURNING pdu_id",
        (event_id, room_id, pdu_json, now_ms),
    )
    row = txn.fetchone()
    assert row is not None
    pdu_id = int(row[0])
    txn.executemany(
        "INSERT INTO federation_destination_pdus (destination, pdu_id) VALUES (?, ?)",
        [(d, pdu_id) for d in destinations],
    )
    txn.execute(
        "SELECT d.destination, COUNT(*) FROM federation_destination_pdus d"
        " JOIN federation_outbound_pdus p ON p.pdu_id = d.pdu_id"
        " WHERE p.room_id = ? GROUP BY d.destination",
        (room_id,),
    )
    counts = {r[0]: int(r[1]) for r in txn.fetchall()}
    trimmed = [
        d
        for d in destinations
        if counts.get(d, 0) > max_per_room or (d in catch_up and counts.get(d, 0) > 1)
    ]
    if trimmed:
        _trim_room_txn(txn, trimmed, room_id, pdu_id)
    return trimmed


def _trim_room_txn(
    txn: Txn, destinations: list[str], room_id: str, newest: int
) -> None:
    """Forget the queued PDUs of `room_id` older than `newest` for `destinations`."""
    cond, params = txn.in_list("destination", destinations)
    txn.execute(
        f"DELETE FROM federation_destination_pdus WHERE {cond} AND pdu_id IN ("
        " SELECT pdu_id FROM federation_outbound_pdus WHERE room_id = ? AND pdu_id < ?)",
        [*params, room_id, newest],
    )
    txn.execute(
        "DELETE FROM federation_outbound_pdus WHERE room_id = ? AND pdu_id < ?"
        " AND NOT EXISTS (SELECT 1 FROM federation_destination_pdus d"
        " WHERE d.pdu_id = federation_outbound_pdus.pdu_id)",
        (room_id, newest),
    )


def _enqueue_edu_txn(txn: Txn, row: tuple[str, str, str, int, str | None]) -> int:
    destination, edu_type, _content, _now, key = row
    if key is not None:
        txn.execute(
            "DELETE FROM federation_outbound_edus WHERE destination = ?"
            " AND edu_type = ? AND coalesce_key = ?",
            (destination, edu_type, key),
        )
    txn.execute(
        "INSERT INTO federation_outbound_edus (destination, edu_type, content_json,"
        " created_ts, coalesce_key) VALUES (?, ?, ?, ?, ?) RETURNING edu_id",
        row,
    )
    result = txn.fetchone()
    assert result is not None
    return int(result[0])


def _pending_destinations_txn(txn: Txn) -> list[str]:
    txn.execute(
        "SELECT destination FROM federation_destination_pdus"
        " UNION SELECT destination FROM federation_outbound_edus"
    )
    return sorted(r[0] for r in txn.fetchall())


def _get_batch_txn(
    txn: Txn, destination: str, max_pdus: int, max_edus: int
) -> OutboundBatch:
    txn.execute(
        "SELECT p.pdu_id, p.event_id, p.pdu_json, p.room_id"
        " FROM federation_destination_pdus d"
        " JOIN federation_outbound_pdus p ON p.pdu_id = d.pdu_id"
        " WHERE d.destination = ? ORDER BY d.pdu_id LIMIT ?",
        (destination, max_pdus),
    )
    pdus = [QueuedPdu(int(r[0]), r[1], r[2], r[3]) for r in txn.fetchall()]
    txn.execute(
        "SELECT edu_id, edu_type, content_json FROM federation_outbound_edus"
        " WHERE destination = ? ORDER BY edu_id LIMIT ?",
        (destination, max_edus),
    )
    edus = [QueuedEdu(int(r[0]), r[1], r[2]) for r in txn.fetchall()]
    return OutboundBatch(pdus, edus)


def _delete_delivered_txn(
    txn: Txn, destination: str, pdu_ids: list[int], edu_ids: list[int]
) -> None:
    if pdu_ids:
        cond, params = txn.in_list("pdu_id", pdu_ids)
        txn.execute(
            f"DELETE FROM federation_destination_pdus WHERE destination = ? AND {cond}",
            [destination, *params],
        )
        # PDUs no destination still waits for.
        txn.execute(
            f"DELETE FROM federation_outbound_pdus WHERE {cond} AND NOT EXISTS ("
            " SELECT 1 FROM federation_destination_pdus d"
            " WHERE d.pdu_id = federation_outbound_pdus.pdu_id)",
            params,
        )
    if edu_ids:
        cond, params = txn.in_list("edu_id", edu_ids)
        txn.execute(
            f"DELETE FROM federation_outbound_edus WHERE destination = ? AND {cond}",
            [destination, *params],
        )


def _get_position_txn(txn: Txn, stream_name: str) -> int | None:
    txn.execute(
        "SELECT stream_position FROM federation_stream_positions WHERE stream_name = ?",
        (stream_name,),
    )
    row = txn.fetchone()
    return int(row[0]) if row is not None else None


def _set_position_txn(txn: Txn, stream_name: str, position: int) -> None:
    txn.execute(
        "INSERT INTO federation_stream_positions (stream_name, stream_position)"
        " VALUES (?, ?) ON CONFLICT (stream_name) DO UPDATE"
        " SET stream_position = excluded.stream_position",
        (stream_name, position),
    )


def _local_events_after_txn(
    txn: Txn, server_name: str, after: int, upto: int, limit: int
) -> tuple[list[StoredEvent], int]:
    # The sender's domain is matched exactly after the query (LIKE's case rules
    # differ between engines); the pattern only narrows the scan.
    pattern = "%:" + re.sub(r"([\\%_])", r"\\\1", server_name)
    txn.execute(
        f"SELECT {EVENT_COLUMNS}, e.sender FROM events AS e"
        " WHERE e.stream_ordering > ? AND e.stream_ordering <= ?"
        " AND e.outlier = FALSE AND e.rejected_reason IS NULL"
        " AND e.soft_failed = FALSE AND e.sender LIKE ? ESCAPE '\\'"
        " ORDER BY e.stream_ordering LIMIT ?",
        (after, upto, pattern, limit),
    )
    rows = txn.fetchall()
    suffix = ":" + server_name
    events = [row_to_stored_event(r[:-1]) for r in rows if r[-1].endswith(suffix)]
    scanned = int(rows[-1][0]) if len(rows) == limit else upto
    return events, scanned


def _get_received_txn(txn: Txn, origin: str, txn_id: str) -> JsonDict | None:
    txn.execute(
        "SELECT response_json FROM federation_received_txns"
        " WHERE origin = ? AND txn_id = ?",
        (origin, txn_id),
    )
    row = txn.fetchone()
    if row is None:
        return None
    try:
        response = decode_json(row[0])
    except InvalidJsonError:
        return None
    return response if isinstance(response, dict) else None


def _set_received_txn(txn: Txn, row: tuple[str, str, str, int]) -> None:
    txn.execute(
        "INSERT INTO federation_received_txns (origin, txn_id, response_json,"
        " received_ts) VALUES (?, ?, ?, ?) ON CONFLICT (origin, txn_id) DO NOTHING",
        row,
    )


def _delete_received_txn(txn: Txn, before_ms: int) -> int:
    txn.execute(
        "DELETE FROM federation_received_txns WHERE received_ts < ?", (before_ms,)
    )
    return txn.rowcount
