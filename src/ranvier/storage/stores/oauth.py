"""The OAuth 2.0 authorization server's rows: clients, authorization requests and codes,
sessions with rotating refresh tokens, device grants and browser sessions.

Secrets arrive here already hashed (sha256), like access tokens in `stores/accounts.py`.
An OAuth session's access token is an ordinary `access_tokens` row (with `expires_ts`
and no `refresh_token_id`), so the Client-Server API resolves it like any other; this
store writes those rows and the device itself inside the same transaction as the
session, so a login is all-or-nothing. A session is over once its current access token
row is gone: `/logout` and device deletion delete it through the accounts store, and
the next refresh then fails.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ranvier.storage.database import Database
from ranvier.storage.txn import Txn


@dataclass(frozen=True, slots=True)
class ClientRow:
    client_id: str
    metadata: str
    created_ts: int


@dataclass(frozen=True, slots=True)
class AuthorizationRequestRow:
    request_id: str
    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    response_mode: str
    code_challenge: str
    prompt: str | None
    created_ts: int
    expires_ts: int
    user_id: str | None = None
    code_expires_ts: int | None = None
    exchanged_session_id: str | None = None


@dataclass(frozen=True, slots=True)
class NewSession:
    """A grant to store: the session, its device, first access and refresh token."""

    session_id: str
    client_id: str
    user_id: str
    device_id: str
    scope: str
    access_token_hash: str
    access_expires_ts: int
    refresh_token_hash: str
    client_ip: str | None
    now: int
    # For a new device: the client's name, as the sessions list shows it.
    device_display_name: str | None = None


@dataclass(frozen=True, slots=True)
class SessionRow:
    session_id: str
    client_id: str
    user_id: str
    device_id: str
    scope: str


class RefreshStatus(enum.Enum):
    OK = "ok"
    UNKNOWN = "unknown"
    # A rotated-away token was presented again: the session was ended.
    REUSED = "reused"
    # The session ended meanwhile (logout, device deleted).
    ENDED = "ended"
    WRONG_CLIENT = "wrong_client"


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    status: RefreshStatus
    session: SessionRow | None = None


@dataclass(frozen=True, slots=True)
class DeviceGrantRow:
    user_code: str
    client_id: str
    scope: str
    status: str
    user_id: str | None
    last_poll_ts: int | None
    created_ts: int
    expires_ts: int


class OAuthStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- clients -------------------------------------------------------------------------

    async def create_client(self, client_id: str, metadata: str, now: int) -> None:
        await self._db.run_txn(
            "oauth_create_client", _create_client_txn, client_id, metadata, now
        )

    async def get_client(self, client_id: str) -> ClientRow | None:
        return await self._db.run_read_txn(
            "oauth_get_client", _get_client_txn, client_id
        )

    # -- authorization requests and codes ------------------------------------------------

    async def create_authorization_request(self, row: AuthorizationRequestRow) -> None:
        await self._db.run_txn("oauth_create_auth_request", _create_request_txn, row)

    async def get_authorization_request(
        self, request_id: str, now: int
    ) -> AuthorizationRequestRow | None:
        return await self._db.run_read_txn(
            "oauth_get_auth_request", _get_request_txn, request_id, now
        )

    async def set_authorization_code(
        self, request_id: str, user_id: str, code_hash: str, code_expires_ts: int
    ) -> bool:
        """Attach the code on consent; False if the request already has one."""
        return await self._db.run_txn(
            "oauth_set_code", _set_code_txn, request_id, user_id, code_hash,
            code_expires_ts,
        )  # fmt: skip

    async def delete_authorization_request(self, request_id: str) -> None:
        await self._db.run_txn(
            "oauth_delete_auth_request", _delete_request_txn, request_id
        )

    async def redeem_code(
        self, code_hash: str, new_session_id: str
    ) -> AuthorizationRequestRow | None:
        """The request holding `code_hash`, as it was before this call; a first
        redemption records `new_session_id` on it (so later ones are replays)."""
        return await self._db.run_txn(
            "oauth_redeem_code", _redeem_code_txn, code_hash, new_session_id
        )

    # -- sessions and tokens -------------------------------------------------------------

    async def create_session(self, new: NewSession) -> list[str]:
        """Store the grant; returns IDs of this user's OAuth sessions it replaced on the
        same device (their tokens are revoked, the device is kept)."""
        return await self._db.run_txn("oauth_create_session", _create_session_txn, new)

    async def get_session(self, session_id: str) -> SessionRow | None:
        return await self._db.run_read_txn(
            "oauth_get_session", _get_session_txn, session_id
        )

    async def refresh(
        self,
        refresh_token_hash: str,
        client_id: str,
        new_access_hash: str,
        access_expires_ts: int,
        new_refresh_hash: str,
        now: int,
    ) -> RefreshOutcome:
        return await self._db.run_txn(
            "oauth_refresh", _refresh_txn, refresh_token_hash, client_id,
            new_access_hash, access_expires_ts, new_refresh_hash, now,
        )  # fmt: skip

    async def end_session(self, session_id: str) -> SessionRow | None:
        """Revoke a session's tokens and forget it; returns it if it existed."""
        return await self._db.run_txn("oauth_end_session", _end_session_txn, session_id)

    async def find_session_by_token(self, token_hash: str) -> SessionRow | None:
        """The session whose current access token or any refresh token is `token_hash`."""
        return await self._db.run_read_txn(
            "oauth_find_session", _find_session_txn, token_hash
        )

    # -- device authorization grant --------------------------------------------------------

    async def create_device_grant(
        self, device_code_hash: str, row: DeviceGrantRow
    ) -> bool:
        """False if the user code is taken (the caller draws another)."""
        return await self._db.run_txn(
            "oauth_create_device_grant", _create_device_grant_txn, device_code_hash, row
        )

    async def get_device_grant(self, user_code: str, now: int) -> DeviceGrantRow | None:
        return await self._db.run_read_txn(
            "oauth_get_device_grant", _get_device_grant_txn, user_code, now
        )

    async def decide_device_grant(
        self, user_code: str, user_id: str, approve: bool, now: int
    ) -> bool:
        return await self._db.run_txn(
            "oauth_decide_device_grant", _decide_device_grant_txn, user_code, user_id,
            approve, now,
        )  # fmt: skip

    async def poll_device_grant(
        self, device_code_hash: str, now: int
    ) -> DeviceGrantRow | None:
        """The grant as it was; an approved one becomes `exchanged` (single use) and
        every poll records its time (for `slow_down`)."""
        return await self._db.run_txn(
            "oauth_poll_device_grant", _poll_device_grant_txn, device_code_hash, now
        )

    # -- ID token signing key ----------------------------------------------------------------

    async def get_or_create_signing_key(
        self, kid: str, private_jwk: str, now: int
    ) -> tuple[str, str]:
        """The stored (kid, private JWK); stores the given one if there is none yet."""
        return await self._db.run_txn(
            "oauth_signing_key", _signing_key_txn, kid, private_jwk, now
        )

    # -- cross-signing reset approval (MSC4312) ----------------------------------------------

    async def is_oauth_access_token(self, token_id: int) -> bool:
        return await self._db.run_read_txn(
            "oauth_is_oauth_token", _is_oauth_token_txn, token_id
        )

    async def approve_cross_signing_reset(self, user_id: str, expires_ts: int) -> None:
        await self._db.run_txn(
            "oauth_approve_xsign_reset", _approve_reset_txn, user_id, expires_ts
        )

    async def consume_cross_signing_reset(self, user_id: str, now: int) -> bool:
        return await self._db.run_txn(
            "oauth_consume_xsign_reset", _consume_reset_txn, user_id, now
        )

    # -- browser sessions ------------------------------------------------------------------

    async def create_browser_session(
        self, session_hash: str, user_id: str, now: int, expires_ts: int
    ) -> None:
        await self._db.run_txn(
            "oauth_create_browser_session", _create_browser_session_txn,
            session_hash, user_id, now, expires_ts,
        )  # fmt: skip

    async def get_browser_session(self, session_hash: str, now: int) -> str | None:
        return await self._db.run_read_txn(
            "oauth_get_browser_session", _get_browser_session_txn, session_hash, now
        )

    async def delete_browser_session(self, session_hash: str) -> None:
        await self._db.run_txn(
            "oauth_delete_browser_session", _delete_browser_session_txn, session_hash
        )


