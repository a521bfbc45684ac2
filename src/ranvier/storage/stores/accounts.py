"""Local accounts: users, devices, and the access, refresh and login tokens that log them in.

Tokens arrive here already hashed (sha256 of a 256-bit random token): the plain tokens
never reach the database. Registration tokens and UIA sessions live in
`stores/registration.py`, profile fields in `stores/profiles.py`.

Refresh tokens rotate: `/refresh` with refresh token R1 issues access token A2 and refresh
token R2, revokes R1's access token at once and records R1 -> R2. R1 stays usable (a client
may retry a refresh whose response it lost) until A2 or R2 is first used; then R1 is
deleted. (Spec: "The old refresh token remains valid until the new access token or
refresh token is used, at which point the old refresh token is revoked.")
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from ranvier.storage.database import Database
from ranvier.storage.txn import Txn


class UserIdInUseError(Exception):
    """The user ID is taken (including by a deactivated account)."""


@dataclass(frozen=True, slots=True)
class UserRow:
    user_id: str
    password_hash: str | None
    is_guest: bool
    is_admin: bool
    deactivated: bool
    created_ts: int


@dataclass(frozen=True, slots=True)
class DeviceRow:
    user_id: str
    device_id: str
    display_name: str | None
    last_seen_ip: str | None
    last_seen_ts: int | None
    created_ts: int


@dataclass(frozen=True, slots=True)
class AccessTokenRow:
    token_id: int
    user_id: str
    device_id: str
    is_guest: bool
    expires_ts: int | None
    refresh_token_id: int | None
    used: bool
    # Admin API account flags (spec: account locking and suspension).
    locked: bool = False
    suspended: bool = False
    shadow_banned: bool = False


@dataclass(frozen=True, slots=True)
class NewLogin:
    """A device session to create: the device (unless it exists) and its token(s)."""

    user_id: str
    device_id: str
    initial_display_name: str | None
    access_token_hash: str
    access_expires_ts: int | None
    refresh_token_hash: str | None
    refresh_expires_ts: int | None
    client_ip: str | None
    now: int


@dataclass(frozen=True, slots=True)
class NewUser:
    user_id: str
    password_hash: str | None
    is_guest: bool
    is_admin: bool
    # Profile fields written with the account, e.g. {"displayname": "\"alice\""} (JSON).
    profile: tuple[tuple[str, str], ...]
    created_ts: int


@dataclass(frozen=True, slots=True)
class Registration:
    """Everything a successful `/register` writes, in one transaction."""

    user: NewUser
    login: NewLogin | None
    # A guest account turned into a full one: `user.user_id` must be a guest.
    upgrade_guest: bool = False
    registration_token: str | None = None
    uia_session_id: str | None = None


class RefreshStatus(enum.Enum):
    OK = "ok"
    UNKNOWN = "unknown"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class RefreshResult:
    status: RefreshStatus
    user_id: str | None = None
    device_id: str | None = None
    access_token_id: int | None = None


class AccountsStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- users ---------------------------------------------------------------------------

    async def get_user(self, user_id: str) -> UserRow | None:
        return await self._db.run_read_txn("get_user", _get_user_txn, user_id)

    async def register_user(self, reg: Registration) -> int | None:
        """Create (or upgrade a guest into) an account, plus its first login if any.

        Returns the new access token's id (None with no login). Raises `UserIdInUseError`.
        """
        return await self._db.run_txn("register_user", _register_user_txn, reg)

    async def set_password_hash(self, user_id: str, password_hash: str | None) -> bool:
        return await self._db.run_txn(
            "set_password_hash", _set_password_hash_txn, user_id, password_hash
        )

    async def set_admin(self, user_id: str, is_admin: bool) -> bool:
        return await self._db.run_txn("set_admin", _set_admin_txn, user_id, is_admin)

    async def deactivate_user(self, user_id: str) -> list[str]:
        """Mark deactivated, drop the password and every device and token.

        Returns the deleted device IDs.
        """
        return await self._db.run_txn("deactivate_user", _deactivate_user_txn, user_id)

    async def get_local_user_ids(
        self, *, include_deactivated: bool = False
    ) -> list[str]:
        return await self._db.run_read_txn(
            "get_local_user_ids", _get_user_ids_txn, include_deactivated
        )

    # -- tokens --------------------------------------------------------------------------

    async def create_login(self, login: NewLogin) -> int:
        """Create the device if new and its token(s); returns the access token id."""
        return await self._db.run_txn("create_login", _create_login_txn, login)

    async def get_access_token(self, token_hash: str) -> AccessTokenRow | None:
        """The live token with this hash (none for deactivated accounts)."""
        return await self._db.run_read_txn(
            "get_access_token", _get_access_token_txn, token_hash
        )

    async def mark_access_token_used(
        self, token_id: int, refresh_token_id: int | None
    ) -> None:
        await self._db.run_txn(
            "mark_access_token_used", _mark_used_txn, token_id, refresh_token_id
        )

    async def refresh_login(
        self,
        refresh_token_hash: str,
        new_access_hash: str,
        new_refresh_hash: str,
        access_expires_ts: int | None,
        refresh_expires_ts: int | None,
        now: int,
    ) -> RefreshResult:
        return await self._db.run_txn(
            "refresh_login",
            _refresh_txn,
            refresh_token_hash,
            new_access_hash,
            new_refresh_hash,
            access_expires_ts,
            refresh_expires_ts,
            now,
        )

    async def create_login_token(
        self, token_hash: str, user_id: str, expires_ts: int
    ) -> None:
        await self._db.run_txn(
            "create_login_token",
            _create_login_token_txn,
            token_hash,
            user_id,
            expires_ts,
        )

    async def consume_login_token(self, token_hash: str, now: int) -> str | None:
        """The user a single-use login token logs in, deleting it; None if unknown/expired."""
        return await self._db.run_txn(
            "consume_login_token", _consume_login_token_txn, token_hash, now
        )

    # -- devices -------------------------------------------------------------------------

    async def get_devices(self, user_id: str) -> list[DeviceRow]:
        return await self._db.run_read_txn(
            "get_devices", _get_devices_txn, user_id, None
        )

    async def get_device(self, user_id: str, device_id: str) -> DeviceRow | None:
        rows = await self._db.run_read_txn(
            "get_device", _get_devices_txn, user_id, device_id
        )
        return rows[0] if rows else None

    async def set_device_display_name(
        self, user_id: str, device_id: str, display_name: str | None
    ) -> bool:
        return await self._db.run_txn(
            "set_device_display_name",
            _set_display_name_txn,
            user_id,
            device_id,
            display_name,
        )

    async def create_device(
        self, user_id: str, device_id: str, display_name: str | None, now: int
    ) -> bool:
        """A device without an access token (a dehydrated device, MSC3814); False if
        the device already exists."""
        return await self._db.run_txn(
            "create_device", _create_device_txn, user_id, device_id, display_name, now
        )

    async def update_device_last_seen(
        self, user_id: str, device_id: str, ip: str | None, ts: int
    ) -> None:
        await self._db.run_txn(
            "update_device_last_seen", _update_last_seen_txn, user_id, device_id, ip, ts
        )

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> list[str]:
        """Delete devices with their tokens; returns the IDs that existed."""
        return await self._db.run_txn(
            "delete_devices", _delete_devices_txn, user_id, device_ids
        )

    async def delete_other_logins(
        self, user_id: str, keep_device_id: str | None, keep_token_id: int | None
    ) -> list[str]:
        """Delete every device but one, and every token but one; returns deleted devices."""
        return await self._db.run_txn(
            "delete_other_logins",
            _delete_other_logins_txn,
            user_id,
            keep_device_id,
            keep_token_id,
        )


# -- users ------------------------------------------------------------------------------

_USER_COLUMNS = "user_id, password_hash, is_guest, is_admin, deactivated, created_ts"


def _user_row(row: tuple[Any, ...]) -> UserRow:
    return UserRow(
        user_id=str(row[0]),
        password_hash=None if row[1] is None else str(row[1]),
        is_guest=bool(row[2]),
        is_admin=bool(row[3]),
        deactivated=bool(row[4]),
        created_ts=int(row[5]),
    )


def _get_user_txn(txn: Txn, user_id: str) -> UserRow | None:
    txn.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = ?", (user_id,))
    row = txn.fetchone()
    return None if row is None else _user_row(row)


def _get_user_ids_txn(txn: Txn, include_deactivated: bool) -> list[str]:
    if include_deactivated:
        txn.execute("SELECT user_id FROM users ORDER BY user_id")
    else:
        txn.execute("SELECT user_id FROM users WHERE NOT deactivated ORDER BY user_id")
    return [str(r[0]) for r in txn.fetchall()]


def _register_user_txn(txn: Txn, reg: Registration) -> int | None:
    user = reg.user
    if reg.upgrade_guest:
        txn.execute(
            "UPDATE users SET is_guest = FALSE, password_hash = ?"
            " WHERE user_id = ? AND is_guest AND NOT deactivated",
            (user.password_hash, user.user_id),
        )
        if txn.rowcount != 1:
            raise UserIdInUseError(user.user_id)
    else:
        txn.execute(
            "INSERT INTO users (user_id, password_hash, is_guest, is_admin, created_ts)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO NOTHING",
            (
                user.user_id,
                user.password_hash,
                user.is_guest,
                user.is_admin,
                user.created_ts,
            ),
        )
        if txn.rowcount != 1:
            raise UserIdInUseError(user.user_id)
    for field, value in user.profile:
        txn.execute(
            "INSERT INTO profile_fields (user_id, field, value) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id, field) DO NOTHING",
            (user.user_id, field, value),
        )
    if reg.registration_token is not None:
        txn.execute(
            "UPDATE registration_tokens SET pending = pending - 1, completed = completed + 1"
            " WHERE token = ?",
            (reg.registration_token,),
        )
    if reg.uia_session_id is not None:
        # The session's pending use became a completed one above: delete without release.
        txn.execute(
            "DELETE FROM uia_sessions WHERE session_id = ?", (reg.uia_session_id,)
        )
    return None if reg.login is None else _create_login_txn(txn, reg.login)


def _set_password_hash_txn(txn: Txn, user_id: str, password_hash: str | None) -> bool:
    txn.execute(
        "UPDATE users SET password_hash = ? WHERE user_id = ?", (password_hash, user_id)
    )
    return txn.rowcount == 1


def _set_admin_txn(txn: Txn, user_id: str, is_admin: bool) -> bool:
    txn.execute("UPDATE users SET is_admin = ? WHERE user_id = ?", (is_admin, user_id))
    return txn.rowcount == 1


def _deactivate_user_txn(txn: Txn, user_id: str) -> list[str]:
    txn.execute(
        "UPDATE users SET deactivated = TRUE, password_hash = NULL WHERE user_id = ?",
        (user_id,),
    )
    deleted = _delete_other_logins_txn(txn, user_id, None, None)
    txn.execute("DELETE FROM login_tokens WHERE user_id = ?", (user_id,))
    return deleted


# -- tokens -----------------------------------------------------------------------------


def _create_device_txn(
    txn: Txn, user_id: str, device_id: str, display_name: str | None, now: int
) -> bool:
    txn.execute(
        "INSERT INTO devices (user_id, device_id, display_name, created_ts)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (user_id, device_id) DO NOTHING",
        (user_id, device_id, display_name, now),
    )
    return txn.rowcount > 0


def _create_login_txn(txn: Txn, login: NewLogin) -> int:
    txn.execute(
        "INSERT INTO devices (user_id, device_id, display_name, last_seen_ip, last_seen_ts,"
        " created_ts) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, device_id) DO UPDATE"
        " SET last_seen_ip = excluded.last_seen_ip, last_seen_ts = excluded.last_seen_ts",
        (
            login.user_id,
            login.device_id,
            login.initial_display_name,
            login.client_ip,
            login.now,
            login.now,
        ),
    )
    refresh_id: int | None = None
    if login.refresh_token_hash is not None:
        refresh_id = _insert_refresh_token_txn(
            txn, login.refresh_token_hash, login.user_id, login.device_id,
            login.refresh_expires_ts, login.now,
        )  # fmt: skip
    return _insert_access_token_txn(
        txn,
        login.access_token_hash,
        login.user_id,
        login.device_id,
        refresh_id,
        login.access_expires_ts,
        login.now,
    )


def _insert_refresh_token_txn(
    txn: Txn,
    token_hash: str,
    user_id: str,
    device_id: str,
    expires_ts: int | None,
    now: int,
) -> int:
    txn.execute(
        "INSERT INTO refresh_tokens (token_hash, user_id, device_id, expires_ts, created_ts)"
        " VALUES (?, ?, ?, ?, ?) RETURNING id",
        (token_hash, user_id, device_id, expires_ts, now),
    )
    row = txn.fetchone()
    assert row is not None
    return int(row[0])


def _insert_access_token_txn(
    txn: Txn,
    token_hash: str,
    user_id: str,
    device_id: str,
    refresh_token_id: int | None,
    expires_ts: int | None,
    now: int,
) -> int:
    txn.execute(
        "INSERT INTO access_tokens (token_hash, user_id, device_id, refresh_token_id,"
        " expires_ts, created_ts) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (token_hash, user_id, device_id, refresh_token_id, expires_ts, now),
    )
    row = txn.fetchone()
    assert row is not None
    return int(row[0])


def _get_access_token_txn(txn: Txn, token_hash: str) -> AccessTokenRow | None:
    txn.execute(
        "SELECT t.id, t.user_id, t.device_id, u.is_guest, t.expires_ts, t.refresh_token_id,"
        " t.used, u.locked, u.suspended, u.shadow_banned"
        " FROM access_tokens AS t JOIN users AS u ON u.user_id = t.user_id"
        " WHERE t.token_hash = ? AND NOT u.deactivated",
        (token_hash,),
    )
    row = txn.fetchone()
    if row is None:
        return None
    return AccessTokenRow(
        token_id=int(row[0]),
        user_id=str(row[1]),
        device_id=str(row[2]),
        is_guest=bool(row[3]),
        expires_ts=None if row[4] is None else int(row[4]),
        refresh_token_id=None if row[5] is None else int(row[5]),
        used=bool(row[6]),
        locked=bool(row[7]),
        suspended=bool(row[8]),
        shadow_banned=bool(row[9]),
    )


def _retire_predecessors_txn(txn: Txn, refresh_token_id: int) -> None:
    """The refresh token `refresh_token_id` (or its access token) was used: the refresh
    token it replaced is now revoked."""
    txn.execute(
        "DELETE FROM refresh_tokens WHERE next_token_id = ?", (refresh_token_id,)
    )


def _mark_used_txn(txn: Txn, token_id: int, refresh_token_id: int | None) -> None:
    txn.execute("UPDATE access_tokens SET used = TRUE WHERE id = ?", (token_id,))
    if refresh_token_id is not None:
        _retire_predecessors_txn(txn, refresh_token_id)


def _delete_refresh_chain_txn(txn: Txn, refresh_token_id: int) -> None:
    """Delete a refresh token and the access tokens issued with it."""
    txn.execute(
        "DELETE FROM access_tokens WHERE refresh_token_id = ?", (refresh_token_id,)
    )
    txn.execute("DELETE FROM refresh_tokens WHERE id = ?", (refresh_token_id,))


def _refresh_txn(
    txn: Txn,
    refresh_token_hash: str,
    new_access_hash: str,
    new_refresh_hash: str,
    access_expires_ts: int | None,
    refresh_expires_ts: int | None,
    now: int,
) -> RefreshResult:
    txn.execute(
        "SELECT id, user_id, device_id, next_token_id, expires_ts FROM refresh_tokens"
        f" WHERE token_hash = ?{txn.engine.for_update}",
        (refresh_token_hash,),
    )
    row = txn.fetchone()
    if row is None:
        return RefreshResult(RefreshStatus.UNKNOWN)
    old_id, user_id, device_id = int(row[0]), str(row[1]), str(row[2])
    if row[4] is not None and int(row[4]) <= now:
        _delete_refresh_chain_txn(txn, old_id)
        return RefreshResult(RefreshStatus.EXPIRED)
    # This token is being used: the one it replaced is revoked for good.
    _retire_predecessors_txn(txn, old_id)
    if row[3] is not None:
        # A retried refresh: the replacement issued last time was never used.
        _delete_refresh_chain_txn(txn, int(row[3]))
    new_refresh_id = _insert_refresh_token_txn(
        txn, new_refresh_hash, user_id, device_id, refresh_expires_ts, now
    )
    access_id = _insert_access_token_txn(
        txn, new_access_hash, user_id, device_id, new_refresh_id, access_expires_ts, now
    )
    txn.execute("DELETE FROM access_tokens WHERE refresh_token_id = ?", (old_id,))
    txn.execute(
        "UPDATE refresh_tokens SET next_token_id = ? WHERE id = ?",
        (new_refresh_id, old_id),
    )
    return RefreshResult(RefreshStatus.OK, user_id, device_id, access_id)


def _create_login_token_txn(
    txn: Txn, token_hash: str, user_id: str, expires_ts: int
) -> None:
    txn.execute(
        "INSERT INTO login_tokens (token_hash, user_id, expires_ts) VALUES (?, ?, ?)",
        (token_hash, user_id, expires_ts),
    )


def _consume_login_token_txn(txn: Txn, token_hash: str, now: int) -> str | None:
    txn.execute("DELETE FROM login_tokens WHERE expires_ts <= ?", (now,))
    txn.execute("SELECT user_id FROM login_tokens WHERE token_hash = ?", (token_hash,))
    row = txn.fetchone()
    if row is None:
        return None
    txn.execute("DELETE FROM login_tokens WHERE token_hash = ?", (token_hash,))
    # Two concurrent logins with one token: only the one whose DELETE won may proceed.
    return str(row[0]) if txn.rowcount == 1 else None


# -- devices ----------------------------------------------------------------------------


def _get_devices_txn(txn: Txn, user_id: str, device_id: str | None) -> list[DeviceRow]:
    sql = (
        "SELECT user_id, device_id, display_name, last_seen_ip, last_seen_ts, created_ts"
        " FROM devices WHERE user_id = ?"
    )
    if device_id is None:
        txn.execute(sql + " ORDER BY device_id", (user_id,))
    else:
        txn.execute(sql + " AND device_id = ?", (user_id, device_id))
    return [
        DeviceRow(
            user_id=str(r[0]),
            device_id=str(r[1]),
            display_name=None if r[2] is None else str(r[2]),
            last_seen_ip=None if r[3] is None else str(r[3]),
            last_seen_ts=None if r[4] is None else int(r[4]),
            created_ts=int(r[5]),
        )
        for r in txn.fetchall()
    ]


def _set_display_name_txn(
    txn: Txn, user_id: str, device_id: str, display_name: str | None
) -> bool:
    txn.execute(
        "UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?",
        (display_name, user_id, device_id),
    )
    return txn.rowcount == 1


def _update_last_seen_txn(
    txn: Txn, user_id: str, device_id: str, ip: str | None, ts: int
) -> None:
    txn.execute(
        "UPDATE devices SET last_seen_ip = COALESCE(?, last_seen_ip), last_seen_ts = ?"
        " WHERE user_id = ? AND device_id = ?",
        (ip, ts, user_id, device_id),
    )


def _delete_devices_txn(txn: Txn, user_id: str, device_ids: list[str]) -> list[str]:
    if not device_ids:
        return []
    cond, params = txn.in_list("device_id", device_ids)
    txn.execute(
        f"SELECT device_id FROM devices WHERE user_id = ? AND {cond} ORDER BY device_id",
        (user_id, *params),
    )
    existing = [str(r[0]) for r in txn.fetchall()]
    for table in ("access_tokens", "refresh_tokens", "devices"):
        txn.execute(
            f"DELETE FROM {table} WHERE user_id = ? AND {cond}",
            (user_id, *params),
        )
    return existing


def _delete_other_logins_txn(
    txn: Txn, user_id: str, keep_device_id: str | None, keep_token_id: int | None
) -> list[str]:
    keep_device = "" if keep_device_id is None else keep_device_id
    txn.execute(
        "SELECT device_id FROM devices WHERE user_id = ? AND device_id <> ? ORDER BY device_id",
        (user_id, keep_device),
    )
    deleted = [str(r[0]) for r in txn.fetchall()]
    txn.execute(
        "DELETE FROM access_tokens WHERE user_id = ? AND id <> ?",
        (user_id, -1 if keep_token_id is None else keep_token_id),
    )
    # Refresh tokens of the kept device survive only with the access token they issued.
    txn.execute(
        "DELETE FROM refresh_tokens WHERE user_id = ? AND (device_id <> ? OR id NOT IN"
        " (SELECT refresh_token_id FROM access_tokens WHERE user_id = ?"
        " AND refresh_token_id IS NOT NULL))",
        (user_id, keep_device, user_id),
    )
    txn.execute(
        "DELETE FROM devices WHERE user_id = ? AND device_id <> ?",
        (user_id, keep_device),
    )
    return deleted
