"""The one transaction that persists an ingest step (`PersistBatch`).

Events, DAG edges, state groups, state-at-event, forward extremities, current state, the
membership tables, redactions, a new room's row and aliases are written together: a room
is never left half-updated. The caller (the per-room ingest pipeline) holds the room's
lock and has computed everything; nothing here decides policy.

An event stored once as an outlier and later placed in the DAG (`upgrades_outlier`) keeps
its one row: the row takes a new stream position (so syncs see it as new) and its status,
and gains its state groups. Events are stored once.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from ranvier.storage.stores.event_rows import (
    AliasTakenError,
    CurrentStateDelta,
    EventToPersist,
    NewRoom,
    NewStateGroup,
    PersistBatch,
)
from ranvier.storage.stores.relations import delete_relation_txn, insert_relation_txn
from ranvier.storage.stores.search import index_event_txn, unindex_event_txn
from ranvier.storage.txn import Txn

__all__ = ["OutlierGoneError", "persist_batch_txn"]


def persist_batch_txn(txn: Txn, batch: PersistBatch) -> list[str]:
    """Write `batch`; return the IDs of events whose redaction status changed."""
    if batch.new_room is not None:
        _insert_room(txn, batch.new_room)
    redacted: list[str] = []
    for item in batch.events:
        _insert_event(txn, item)
        insert_relation_txn(txn, item)
        index_event_txn(txn, item)
        _insert_state_groups(txn, item.new_state_groups)
        redacted.extend(_apply_redactions(txn, item))
    if batch.forward_extremities is not None:
        txn.execute(
            "DELETE FROM event_forward_extremities WHERE room_id = ?", (batch.room_id,)
        )
        txn.executemany(
            "INSERT INTO event_forward_extremities (room_id, event_id) VALUES (?, ?)",
            [(batch.room_id, e) for e in batch.forward_extremities],
        )
    for delta in batch.current_state:
        _update_current_state(txn, delta)
    for alias, creator in batch.new_aliases:
        # Callers look the alias up first, but a concurrent request may take it between
        # that read and this write: refuse the whole batch rather than fail on the key.
        txn.execute(
            "INSERT INTO room_aliases (room_alias, room_id, creator, created_ts) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (room_alias) DO NOTHING",
            (alias, batch.room_id, creator, _created_ts(batch)),
        )
        if txn.rowcount != 1:
            raise AliasTakenError(alias)
    return redacted


def _created_ts(batch: PersistBatch) -> int:
    if batch.new_room is not None:
        return batch.new_room.created_ts
    return batch.events[0].received_ts if batch.events else 0


def _insert_room(txn: Txn, room: NewRoom) -> None:
    txn.execute(
        "INSERT INTO rooms (room_id, room_version, creator, is_public, created_ts) "
        "VALUES (?, ?, ?, ?, ?)",
        (
            room.room_id,
            room.room_version,
            room.creator,
            room.is_public,
            room.created_ts,
        ),
    )


class OutlierGoneError(Exception):
    """An upgrade of an outlier found no accepted outlier row to upgrade (the caller's
    view was stale); nothing of the batch was written."""


def _insert_event(txn: Txn, item: EventToPersist) -> None:
    if item.upgrades_outlier:
        _upgrade_outlier(txn, item)
        return
    ev = item.event
    content = ev.content
    txn.execute(
        "INSERT INTO events (stream_ordering, event_id, room_id, room_version, type, "
        "state_key, sender, depth, origin_server_ts, received_ts, outlier, "
        "rejected_reason, soft_failed, replaces_state, txn_id, device_id, contains_url, "
        "json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            item.stream_ordering,
            ev.event_id,
            ev.room_id,
            ev.room_version.identifier,
            ev.type,
            ev.state_key,
            ev.sender,
            ev.depth,
            ev.origin_server_ts,
            item.received_ts,
            item.outlier,
            item.rejected_reason,
            item.soft_failed,
            item.replaces_state,
            item.txn_id,
            item.device_id,
            isinstance(content.get("url"), str),
            orjson.dumps(ev.data).decode(),
        ),
    )
    txn.executemany(
        "INSERT INTO event_edges (event_id, prev_event_id) VALUES (?, ?)",
        [(ev.event_id, p) for p in dict.fromkeys(ev.prev_event_ids)],
    )
    txn.executemany(
        "INSERT INTO event_auth (event_id, auth_id) VALUES (?, ?)",
        [(ev.event_id, a) for a in dict.fromkeys(ev.auth_event_ids)],
    )
    _insert_state_at_event(txn, item)


def _upgrade_outlier(txn: Txn, item: EventToPersist) -> None:
    """De-outlier: only an accepted outlier is upgraded (a rejection is final)."""
    ev = item.event
    txn.execute(
        "UPDATE events SET stream_ordering = ?, outlier = ?, rejected_reason = ?, "
        "soft_failed = ?, replaces_state = ? WHERE event_id = ? AND outlier = TRUE "
        "AND rejected_reason IS NULL",
        (
            item.stream_ordering,
            item.outlier,
            item.rejected_reason,
            item.soft_failed,
            item.replaces_state,
            ev.event_id,
        ),
    )
    if txn.rowcount != 1:
        raise OutlierGoneError(ev.event_id)
    _insert_state_at_event(txn, item)


def _insert_state_at_event(txn: Txn, item: EventToPersist) -> None:
    ev = item.event
    if item.state_group_after is not None:
        txn.execute(
            "INSERT INTO event_state_groups (event_id, room_id, state_group_before, "
            "state_group_after) VALUES (?, ?, ?, ?)",
            (ev.event_id, ev.room_id, item.state_group_before, item.state_group_after),
        )


def _insert_state_groups(txn: Txn, groups: Sequence[NewStateGroup]) -> None:
    for group in groups:
        txn.execute(
            "INSERT INTO state_groups (id, room_id, prev_group, chain_length) "
            "VALUES (?, ?, ?, ?)",
            (group.id, group.room_id, group.prev_group, group.chain_length),
        )
        txn.executemany(
            "INSERT INTO state_group_entries (state_group, type, state_key, event_id) "
            "VALUES (?, ?, ?, ?)",
            [(group.id, t, sk, eid) for (t, sk), eid in group.entries.items()],
        )


def _apply_redactions(txn: Txn, item: EventToPersist) -> list[str]:
    """Record a redaction event; mark its target, and mark this event if an earlier
    redaction already targets it (a redaction may arrive before its target)."""
    ev = item.event
    changed: list[str] = []
    if ev.type != "m.room.redaction":
        _apply_earlier_redaction(txn, item)
    if ev.type == "m.room.redaction" and item.rejected_reason is None:
        target = ev.redacts
        if target is not None:
            # An upgraded outlier redaction already has its row.
            txn.execute(
                "INSERT INTO redactions (event_id, redacts, room_id) VALUES (?, ?, ?) "
                "ON CONFLICT (event_id) DO NOTHING",
                (ev.event_id, target, ev.room_id),
            )
        if item.applies_redaction_to is not None and not item.soft_failed:
            txn.execute(
                "UPDATE events SET redacted_by = ? WHERE event_id = ? "
                "AND room_id = ? AND redacted_by IS NULL",
                (ev.event_id, item.applies_redaction_to, ev.room_id),
            )
            if txn.rowcount:
                changed.append(item.applies_redaction_to)
                delete_relation_txn(txn, item.applies_redaction_to)
                unindex_event_txn(txn, item.applies_redaction_to)
    return changed


def _apply_earlier_redaction(txn: Txn, item: EventToPersist) -> None:
    """A redaction that arrived before its target applies if it came from the target's
    own server (spec: C-S API > Redactions; the power check needs the target's room
    state, which an early redaction from another server could not have been judged by)."""
    ev = item.event
    txn.execute(
        "SELECT r.event_id, e.sender FROM redactions AS r "
        "JOIN events AS e ON e.event_id = r.event_id "
        "WHERE r.redacts = ? AND r.room_id = ? AND e.rejected_reason IS NULL "
        "AND e.soft_failed = FALSE ORDER BY e.stream_ordering LIMIT 1",
        (ev.event_id, ev.room_id),
    )
    row = txn.fetchone()
    if row is None or _domain(str(row[1])) != _domain(ev.sender):
        return
    txn.execute(
        "UPDATE events SET redacted_by = ? WHERE event_id = ?", (row[0], ev.event_id)
    )
    delete_relation_txn(txn, ev.event_id)
    unindex_event_txn(txn, ev.event_id)


def _domain(user_id: str) -> str:
    return user_id.split(":", 1)[1] if ":" in user_id else ""


def _update_current_state(txn: Txn, delta: CurrentStateDelta) -> None:
    room_id = delta.room_id
    for (etype, skey), event_id in delta.changed.items():
        txn.execute(
            "DELETE FROM current_state_events WHERE room_id = ? AND type = ? "
            "AND state_key = ?",
            (room_id, etype, skey),
        )
        if event_id is not None:
            txn.execute(
                "INSERT INTO current_state_events (room_id, type, state_key, event_id) "
                "VALUES (?, ?, ?, ?)",
                (room_id, etype, skey, event_id),
            )
        txn.execute(
            "INSERT INTO current_state_delta_stream (stream_ordering, room_id, type, "
            "state_key, event_id, prev_event_id) VALUES (?, ?, ?, ?, ?, ?)",
            (
                delta.stream_ordering,
                room_id,
                etype,
                skey,
                event_id,
                delta.previous.get((etype, skey)),
            ),
        )
    for m in delta.memberships:
        prev_membership = m.prev_membership
        if prev_membership is None:
            # Out-of-band memberships (a rejected remote invite) have no previous
            # member event in our state: what the user had is in current_memberships.
            txn.execute(
                "SELECT membership FROM current_memberships "
                "WHERE room_id = ? AND user_id = ?",
                (m.room_id, m.user_id),
            )
            row = txn.fetchone()
            prev_membership = str(row[0]) if row is not None else None
        txn.execute(
            "INSERT INTO room_memberships (room_id, user_id, stream_ordering, event_id, "
            "membership, sender, prev_membership) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                m.room_id,
                m.user_id,
                delta.stream_ordering,
                m.event_id,
                m.membership,
                m.sender,
                prev_membership,
            ),
        )
        txn.execute(
            "DELETE FROM current_memberships WHERE room_id = ? AND user_id = ?",
            (m.room_id, m.user_id),
        )
        txn.execute(
            "INSERT INTO current_memberships (room_id, user_id, membership, event_id, "
            "stream_ordering, forgotten) VALUES (?, ?, ?, ?, ?, ?)",
            (
                m.room_id,
                m.user_id,
                m.membership,
                m.event_id,
                delta.stream_ordering,
                False,
            ),
        )