# -- clients ------------------------------------------------------------------------------


def _create_client_txn(txn: Txn, client_id: str, metadata: str, now: int) -> None:
    txn.execute(
        "INSERT INTO oauth_clients (client_id, metadata, created_ts) VALUES (?, ?, ?)",
        (client_id, metadata, now),
    )


def _get_client_txn(txn: Txn, client_id: str) -> ClientRow | None:
    txn.execute(
        "SELECT client_id, metadata, created_ts FROM oauth_clients WHERE client_id = ?",
        (client_id,),
    )
    row = txn.fetchone()
    return None if row is None else ClientRow(str(row[0]), str(row[1]), int(row[2]))


# -- authorization requests -------------------------------------------------------------

_REQUEST_COLUMNS = (
    "request_id, client_id, redirect_uri, scope, state, nonce, response_mode,"
    " code_challenge, prompt, created_ts, expires_ts, user_id, code_expires_ts,"
    " exchanged_session_id"
)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _request_row(r: tuple[object, ...]) -> AuthorizationRequestRow:
    return AuthorizationRequestRow(
        request_id=str(r[0]),
        client_id=str(r[1]),
        redirect_uri=str(r[2]),
        scope=str(r[3]),
        state=_opt_str(r[4]),
        nonce=_opt_str(r[5]),
        response_mode=str(r[6]),
        code_challenge=str(r[7]),
        prompt=_opt_str(r[8]),
        created_ts=int(str(r[9])),
        expires_ts=int(str(r[10])),
        user_id=_opt_str(r[11]),
        code_expires_ts=_opt_int(r[12]),
        exchanged_session_id=_opt_str(r[13]),
    )


