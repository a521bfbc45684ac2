"""Push rules and push actions (schema 0008), and the push evaluator's position in the
events stream (schema 0013).

* `push_rules`: one JSON document per user (`core.push.ruleset.UserRules`), changed by
  read-modify-write under a row lock.
* `event_push_actions`: one row per (user, event) an event notifies. Unread counts are
  the rows after the user's read receipts: an unthreaded receipt covers every thread, a
  threaded one (`main` or a thread root) only its thread (spec: Receipts > Threaded read
  receipts). Counting joins the `receipts` table in the same transaction, batched over
  all the rooms a sync asks about.
* `push_stream_positions`: how far the events stream has been evaluated, written with
  the actions it covers (`add_push_actions(rows, position)`), so a restart evaluates the
  events after it (`get_events_to_evaluate`). Rows are keyed by (user, event): writing an
  event's actions again changes nothing, so replaying never double-counts.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ranvier.core.json import decode_json, encode_json
from ranvier.storage.database import Database
from ranvier.storage.stores.event_rows import (
    EVENT_COLUMNS,
    StoredEvent,
    row_to_stored_event,
)
from ranvier.storage.txn import Txn

JsonDict = dict[str, Any]

MAIN_THREAD = "main"
_READ_TYPES = "('m.read', 'm.read.private')"
_HIGHLIGHTS = "SUM(CASE WHEN highlight THEN 1 ELSE 0 END)"


@dataclass(frozen=True, slots=True)
class PushActionRow:
    user_id: str
    room_id: str
    event_id: str
    stream_ordering: int
    thread_id: str
    actions: tuple[Any, ...]
    highlight: bool
    received_ts: int


@dataclass(frozen=True, slots=True)
class Counts:
    notifications: int = 0
    highlights: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.notifications + other.notifications, self.highlights + other.highlights
        )

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            self.notifications - other.notifications, self.highlights - other.highlights
        )


@dataclass(slots=True)
class RoomCounts:
    """Unread notifications of one room, per thread (`main` for the main timeline)."""

    threads: dict[str, Counts] = field(default_factory=dict)

    def total(self) -> Counts:
        out = Counts()
        for c in self.threads.values():
            out = out + c
        return out


@dataclass(frozen=True, slots=True)
class NotificationRow:
    row: PushActionRow
    read: bool


@dataclass(frozen=True, slots=True)
class ReadThresholds:
    """A user's read positions in one room: unthreaded, and per thread."""

    unthreaded: int = 0
    threads: Mapping[str, int] = field(default_factory=dict)

    def is_read(self, thread_id: str, stream_ordering: int) -> bool:
        return stream_ordering <= max(self.unthreaded, self.threads.get(thread_id, 0))


def _row(r: tuple[Any, ...]) -> PushActionRow:
    actions = decode_json(r[5])
    return PushActionRow(
        user_id=str(r[0]),
        room_id=str(r[1]),
        event_id=str(r[2]),
        stream_ordering=int(r[3]),
        thread_id=str(r[4]),
        actions=tuple(actions) if isinstance(actions, list) else (),
        highlight=bool(r[6]),
        received_ts=int(r[7]),
    )


_ROW_COLUMNS = (
    "user_id, room_id, event_id, stream_ordering, thread_id, actions, highlight,"
    " received_ts"
)


class PushStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- rules -------------------------------------------------------------------------
    async def get_push_rules(self, user_ids: Collection[str]) -> dict[str, JsonDict]:
        """The stored rules document of each user that has one."""
        if not user_ids:
            return {}
        return await self._db.run_read_txn(
            "get_push_rules", _get_rules_txn, list(user_ids)
        )

    async def update_push_rules(
        self, user_id: str, update: Callable[[JsonDict], JsonDict]
    ) -> JsonDict:
        """Read-modify-write the user's document ({} if none); returns the new one.
        `update` may raise to abort (nothing is written)."""
        return await self._db.run_txn(
            "update_push_rules", _update_rules_txn, user_id, update
        )

    # -- actions -----------------------------------------------------------------------
    async def add_push_actions(
        self, rows: Sequence[PushActionRow], position: int | None = None
    ) -> None:
        """Store `rows` (an existing (user, event) row is kept) and, in the same
        transaction, `position` as the evaluated events-stream position."""
        if rows or position is not None:
            await self._db.run_txn(
                "add_push_actions", _add_actions_txn, list(rows), position
            )

    async def get_evaluated_position(self) -> int | None:
        """The events-stream position up to which every event has been evaluated."""
        return await self._db.run_read_txn(
            "get_push_evaluated_position", _get_position_txn
        )

    async def get_events_to_evaluate(
        self, after: int, upto: int, limit: int
    ) -> tuple[list[StoredEvent], int]:
        """The events the pipeline hands to the evaluator with `after < stream_ordering
        <= upto` (accepted timeline events and out-of-band invites), oldest first,
        scanning at most `limit` rows; with the position scanned up to (`upto` when
        done)."""
        return await self._db.run_read_txn(
            "get_events_to_evaluate", _events_to_evaluate_txn, after, upto, limit
        )

    async def get_notification_counts(
        self, user_id: str, floors: Mapping[str, int], to_pos: int
    ) -> dict[str, RoomCounts]:
        """Per room: unread notifications in (max(floor, read receipts), to_pos]."""
        if not floors:
            return {}
        return await self._db.run_read_txn(
            "get_notification_counts", _counts_txn, user_id, dict(floors), to_pos
        )

    async def get_total_unread(self, user_id: str) -> int:
        """Unread notifications across every room the user is joined to (badges)."""
        return await self._db.run_read_txn(
            "get_total_unread_notifications", _total_unread_txn, user_id
        )

    async def get_unread_after(
        self, user_id: str, after: int, limit: int
    ) -> tuple[list[PushActionRow], int]:
        """Unread notifications after `after` (oldest first, at most `limit`), and the
        last position examined (read rows are skipped, not returned)."""
        return await self._db.run_read_txn(
            "get_unread_push_actions", _unread_after_txn, user_id, after, limit
        )

    async def get_notifications(
        self, user_id: str, before: int | None, limit: int, only_highlight: bool
    ) -> list[NotificationRow]:
        """Newest first, for `GET /notifications`."""
        return await self._db.run_read_txn(
            "get_notifications",
            _notifications_txn,
            user_id,
            before,
            limit,
            only_highlight,
        )

    async def delete_push_actions_before(self, received_ts: int, limit: int) -> int:
        return await self._db.run_txn(
            "delete_old_push_actions", _delete_old_txn, received_ts, limit
        )


