"""Reads and writes of the server admin API (api/admin/): user listing with Synapse's
filters and ordering, account flags (locked, suspended, shadow-banned), sessions for
`whois` and joined rooms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from ranvier.storage.database import Database
from ranvier.storage.txn import Txn


@dataclass(frozen=True, slots=True)
class AdminUserRow:
    user_id: str
    is_guest: bool
    is_admin: bool
    deactivated: bool
    created_ts: int
    locked: bool
    suspended: bool
    shadow_banned: bool
    erased: bool
    displayname: str | None
    avatar_url: str | None
    last_seen_ts: int | None


@dataclass(frozen=True, slots=True)
class UserQuery:
    """`GET /_synapse/admin/v2/users` parameters, already validated."""

    start: int = 0
    limit: int = 100
    user_id: str | None = None
    name: str | None = None
    guests: bool = True
    # "none": active accounts only; "any": both; "only": deactivated ones only.
    deactivated: str = "none"
    admins: bool | None = None
    order_by: str = "name"
    forwards: bool = True


@dataclass(frozen=True, slots=True)
class SessionRow:
    device_id: str
    ip: str | None
    last_seen_ts: int | None
    user_agent: str | None


# Synapse's `order_by` values, to the SQL each sorts on (ties: by user ID).
ORDER_COLUMNS: Final[dict[str, str]] = {
    "name": "u.user_id",
    "is_guest": "u.is_guest",
    "admin": "u.is_admin",
    "user_type": "u.user_id",
    "deactivated": "u.deactivated",
    "shadow_banned": "u.shadow_banned",
    "displayname": "dn.value",
    "avatar_url": "av.value",
    "creation_ts": "u.created_ts",
    "last_seen_ts": "seen.ts",
    "locked": "u.locked",
}

_SELECT: Final = (
    "SELECT u.user_id, u.is_guest, u.is_admin, u.deactivated, u.created_ts, u.locked,"
    " u.suspended, u.shadow_banned, (e.user_id IS NOT NULL), dn.value, av.value, seen.ts"
    " FROM users u"
    " LEFT JOIN erased_users e ON e.user_id = u.user_id"
    " LEFT JOIN profile_fields dn ON dn.user_id = u.user_id AND dn.field = 'displayname'"
    " LEFT JOIN profile_fields av ON av.user_id = u.user_id AND av.field = 'avatar_url'"
    " LEFT JOIN (SELECT user_id, MAX(last_seen_ts) AS ts FROM devices GROUP BY user_id)"
    " seen ON seen.user_id = u.user_id"
)


def _profile_str(raw: Any) -> str | None:
    if raw is None:
        return None
    value = orjson.loads(str(raw))
    return value if isinstance(value, str) else None


def _row(r: tuple[Any, ...]) -> AdminUserRow:
    return AdminUserRow(
        user_id=str(r[0]),
        is_guest=bool(r[1]),
        is_admin=bool(r[2]),
        deactivated=bool(r[3]),
        created_ts=int(r[4]),
        locked=bool(r[5]),
        suspended=bool(r[6]),
        shadow_banned=bool(r[7]),
        erased=bool(r[8]),
        displayname=_profile_str(r[9]),
        avatar_url=_profile_str(r[10]),
        last_seen_ts=None if r[11] is None else int(r[11]),
    )


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _list_users_txn(txn: Txn, query: UserQuery) -> tuple[list[AdminUserRow], int]:
    where: list[str] = []
    params: list[Any] = []
    if query.name is not None:
        where.append(
            "(LOWER(u.user_id) LIKE ? ESCAPE '\\' OR LOWER(dn.value) LIKE ? ESCAPE '\\')"
        )
        params += [_like(query.name), _like(query.name)]
    elif query.user_id is not None:
        where.append("LOWER(u.user_id) LIKE ? ESCAPE '\\'")
        params.append(_like(query.user_id))
    if not query.guests:
        where.append("NOT u.is_guest")
    if query.deactivated == "none":
        where.append("NOT u.deactivated")
    elif query.deactivated == "only":
        where.append("u.deactivated")
    if query.admins is not None:
        where.append("u.is_admin" if query.admins else "NOT u.is_admin")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    direction = "ASC" if query.forwards else "DESC"
    column = ORDER_COLUMNS[query.order_by]
    # NULLs sort as the smallest value on both engines (SQLite's default).
    nulls = "NULLS FIRST" if query.forwards else "NULLS LAST"
    txn.execute(
        f"{_SELECT}{clause} ORDER BY {column} {direction} {nulls},"
        f" u.user_id {direction} LIMIT ? OFFSET ?",
        (*params, query.limit, query.start),
    )
    rows = [_row(r) for r in txn.fetchall()]
    txn.execute(
        "SELECT COUNT(*) FROM users u LEFT JOIN profile_fields dn"
        f" ON dn.user_id = u.user_id AND dn.field = 'displayname'{clause}",
        tuple(params),
    )
    count = txn.fetchone()
    return rows, int(count[0]) if count else 0


def _get_user_txn(txn: Txn, user_id: str) -> AdminUserRow | None:
    txn.execute(f"{_SELECT} WHERE u.user_id = ?", (user_id,))
    r = txn.fetchone()
    return None if r is None else _row(r)


_FLAGS: Final = frozenset({"locked", "suspended", "shadow_banned"})


def _set_flag_txn(txn: Txn, user_id: str, flag: str, value: bool) -> bool:
    if flag not in _FLAGS:
        raise ValueError(flag)
    txn.execute(f"UPDATE users SET {flag} = ? WHERE user_id = ?", (value, user_id))
    return txn.rowcount == 1


def _get_sessions_txn(txn: Txn, user_id: str) -> list[SessionRow]:
    txn.execute(
        "SELECT device_id, last_seen_ip, last_seen_ts FROM devices WHERE user_id = ?"
        " ORDER BY device_id",
        (user_id,),
    )
    return [
        SessionRow(
            str(r[0]),
            None if r[1] is None else str(r[1]),
            None if r[2] is None else int(r[2]),
            None,
        )
        for r in txn.fetchall()
    ]


def _reactivate_txn(txn: Txn, user_id: str) -> None:
    txn.execute("UPDATE users SET deactivated = FALSE WHERE user_id = ?", (user_id,))
    txn.execute("DELETE FROM erased_users WHERE user_id = ?", (user_id,))


def _account_data_txn(txn: Txn, user_id: str) -> list[tuple[str, str, Any]]:
    txn.execute(
        "SELECT room_id, data_type, content FROM account_data WHERE user_id = ?"
        " ORDER BY room_id, data_type",
        (user_id,),
    )
    return [(str(r[0]), str(r[1]), orjson.loads(str(r[2]))) for r in txn.fetchall()]


@dataclass(frozen=True, slots=True)
class DestinationRow:
    destination: str
    failure_ts: int | None
    retry_last_ts: int
    retry_interval_ms: int


def _destinations_txn(txn: Txn) -> list[DestinationRow]:
    txn.execute(
        "SELECT destination, failure_ts, retry_last_ts, retry_interval_ms"
        " FROM federation_destination_retry"
    )
    out = {
        str(r[0]): DestinationRow(str(r[0]), int(r[1]), int(r[2]), int(r[3]))
        for r in txn.fetchall()
    }
    # Destinations with queued PDUs but no failure yet.
    txn.execute("SELECT DISTINCT destination FROM federation_destination_pdus")
    for r in txn.fetchall():
        out.setdefault(str(r[0]), DestinationRow(str(r[0]), None, 0, 0))
    return list(out.values())


_UNCHANGED: Final = object()


def _update_token_txn(txn: Txn, token: str, uses_allowed: Any, expiry_ts: Any) -> bool:
    sets: list[str] = []
    params: list[Any] = []
    if uses_allowed is not _UNCHANGED:
        sets.append("uses_allowed = ?")
        params.append(uses_allowed)
    if expiry_ts is not _UNCHANGED:
        sets.append("expiry_ts = ?")
        params.append(expiry_ts)
    if not sets:
        txn.execute("SELECT 1 FROM registration_tokens WHERE token = ?", (token,))
        return txn.fetchone() is not None
    txn.execute(
        f"UPDATE registration_tokens SET {', '.join(sets)} WHERE token = ?",
        (*params, token),
    )
    return txn.rowcount == 1


def _get_flags_txn(txn: Txn, user_id: str) -> tuple[bool, bool] | None:
    txn.execute("SELECT locked, suspended FROM users WHERE user_id = ?", (user_id,))
    r = txn.fetchone()
    return None if r is None else (bool(r[0]), bool(r[1]))


class AdminStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_users(self, query: UserQuery) -> tuple[list[AdminUserRow], int]:
        return await self._db.run_read_txn("admin_list_users", _list_users_txn, query)

    async def get_user(self, user_id: str) -> AdminUserRow | None:
        return await self._db.run_read_txn("admin_get_user", _get_user_txn, user_id)

    async def set_user_flag(self, user_id: str, flag: str, value: bool) -> bool:
        return await self._db.run_txn(
            "admin_set_user_flag", _set_flag_txn, user_id, flag, value
        )

    async def get_sessions(self, user_id: str) -> list[SessionRow]:
        return await self._db.run_read_txn(
            "admin_get_sessions", _get_sessions_txn, user_id
        )

    async def reactivate_user(self, user_id: str) -> None:
        await self._db.run_txn("admin_reactivate_user", _reactivate_txn, user_id)

    async def get_account_data(self, user_id: str) -> list[tuple[str, str, Any]]:
        """(room ID, "" for global; type; content) of every entry of the user."""
        return await self._db.run_read_txn(
            "admin_account_data", _account_data_txn, user_id
        )

    async def get_destinations(self) -> list[DestinationRow]:
        return await self._db.run_read_txn("admin_destinations", _destinations_txn)

    async def update_registration_token(
        self,
        token: str,
        *,
        uses_allowed: object = _UNCHANGED,
        expiry_ts: object = _UNCHANGED,
    ) -> bool:
        """Change the given fields (None clears a limit); False for an unknown token."""
        return await self._db.run_txn(
            "admin_update_registration_token",
            _update_token_txn,
            token,
            uses_allowed,
            expiry_ts,
        )

    async def get_lock_flags(self, user_id: str) -> tuple[bool, bool] | None:
        """(locked, suspended), None for an unknown user."""
        return await self._db.run_read_txn(
            "get_user_lock_flags", _get_flags_txn, user_id
        )


# -- event reports ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventReportRow:
    report_id: str
    received_ts: int
    room_id: str
    event_id: str
    reporter: str
    reason: str | None
    score: int | None
    sender: str | None
    event_json: str | None


_REPORT_SELECT: Final = (
    "SELECT r.report_id, r.received_ts, r.room_id, r.event_id, r.reporter, r.reason,"
    " r.score, e.sender, e.json FROM reports r"
    " LEFT JOIN events e ON e.event_id = r.event_id"
)


def _report_row(r: tuple[Any, ...]) -> EventReportRow:
    return EventReportRow(
        report_id=str(r[0]),
        received_ts=int(r[1]),
        room_id=str(r[2]),
        event_id=str(r[3]),
        reporter=str(r[4]),
        reason=None if r[5] is None else str(r[5]),
        score=None if r[6] is None else int(r[6]),
        sender=None if r[7] is None else str(r[7]),
        event_json=None if r[8] is None else str(r[8]),
    )


@dataclass(frozen=True, slots=True)
class ReportQuery:
    start: int = 0
    limit: int = 100
    forwards: bool = False
    user_id: str | None = None
    room_id: str | None = None


def _list_reports_txn(txn: Txn, query: ReportQuery) -> tuple[list[EventReportRow], int]:
    # Synapse's event reports: reports of an event (room and user reports are not).
    where = ["r.event_id IS NOT NULL"]
    params: list[Any] = []
    if query.user_id is not None:
        where.append("LOWER(r.reporter) LIKE ? ESCAPE '\\'")
        params.append(_like(query.user_id))
    if query.room_id is not None:
        where.append("LOWER(r.room_id) LIKE ? ESCAPE '\\'")
        params.append(_like(query.room_id))
    clause = " WHERE " + " AND ".join(where)
    direction = "ASC" if query.forwards else "DESC"
    txn.execute(
        f"{_REPORT_SELECT}{clause} ORDER BY r.received_ts {direction},"
        f" r.report_id {direction} LIMIT ? OFFSET ?",
        (*params, query.limit, query.start),
    )
    rows = [_report_row(r) for r in txn.fetchall()]
    txn.execute(f"SELECT COUNT(*) FROM reports r{clause}", tuple(params))
    count = txn.fetchone()
    return rows, int(count[0]) if count else 0


def _get_report_txn(txn: Txn, report_id: str) -> EventReportRow | None:
    txn.execute(
        f"{_REPORT_SELECT} WHERE r.report_id = ? AND r.event_id IS NOT NULL",
        (report_id,),
    )
    r = txn.fetchone()
    return None if r is None else _report_row(r)


def _delete_report_txn(txn: Txn, report_id: str) -> bool:
    txn.execute(
        "DELETE FROM reports WHERE report_id = ? AND event_id IS NOT NULL",
        (report_id,),
    )
    return txn.rowcount == 1


class ReportAdminStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_event_reports(
        self, query: ReportQuery
    ) -> tuple[list[EventReportRow], int]:
        return await self._db.run_read_txn(
            "admin_list_event_reports", _list_reports_txn, query
        )

    async def get_event_report(self, report_id: str) -> EventReportRow | None:
        return await self._db.run_read_txn(
            "admin_get_event_report", _get_report_txn, report_id
        )

    async def delete_event_report(self, report_id: str) -> bool:
        return await self._db.run_txn(
            "admin_delete_event_report", _delete_report_txn, report_id
        )