def _create_request_txn(txn: Txn, row: AuthorizationRequestRow) -> None:
    # Abandoned requests are cleaned up as new ones arrive.
    txn.execute(
        "DELETE FROM oauth_authorization_requests WHERE expires_ts <= ?",
        (row.created_ts,),
    )
    txn.execute(
        f"INSERT INTO oauth_authorization_requests ({_REQUEST_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
        (
            row.request_id,
            row.client_id,
            row.redirect_uri,
            row.scope,
            row.state,
            row.nonce,
            row.response_mode,
            row.code_challenge,
            row.prompt,
            row.created_ts,
            row.expires_ts,
        ),
    )


def _get_request_txn(
    txn: Txn, request_id: str, now: int
) -> AuthorizationRequestRow | None:
    txn.execute(
        f"SELECT {_REQUEST_COLUMNS} FROM oauth_authorization_requests"
        " WHERE request_id = ? AND expires_ts > ?",
        (request_id, now),
    )
    row = txn.fetchone()
    return None if row is None else _request_row(row)


def _set_code_txn(
    txn: Txn, request_id: str, user_id: str, code_hash: str, code_expires_ts: int
) -> bool:
    txn.execute(
        "UPDATE oauth_authorization_requests SET user_id = ?, code_hash = ?,"
        " code_expires_ts = ?, expires_ts = ? WHERE request_id = ? AND code_hash IS NULL",
        (user_id, code_hash, code_expires_ts, code_expires_ts, request_id),
    )
    return txn.rowcount == 1


def _delete_request_txn(txn: Txn, request_id: str) -> None:
    txn.execute(
        "DELETE FROM oauth_authorization_requests WHERE request_id = ?", (request_id,)
    )


def _redeem_code_txn(
    txn: Txn, code_hash: str, new_session_id: str
) -> AuthorizationRequestRow | None:
    txn.execute(
        f"SELECT {_REQUEST_COLUMNS} FROM oauth_authorization_requests"
        f" WHERE code_hash = ?{txn.engine.for_update}",
        (code_hash,),
    )
    row = txn.fetchone()
    if row is None:
        return None
    request = _request_row(row)
    if request.exchanged_session_id is None:
        txn.execute(
            "UPDATE oauth_authorization_requests SET exchanged_session_id = ?"
            " WHERE request_id = ?",
            (new_session_id, request.request_id),
        )
    return request


