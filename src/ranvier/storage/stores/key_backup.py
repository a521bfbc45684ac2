"""Server-side key backup: backup versions and the encrypted room keys in them (spec:
C-S API > End-to-End Encryption > Server-side key backups).

Versions are numbered per user from 1; the current version is the highest one not
deleted, and only it takes new keys. Each version has an `etag` that moves whenever its
keys change, so clients can tell whether to download them again. Which of two copies of
a session is kept is decided by `core.key_backup.should_replace` inside the write
transaction, so concurrent uploads cannot both win.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ranvier.core.json import decode_json, encode_json
from ranvier.core.key_backup import RoomKeyBackup, should_replace
from ranvier.storage.database import Database
from ranvier.storage.txn import Txn

JsonDict = dict[str, Any]


@dataclass(frozen=True, slots=True)
class BackupVersion:
    version: int
    algorithm: str
    auth_data: Any  # an object for the spec's algorithm; opaque JSON for others
    etag: int
    count: int


@dataclass(frozen=True, slots=True)
class BackedUpKey:
    room_id: str
    session_id: str
    key: RoomKeyBackup


class PutStatus(enum.Enum):
    OK = "ok"
    NO_BACKUP = "no_backup"
    WRONG_VERSION = "wrong_version"


@dataclass(frozen=True, slots=True)
class PutResult:
    status: PutStatus
    etag: int = 0
    count: int = 0
    # The current version when the request named another one.
    current_version: int | None = None


class DeleteVersionStatus(enum.Enum):
    DELETED = "deleted"
    ALREADY_DELETED = "already_deleted"
    NOT_FOUND = "not_found"


class KeyBackupStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_version(self, user_id: str, algorithm: str, auth_data: Any) -> int:
        return await self._db.run_txn(
            "create_room_keys_version",
            _create_version_txn,
            user_id,
            algorithm,
            encode_json(auth_data).decode(),
        )

    async def get_version(
        self, user_id: str, version: int | None = None
    ) -> BackupVersion | None:
        """A live version (None: the current one)."""
        return await self._db.run_read_txn(
            "get_room_keys_version", _get_version_txn, user_id, version
        )

    async def update_version(self, user_id: str, version: int, auth_data: Any) -> bool:
        return await self._db.run_txn(
            "update_room_keys_version",
            _update_version_txn,
            user_id,
            version,
            encode_json(auth_data).decode(),
        )

    async def delete_version(self, user_id: str, version: int) -> DeleteVersionStatus:
        return await self._db.run_txn(
            "delete_room_keys_version", _delete_version_txn, user_id, version
        )

    async def put_keys(
        self, user_id: str, version: int, keys: Sequence[BackedUpKey]
    ) -> PutResult:
        return await self._db.run_txn(
            "put_room_keys", _put_keys_txn, user_id, version, list(keys)
        )

    async def get_keys(
        self,
        user_id: str,
        version: int,
        room_id: str | None = None,
        session_id: str | None = None,
    ) -> list[BackedUpKey] | None:
        """None when the version does not exist (or is deleted)."""
        return await self._db.run_read_txn(
            "get_room_keys", _get_keys_txn, user_id, version, room_id, session_id
        )

    async def delete_keys(
        self,
        user_id: str,
        version: int,
        room_id: str | None = None,
        session_id: str | None = None,
    ) -> BackupVersion | None:
        """The version after the deletion; None when it does not exist."""
        return await self._db.run_txn(
            "delete_room_keys", _delete_keys_txn, user_id, version, room_id, session_id
        )


def _live_version(
    txn: Txn, user_id: str, version: int | None
) -> tuple[int, str, str, int] | None:
    if version is None:
        txn.execute(
            "SELECT version, algorithm, auth_data, etag FROM e2e_room_keys_versions"
            " WHERE user_id = ? AND deleted = ? ORDER BY version DESC LIMIT 1",
            (user_id, False),
        )
    else:
        txn.execute(
            "SELECT version, algorithm, auth_data, etag FROM e2e_room_keys_versions"
            " WHERE user_id = ? AND version = ? AND deleted = ?",
            (user_id, version, False),
        )
    row = txn.fetchone()
    if row is None:
        return None
    return int(row[0]), str(row[1]), str(row[2]), int(row[3])


def _count(txn: Txn, user_id: str, version: int) -> int:
    txn.execute(
        "SELECT COUNT(*) FROM e2e_room_keys WHERE user_id = ? AND version = ?",
        (user_id, version),
    )
    row = txn.fetchone()
    return int(row[0]) if row else 0


def _version_row(txn: Txn, user_id: str, version: int | None) -> BackupVersion | None:
    live = _live_version(txn, user_id, version)
    if live is None:
        return None
    number, algorithm, auth_data, etag = live
    return BackupVersion(
        number,
        algorithm,
        decode_json(auth_data),
        etag,
        _count(txn, user_id, number),
    )


def _create_version_txn(txn: Txn, user_id: str, algorithm: str, auth_data: str) -> int:
    # Lock the user's versions (PostgreSQL) so two creations cannot pick one number.
    txn.execute(
        "SELECT version FROM e2e_room_keys_versions WHERE user_id = ?"
        + txn.engine.for_update,
        (user_id,),
    )
    numbers = [int(r[0]) for r in txn.fetchall()]
    version = max(numbers, default=0) + 1
    txn.execute(
        "INSERT INTO e2e_room_keys_versions"
        " (user_id, version, algorithm, auth_data, etag, deleted)"
        " VALUES (?, ?, ?, ?, 0, ?)",
        (user_id, version, algorithm, auth_data, False),
    )
    return version


def _get_version_txn(
    txn: Txn, user_id: str, version: int | None
) -> BackupVersion | None:
    return _version_row(txn, user_id, version)


def _update_version_txn(txn: Txn, user_id: str, version: int, auth_data: str) -> bool:
    txn.execute(
        "UPDATE e2e_room_keys_versions SET auth_data = ?"
        " WHERE user_id = ? AND version = ? AND deleted = ?",
        (auth_data, user_id, version, False),
    )
    return txn.rowcount > 0


def _delete_version_txn(txn: Txn, user_id: str, version: int) -> DeleteVersionStatus:
    txn.execute(
        "SELECT deleted FROM e2e_room_keys_versions WHERE user_id = ? AND version = ?",
        (user_id, version),
    )
    row = txn.fetchone()
    if row is None:
        return DeleteVersionStatus.NOT_FOUND
    if bool(row[0]):
        return DeleteVersionStatus.ALREADY_DELETED
    txn.execute(
        "DELETE FROM e2e_room_keys WHERE user_id = ? AND version = ?",
        (user_id, version),
    )
    txn.execute(
        "UPDATE e2e_room_keys_versions SET deleted = ? WHERE user_id = ? AND version = ?",
        (True, user_id, version),
    )
    return DeleteVersionStatus.DELETED


def _key_from_row(row: tuple[Any, ...]) -> BackedUpKey:
    data = decode_json(row[5])
    return BackedUpKey(
        str(row[0]),
        str(row[1]),
        RoomKeyBackup(
            first_message_index=int(row[2]),
            forwarded_count=int(row[3]),
            is_verified=bool(row[4]),
            session_data=data,
        ),
    )


_KEY_COLUMNS = (
    "room_id, session_id, first_message_index, forwarded_count, is_verified,"
    " session_data"
)


def _put_keys_txn(
    txn: Txn, user_id: str, version: int, keys: list[BackedUpKey]
) -> PutResult:
    current = _live_version(txn, user_id, None)
    if current is None:
        return PutResult(PutStatus.NO_BACKUP)
    number, _, _, etag = current
    if number != version:
        return PutResult(PutStatus.WRONG_VERSION, current_version=number)
    changed = False
    for new in keys:
        txn.execute(
            f"SELECT {_KEY_COLUMNS} FROM e2e_room_keys WHERE user_id = ?"
            " AND version = ? AND room_id = ? AND session_id = ?"
            + txn.engine.for_update,
            (user_id, version, new.room_id, new.session_id),
        )
        row = txn.fetchone()
        old = _key_from_row(row).key if row is not None else None
        if not should_replace(old, new.key):
            continue
        changed = True
        txn.execute(
            f"INSERT INTO e2e_room_keys (user_id, version, {_KEY_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET"
            " first_message_index = excluded.first_message_index,"
            " forwarded_count = excluded.forwarded_count,"
            " is_verified = excluded.is_verified, session_data = excluded.session_data",
            (
                user_id,
                version,
                new.room_id,
                new.session_id,
                new.key.first_message_index,
                new.key.forwarded_count,
                new.key.is_verified,
                encode_json(new.key.session_data).decode(),
            ),
        )
    if changed:
        etag = _bump_etag(txn, user_id, version)
    return PutResult(PutStatus.OK, etag=etag, count=_count(txn, user_id, version))


def _bump_etag(txn: Txn, user_id: str, version: int) -> int:
    txn.execute(
        "UPDATE e2e_room_keys_versions SET etag = etag + 1"
        " WHERE user_id = ? AND version = ?",
        (user_id, version),
    )
    txn.execute(
        "SELECT etag FROM e2e_room_keys_versions WHERE user_id = ? AND version = ?",
        (user_id, version),
    )
    row = txn.fetchone()
    return int(row[0]) if row else 0


def _key_filter(room_id: str | None, session_id: str | None) -> tuple[str, list[str]]:
    sql, params = "", []
    if room_id is not None:
        sql += " AND room_id = ?"
        params.append(room_id)
        if session_id is not None:
            sql += " AND session_id = ?"
            params.append(session_id)
    return sql, params


def _get_keys_txn(
    txn: Txn,
    user_id: str,
    version: int,
    room_id: str | None,
    session_id: str | None,
) -> list[BackedUpKey] | None:
    if _live_version(txn, user_id, version) is None:
        return None
    where, params = _key_filter(room_id, session_id)
    txn.execute(
        f"SELECT {_KEY_COLUMNS} FROM e2e_room_keys WHERE user_id = ? AND version = ?"
        f"{where} ORDER BY room_id, session_id",
        (user_id, version, *params),
    )
    return [_key_from_row(r) for r in txn.fetchall()]


def _delete_keys_txn(
    txn: Txn,
    user_id: str,
    version: int,
    room_id: str | None,
    session_id: str | None,
) -> BackupVersion | None:
    if _live_version(txn, user_id, version) is None:
        return None
    where, params = _key_filter(room_id, session_id)
    txn.execute(
        f"DELETE FROM e2e_room_keys WHERE user_id = ? AND version = ?{where}",
        (user_id, version, *params),
    )
    if txn.rowcount > 0:
        _bump_etag(txn, user_id, version)
    return _version_row(txn, user_id, version)