# -- transaction functions ------------------------------------------------------------


def _decode_obj(text: str) -> JsonDict:
    value = decode_json(text)
    return value if isinstance(value, dict) else {}


def _get_rules_txn(txn: Txn, user_ids: list[str]) -> dict[str, JsonDict]:
    cond, params = txn.in_list("user_id", user_ids)
    txn.execute(f"SELECT user_id, rules_json FROM push_rules WHERE {cond}", params)
    return {str(r[0]): _decode_obj(r[1]) for r in txn.fetchall()}


def _update_rules_txn(
    txn: Txn, user_id: str, update: Callable[[JsonDict], JsonDict]
) -> JsonDict:
    txn.execute(
        "SELECT rules_json FROM push_rules WHERE user_id = ?" + txn.engine.for_update,
        (user_id,),
    )
    row = txn.fetchone()
    new = update(_decode_obj(row[0]) if row else {})
    txn.execute(
        "INSERT INTO push_rules (user_id, rules_json) VALUES (?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET rules_json = excluded.rules_json",
        (user_id, encode_json(new).decode()),
    )
    return new


_STREAM = "events"


def _get_position_txn(txn: Txn) -> int | None:
    txn.execute(
        "SELECT stream_position FROM push_stream_positions WHERE stream_name = ?",
        (_STREAM,),
    )
    row = txn.fetchone()
    return int(row[0]) if row is not None else None


def _events_to_evaluate_txn(
    txn: Txn, after: int, upto: int, limit: int
) -> tuple[list[StoredEvent], int]:
    # The same events as the pipeline's `_notify`: outliers only for invites (checked
    # on the decoded event; the type narrows the scan).
    txn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events AS e"
        " WHERE e.stream_ordering > ? AND e.stream_ordering <= ?"
        " AND e.rejected_reason IS NULL AND e.soft_failed = FALSE"
        " AND (e.outlier = FALSE OR e.type = 'm.room.member')"
        " ORDER BY e.stream_ordering LIMIT ?",
        (after, upto, limit),
    )
    rows = txn.fetchall()
    stored = [row_to_stored_event(r) for r in rows]
    events = [s for s in stored if not s.outlier or s.event.membership == "invite"]
    scanned = int(rows[-1][0]) if len(rows) == limit else upto
    return events, scanned


def _add_actions_txn(txn: Txn, rows: list[PushActionRow], position: int | None) -> None:
    if position is not None:
        txn.execute(
            "INSERT INTO push_stream_positions (stream_name, stream_position)"
            " VALUES (?, ?) ON CONFLICT (stream_name) DO UPDATE"
            " SET stream_position = excluded.stream_position",
            (_STREAM, position),
        )
    if not rows:
        return
    txn.executemany(
        f"INSERT INTO event_push_actions ({_ROW_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [
            (
                r.user_id,
                r.room_id,
                r.event_id,
                r.stream_ordering,
                r.thread_id,
                encode_json(list(r.actions)).decode(),
                r.highlight,
                r.received_ts,
            )
            for r in rows
        ],
    )