# -- sessions ---------------------------------------------------------------------------


def _insert_access_token_txn(
    txn: Txn, token_hash: str, user_id: str, device_id: str, expires_ts: int, now: int
) -> int:
    # `used` is TRUE: only tokens issued with a Matrix refresh token track first use.
    txn.execute(
        "INSERT INTO access_tokens (token_hash, user_id, device_id, refresh_token_id,"
        " expires_ts, used, created_ts) VALUES (?, ?, ?, NULL, ?, TRUE, ?) RETURNING id",
        (token_hash, user_id, device_id, expires_ts, now),
    )
    row = txn.fetchone()
    assert row is not None
    return int(row[0])


def _delete_session_rows_txn(txn: Txn, session_id: str) -> None:
    txn.execute(
        "DELETE FROM access_tokens WHERE id IN"
        " (SELECT access_token_id FROM oauth_sessions WHERE session_id = ?)",
        (session_id,),
    )
    txn.execute("DELETE FROM oauth_refresh_tokens WHERE session_id = ?", (session_id,))
    txn.execute("DELETE FROM oauth_sessions WHERE session_id = ?", (session_id,))


def _create_session_txn(txn: Txn, new: NewSession) -> list[str]:
    txn.execute(
        "SELECT session_id FROM oauth_sessions WHERE user_id = ? AND device_id = ?",
        (new.user_id, new.device_id),
    )
    replaced = [str(r[0]) for r in txn.fetchall()]
    for session_id in replaced:
        _delete_session_rows_txn(txn, session_id)
    txn.execute(
        "INSERT INTO devices (user_id, device_id, display_name, last_seen_ip, last_seen_ts,"
        " created_ts) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, device_id) DO UPDATE"
        " SET last_seen_ip = excluded.last_seen_ip, last_seen_ts = excluded.last_seen_ts",
        (
            new.user_id,
            new.device_id,
            new.device_display_name,
            new.client_ip,
            new.now,
            new.now,
        ),
    )
    access_id = _insert_access_token_txn(
        txn, new.access_token_hash, new.user_id, new.device_id,
        new.access_expires_ts, new.now,
    )  # fmt: skip
    txn.execute(
        "INSERT INTO oauth_sessions (session_id, client_id, user_id, device_id, scope,"
        " access_token_id, created_ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            new.session_id,
            new.client_id,
            new.user_id,
            new.device_id,
            new.scope,
            access_id,
            new.now,
        ),
    )
    txn.execute(
        "INSERT INTO oauth_refresh_tokens (token_hash, session_id, consumed_ts,"
        " created_ts) VALUES (?, ?, NULL, ?)",
        (new.refresh_token_hash, new.session_id, new.now),
    )
    return replaced


_SESSION_COLUMNS = "s.session_id, s.client_id, s.user_id, s.device_id, s.scope"


def _session_row(r: tuple[object, ...]) -> SessionRow:
    return SessionRow(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]))


def _get_session_txn(txn: Txn, session_id: str) -> SessionRow | None:
    txn.execute(
        f"SELECT {_SESSION_COLUMNS} FROM oauth_sessions AS s WHERE s.session_id = ?",
        (session_id,),
    )
    row = txn.fetchone()
    return None if row is None else _session_row(row)


