"""Registration tokens and user-interactive-auth (UIA) sessions.

Spec: Client-Server API > Authentication types > Token-authenticated registration. A
token is valid while it has not expired and `pending + completed < uses_allowed`. A UIA
session that completes the `m.login.registration_token` stage holds one *pending* use; the
use becomes *completed* when the account is created (`AccountsStore.register_user`), and
is released if the session is deleted or expires first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ranvier.core.json import decode_json, encode_json
from ranvier.storage.database import Database
from ranvier.storage.txn import Txn

JsonDict = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RegistrationTokenRow:
    token: str
    uses_allowed: int | None
    pending: int
    completed: int
    expiry_ts: int | None
    created_ts: int

    def is_valid(self, now: int) -> bool:
        if self.expiry_ts is not None and self.expiry_ts <= now:
            return False
        return (
            self.uses_allowed is None
            or self.pending + self.completed < self.uses_allowed
        )


@dataclass(frozen=True, slots=True)
class UiaSessionRow:
    session_id: str
    uri: str
    method: str
    user_id: str | None
    # stage type -> what the stage proved (e.g. the user ID for m.login.password)
    completed: JsonDict
    # Request data kept between rounds (e.g. the username and password hash of /register)
    data: JsonDict
    registration_token: str | None
    created_ts: int


class RegistrationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- registration tokens -----------------------------------------------------------

    async def create_registration_token(
        self, token: str, uses_allowed: int | None, expiry_ts: int | None, now: int
    ) -> bool:
        """False if the token already exists."""
        return await self._db.run_txn(
            "create_registration_token",
            _create_token_txn,
            token,
            uses_allowed,
            expiry_ts,
            now,
        )

    async def get_registration_token(self, token: str) -> RegistrationTokenRow | None:
        rows = await self._db.run_read_txn(
            "get_registration_token", _get_tokens_txn, token
        )
        return rows[0] if rows else None

    async def get_registration_tokens(self) -> list[RegistrationTokenRow]:
        return await self._db.run_read_txn(
            "get_registration_tokens", _get_tokens_txn, None
        )

    async def delete_registration_token(self, token: str) -> bool:
        return await self._db.run_txn(
            "delete_registration_token", _delete_token_txn, token
        )

    async def claim_registration_token(
        self, session_id: str, token: str, now: int
    ) -> bool:
        """Take a pending use of `token` for the UIA session; False if it is not valid."""
        return await self._db.run_txn(
            "claim_registration_token", _claim_token_txn, session_id, token, now
        )

    async def claim_registration_token_use(self, token: str, now: int) -> bool:
        """Take a pending use of `token` without a UIA session (the OAuth sign-up page
        registers in one request); `Registration.registration_token` completes it."""
        return await self._db.run_txn(
            "claim_registration_token_use", _claim_use_txn, token, now
        )

    async def release_registration_token(self, token: str) -> None:
        await self._db.run_txn("release_registration_token", _release_txn, token)

    # -- UIA sessions -------------------------------------------------------------------

    async def create_uia_session(self, row: UiaSessionRow) -> None:
        await self._db.run_txn("create_uia_session", _create_session_txn, row)

    async def get_uia_session(self, session_id: str) -> UiaSessionRow | None:
        return await self._db.run_read_txn(
            "get_uia_session", _get_session_txn, session_id
        )

    async def update_uia_session(
        self, session_id: str, completed: JsonDict, data: JsonDict
    ) -> None:
        await self._db.run_txn(
            "update_uia_session", _update_session_txn, session_id, completed, data
        )

    async def delete_uia_session(self, session_id: str) -> None:
        await self._db.run_txn("delete_uia_session", _delete_sessions_txn, [session_id])

    async def delete_expired_uia_sessions(self, created_before_ts: int) -> int:
        return await self._db.run_txn(
            "delete_expired_uia_sessions", _delete_expired_txn, created_before_ts
        )


def _create_token_txn(
    txn: Txn, token: str, uses_allowed: int | None, expiry_ts: int | None, now: int
) -> bool:
    txn.execute(
        "INSERT INTO registration_tokens (token, uses_allowed, expiry_ts, created_ts)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (token) DO NOTHING",
        (token, uses_allowed, expiry_ts, now),
    )
    return txn.rowcount == 1


def _get_tokens_txn(txn: Txn, token: str | None) -> list[RegistrationTokenRow]:
    sql = (
        "SELECT token, uses_allowed, pending, completed, expiry_ts, created_ts"
        " FROM registration_tokens"
    )
    if token is None:
        txn.execute(sql + " ORDER BY created_ts, token")
    else:
        txn.execute(sql + " WHERE token = ?", (token,))
    return [
        RegistrationTokenRow(
            token=str(r[0]),
            uses_allowed=None if r[1] is None else int(r[1]),
            pending=int(r[2]),
            completed=int(r[3]),
            expiry_ts=None if r[4] is None else int(r[4]),
            created_ts=int(r[5]),
        )
        for r in txn.fetchall()
    ]


def _delete_token_txn(txn: Txn, token: str) -> bool:
    txn.execute("DELETE FROM registration_tokens WHERE token = ?", (token,))
    deleted = txn.rowcount == 1
    # Sessions holding it can no longer complete registration with it.
    txn.execute(
        "UPDATE uia_sessions SET registration_token = NULL WHERE registration_token = ?",
        (token,),
    )
    return deleted


def _claim_token_txn(txn: Txn, session_id: str, token: str, now: int) -> bool:
    txn.execute(
        "SELECT registration_token FROM uia_sessions WHERE session_id = ?"
        + txn.engine.for_update,
        (session_id,),
    )
    row = txn.fetchone()
    if row is None:
        return False
    if row[0] == token:
        return True
    if row[0] is not None:
        _release_txn(txn, str(row[0]))
    # One conditional UPDATE both checks validity and counts the use, so concurrent
    # sessions cannot overdraw `uses_allowed`.
    txn.execute(
        "UPDATE registration_tokens SET pending = pending + 1 WHERE token = ?"
        " AND (uses_allowed IS NULL OR pending + completed < uses_allowed)"
        " AND (expiry_ts IS NULL OR expiry_ts > ?)",
        (token, now),
    )
    claimed = txn.rowcount == 1
    txn.execute(
        "UPDATE uia_sessions SET registration_token = ? WHERE session_id = ?",
        (token if claimed else None, session_id),
    )
    return claimed


def _claim_use_txn(txn: Txn, token: str, now: int) -> bool:
    txn.execute(
        "UPDATE registration_tokens SET pending = pending + 1 WHERE token = ?"
        " AND (uses_allowed IS NULL OR pending + completed < uses_allowed)"
        " AND (expiry_ts IS NULL OR expiry_ts > ?)",
        (token, now),
    )
    return txn.rowcount == 1


def _release_txn(txn: Txn, token: str) -> None:
    txn.execute(
        "UPDATE registration_tokens SET pending = pending - 1 WHERE token = ? AND pending > 0",
        (token,),
    )


def _create_session_txn(txn: Txn, row: UiaSessionRow) -> None:
    txn.execute(
        "INSERT INTO uia_sessions (session_id, uri, method, user_id, completed, data,"
        " registration_token, created_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            row.session_id,
            row.uri,
            row.method,
            row.user_id,
            encode_json(row.completed).decode(),
            encode_json(row.data).decode(),
            row.registration_token,
            row.created_ts,
        ),
    )


def _json_object(text: Any) -> JsonDict:
    value = decode_json(str(text))
    return value if isinstance(value, dict) else {}


def _get_session_txn(txn: Txn, session_id: str) -> UiaSessionRow | None:
    txn.execute(
        "SELECT session_id, uri, method, user_id, completed, data, registration_token,"
        " created_ts FROM uia_sessions WHERE session_id = ?",
        (session_id,),
    )
    r = txn.fetchone()
    if r is None:
        return None
    return UiaSessionRow(
        session_id=str(r[0]),
        uri=str(r[1]),
        method=str(r[2]),
        user_id=None if r[3] is None else str(r[3]),
        completed=_json_object(r[4]),
        data=_json_object(r[5]),
        registration_token=None if r[6] is None else str(r[6]),
        created_ts=int(r[7]),
    )


def _update_session_txn(
    txn: Txn, session_id: str, completed: JsonDict, data: JsonDict
) -> None:
    txn.execute(
        "UPDATE uia_sessions SET completed = ?, data = ? WHERE session_id = ?",
        (encode_json(completed).decode(), encode_json(data).decode(), session_id),
    )


def _delete_sessions_txn(txn: Txn, session_ids: list[str]) -> int:
    if not session_ids:
        return 0
    cond, params = txn.in_list("session_id", session_ids)
    txn.execute(
        f"SELECT registration_token FROM uia_sessions WHERE {cond}"
        " AND registration_token IS NOT NULL",
        params,
    )
    for (token,) in txn.fetchall():
        _release_txn(txn, str(token))
    txn.execute(f"DELETE FROM uia_sessions WHERE {cond}", params)
    return txn.rowcount


def _delete_expired_txn(txn: Txn, created_before_ts: int) -> int:
    txn.execute(
        "SELECT session_id FROM uia_sessions WHERE created_ts < ?", (created_before_ts,)
    )
    return _delete_sessions_txn(txn, [str(r[0]) for r in txn.fetchall()])