def _thresholds_txn(
    txn: Txn, user_id: str, room_ids: Collection[str]
) -> dict[str, ReadThresholds]:
    if not room_ids:
        return {}
    cond, params = txn.in_list("room_id", room_ids)
    txn.execute(
        "SELECT room_id, thread_id, MAX(event_stream_ordering) FROM receipts"
        f" WHERE user_id = ? AND {cond} AND receipt_type IN {_READ_TYPES}"
        " GROUP BY room_id, thread_id",
        (user_id, *params),
    )
    unthreaded: dict[str, int] = {}
    threads: dict[str, dict[str, int]] = {}
    for room_id, thread_id, pos in txn.fetchall():
        if thread_id:
            threads.setdefault(str(room_id), {})[str(thread_id)] = int(pos)
        else:
            unthreaded[str(room_id)] = int(pos)
    return {
        r: ReadThresholds(unthreaded.get(r, 0), threads.get(r, {}))
        for r in set(unthreaded) | set(threads)
    }


_COUNT_SQL = (
    f"SELECT thread_id, COUNT(*), {_HIGHLIGHTS} FROM event_push_actions"
    " WHERE user_id = ? AND room_id = ? AND stream_ordering > ? AND stream_ordering <= ?"
)


def _room_counts(
    txn: Txn, user_id: str, room_id: str, base: int, to_pos: int, read: ReadThresholds
) -> RoomCounts:
    out = RoomCounts()
    if to_pos <= base:
        return out
    txn.execute(_COUNT_SQL + " GROUP BY thread_id", (user_id, room_id, base, to_pos))
    for thread_id, n, h in txn.fetchall():
        out.threads[str(thread_id)] = Counts(int(n), int(h or 0))
    # A thread read further than the room-wide receipt: drop what it has read.
    for thread_id, pos in read.threads.items():
        if pos <= base or thread_id not in out.threads:
            continue
        txn.execute(
            _COUNT_SQL + " AND thread_id = ? GROUP BY thread_id",
            (user_id, room_id, base, min(pos, to_pos), thread_id),
        )
        row = txn.fetchone()
        if row is not None:
            out.threads[thread_id] = out.threads[thread_id] - Counts(
                int(row[1]), int(row[2] or 0)
            )
    return out


def _counts_txn(
    txn: Txn, user_id: str, floors: dict[str, int], to_pos: int
) -> dict[str, RoomCounts]:
    thresholds = _thresholds_txn(txn, user_id, list(floors))
    out: dict[str, RoomCounts] = {}
    for room_id, floor in floors.items():
        read = thresholds.get(room_id, ReadThresholds())
        base = max(floor, read.unthreaded)
        out[room_id] = _room_counts(txn, user_id, room_id, base, to_pos, read)
    return out


def _total_unread_txn(txn: Txn, user_id: str) -> int:
    txn.execute(
        "SELECT room_id, stream_ordering FROM current_memberships"
        " WHERE user_id = ? AND membership = 'join'",
        (user_id,),
    )
    floors = {str(r[0]): int(r[1]) for r in txn.fetchall()}
    txn.execute(
        "SELECT MAX(stream_ordering) FROM event_push_actions WHERE user_id = ?",
        (user_id,),
    )
    row = txn.fetchone()
    to_pos = int(row[0]) if row and row[0] is not None else 0
    counts = _counts_txn(txn, user_id, floors, to_pos)
    return sum(c.total().notifications for c in counts.values())


def _unread_after_txn(
    txn: Txn, user_id: str, after: int, limit: int
) -> tuple[list[PushActionRow], int]:
    txn.execute(
        f"SELECT {_ROW_COLUMNS} FROM event_push_actions"
        " WHERE user_id = ? AND stream_ordering > ? ORDER BY stream_ordering LIMIT ?",
        (user_id, after, limit),
    )
    rows = [_row(r) for r in txn.fetchall()]
    if not rows:
        return [], after
    thresholds = _thresholds_txn(txn, user_id, {r.room_id for r in rows})
    unread = [
        r
        for r in rows
        if not thresholds.get(r.room_id, ReadThresholds()).is_read(
            r.thread_id, r.stream_ordering
        )
    ]
    return unread, rows[-1].stream_ordering


def _notifications_txn(
    txn: Txn, user_id: str, before: int | None, limit: int, only_highlight: bool
) -> list[NotificationRow]:
    sql = f"SELECT {_ROW_COLUMNS} FROM event_push_actions WHERE user_id = ?"
    params: list[Any] = [user_id]
    if before is not None:
        sql += " AND stream_ordering < ?"
        params.append(before)
    if only_highlight:
        sql += " AND highlight = ?"
        params.append(True)
    txn.execute(sql + " ORDER BY stream_ordering DESC LIMIT ?", (*params, limit))
    rows = [_row(r) for r in txn.fetchall()]
    thresholds = _thresholds_txn(txn, user_id, {r.room_id for r in rows})
    return [
        NotificationRow(
            r,
            thresholds.get(r.room_id, ReadThresholds()).is_read(
                r.thread_id, r.stream_ordering
            ),
        )
        for r in rows
    ]


def _delete_old_txn(txn: Txn, received_ts: int, limit: int) -> int:
    txn.execute(
        "DELETE FROM event_push_actions WHERE event_id IN ("
        " SELECT event_id FROM event_push_actions WHERE received_ts < ? LIMIT ?)"
        " AND received_ts < ?",
        (received_ts, limit, received_ts),
    )
    return txn.rowcount