def _refresh_txn(
    txn: Txn,
    refresh_token_hash: str,
    client_id: str,
    new_access_hash: str,
    access_expires_ts: int,
    new_refresh_hash: str,
    now: int,
) -> RefreshOutcome:
    txn.execute(
        f"SELECT {_SESSION_COLUMNS}, r.consumed_ts, s.access_token_id,"
        " (SELECT COUNT(*) FROM access_tokens AS t WHERE t.id = s.access_token_id)"
        " FROM oauth_refresh_tokens AS r"
        " JOIN oauth_sessions AS s ON s.session_id = r.session_id"
        f" WHERE r.token_hash = ?{txn.engine.for_update}",
        (refresh_token_hash,),
    )
    row = txn.fetchone()
    if row is None:
        return RefreshOutcome(RefreshStatus.UNKNOWN)
    session = _session_row(row)
    if session.client_id != client_id:
        return RefreshOutcome(RefreshStatus.WRONG_CLIENT)
    if row[5] is not None:
        _delete_session_rows_txn(txn, session.session_id)
        return RefreshOutcome(RefreshStatus.REUSED, session)
    if int(row[7]) == 0:
        _delete_session_rows_txn(txn, session.session_id)
        return RefreshOutcome(RefreshStatus.ENDED, session)
    txn.execute(
        "UPDATE oauth_refresh_tokens SET consumed_ts = ? WHERE token_hash = ?",
        (now, refresh_token_hash),
    )
    txn.execute(
        "INSERT INTO oauth_refresh_tokens (token_hash, session_id, consumed_ts,"
        " created_ts) VALUES (?, ?, NULL, ?)",
        (new_refresh_hash, session.session_id, now),
    )
    # Spec (refresh token grant): the previous access token is revoked.
    txn.execute("DELETE FROM access_tokens WHERE id = ?", (int(row[6]),))
    access_id = _insert_access_token_txn(
        txn, new_access_hash, session.user_id, session.device_id, access_expires_ts, now
    )
    txn.execute(
        "UPDATE oauth_sessions SET access_token_id = ? WHERE session_id = ?",
        (access_id, session.session_id),
    )
    return RefreshOutcome(RefreshStatus.OK, session)


def _end_session_txn(txn: Txn, session_id: str) -> SessionRow | None:
    session = _get_session_txn(txn, session_id)
    if session is not None:
        _delete_session_rows_txn(txn, session_id)
    return session


def _find_session_txn(txn: Txn, token_hash: str) -> SessionRow | None:
    txn.execute(
        f"SELECT {_SESSION_COLUMNS} FROM oauth_sessions AS s"
        " JOIN access_tokens AS t ON t.id = s.access_token_id WHERE t.token_hash = ?",
        (token_hash,),
    )
    row = txn.fetchone()
    if row is None:
        txn.execute(
            f"SELECT {_SESSION_COLUMNS} FROM oauth_sessions AS s"
            " JOIN oauth_refresh_tokens AS r ON r.session_id = s.session_id"
            " WHERE r.token_hash = ?",
            (token_hash,),
        )
        row = txn.fetchone()
    return None if row is None else _session_row(row)


# -- device grants ------------------------------------------------------------------------

_GRANT_COLUMNS = (
    "user_code, client_id, scope, status, user_id, last_poll_ts, created_ts, expires_ts"
)


def _grant_row(r: tuple[object, ...]) -> DeviceGrantRow:
    return DeviceGrantRow(
        user_code=str(r[0]),
        client_id=str(r[1]),
        scope=str(r[2]),
        status=str(r[3]),
        user_id=_opt_str(r[4]),
        last_poll_ts=_opt_int(r[5]),
        created_ts=int(str(r[6])),
        expires_ts=int(str(r[7])),
    )


def _create_device_grant_txn(
    txn: Txn, device_code_hash: str, row: DeviceGrantRow
) -> bool:
    txn.execute(
        "DELETE FROM oauth_device_grants WHERE expires_ts <= ?", (row.created_ts,)
    )
    txn.execute(
        f"INSERT INTO oauth_device_grants (device_code_hash, {_GRANT_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, NULL, NULL, ?, ?) ON CONFLICT DO NOTHING",
        (
            device_code_hash,
            row.user_code,
            row.client_id,
            row.scope,
            row.status,
            row.created_ts,
            row.expires_ts,
        ),
    )
    return txn.rowcount == 1


def _get_device_grant_txn(txn: Txn, user_code: str, now: int) -> DeviceGrantRow | None:
    txn.execute(
        f"SELECT {_GRANT_COLUMNS} FROM oauth_device_grants"
        " WHERE user_code = ? AND expires_ts > ?",
        (user_code, now),
    )
    row = txn.fetchone()
    return None if row is None else _grant_row(row)


def _decide_device_grant_txn(
    txn: Txn, user_code: str, user_id: str, approve: bool, now: int
) -> bool:
    txn.execute(
        "UPDATE oauth_device_grants SET status = ?, user_id = ?"
        " WHERE user_code = ? AND status = 'pending' AND expires_ts > ?",
        ("approved" if approve else "denied", user_id, user_code, now),
    )
    return txn.rowcount == 1


def _poll_device_grant_txn(
    txn: Txn, device_code_hash: str, now: int
) -> DeviceGrantRow | None:
    txn.execute(
        f"SELECT {_GRANT_COLUMNS} FROM oauth_device_grants"
        f" WHERE device_code_hash = ?{txn.engine.for_update}",
        (device_code_hash,),
    )
    row = txn.fetchone()
    if row is None:
        return None
    grant = _grant_row(row)
    status = "exchanged" if grant.status == "approved" else grant.status
    txn.execute(
        "UPDATE oauth_device_grants SET status = ?, last_poll_ts = ?"
        " WHERE device_code_hash = ?",
        (status, now, device_code_hash),
    )
    return grant


# -- signing key ---------------------------------------------------------------------------


def _signing_key_txn(txn: Txn, kid: str, private_jwk: str, now: int) -> tuple[str, str]:
    txn.execute("SELECT kid, private_jwk FROM oauth_signing_keys ORDER BY created_ts")
    row = txn.fetchone()
    if row is not None:
        return str(row[0]), str(row[1])
    txn.execute(
        "INSERT INTO oauth_signing_keys (kid, private_jwk, created_ts) VALUES (?, ?, ?)",
        (kid, private_jwk, now),
    )
    return kid, private_jwk


# -- cross-signing reset approval ------------------------------------------------------


def _is_oauth_token_txn(txn: Txn, token_id: int) -> bool:
    txn.execute("SELECT 1 FROM oauth_sessions WHERE access_token_id = ?", (token_id,))
    return txn.fetchone() is not None


def _approve_reset_txn(txn: Txn, user_id: str, expires_ts: int) -> None:
    txn.execute(
        "INSERT INTO oauth_cross_signing_resets (user_id, expires_ts) VALUES (?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET expires_ts = excluded.expires_ts",
        (user_id, expires_ts),
    )


def _consume_reset_txn(txn: Txn, user_id: str, now: int) -> bool:
    txn.execute(
        "DELETE FROM oauth_cross_signing_resets WHERE user_id = ? AND expires_ts > ?",
        (user_id, now),
    )
    approved = txn.rowcount == 1
    txn.execute("DELETE FROM oauth_cross_signing_resets WHERE user_id = ?", (user_id,))
    return approved


# -- browser sessions ---------------------------------------------------------------------


def _create_browser_session_txn(
    txn: Txn, session_hash: str, user_id: str, now: int, expires_ts: int
) -> None:
    txn.execute("DELETE FROM oauth_browser_sessions WHERE expires_ts <= ?", (now,))
    txn.execute(
        "INSERT INTO oauth_browser_sessions (session_hash, user_id, created_ts,"
        " expires_ts) VALUES (?, ?, ?, ?)",
        (session_hash, user_id, now, expires_ts),
    )


def _get_browser_session_txn(txn: Txn, session_hash: str, now: int) -> str | None:
    txn.execute(
        "SELECT s.user_id FROM oauth_browser_sessions AS s"
        " JOIN users AS u ON u.user_id = s.user_id"
        " WHERE s.session_hash = ? AND s.expires_ts > ? AND NOT u.deactivated",
        (session_hash, now),
    )
    row = txn.fetchone()
    return None if row is None else str(row[0])


def _delete_browser_session_txn(txn: Txn, session_hash: str) -> None:
    txn.execute(
        "DELETE FROM oauth_browser_sessions WHERE session_hash = ?", (session_hash,)
    )
