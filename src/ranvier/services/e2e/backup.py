"""Server-side key backup (spec: C-S API > End-to-End Encryption > Server-side key
backups).

Versions are strings of decimal digits to clients; anything else names no backup (404,
as Synapse). Only the current (latest, not deleted) version takes keys: writing to any
other answers 403 `M_WRONG_ROOM_KEYS_VERSION` with `current_version`, so a client
backing up to a replaced backup learns of the new one. Reads and deletes work on any
live version. Uploads keep the better copy of each session (`core.key_backup`), and
every change moves the version's `etag`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

from ranvier.core.errors import MatrixError, bad_json, invalid_param, not_found
from ranvier.core.key_backup import BackupKeyError, parse_room_key
from ranvier.storage.stores.key_backup import (
    BackedUpKey,
    BackupVersion,
    DeleteVersionStatus,
    PutResult,
    PutStatus,
)

__all__ = [
    "SPEC_BACKUP_ALGORITHMS",
    "KeyBackupService",
    "parse_room_keys",
    "parse_sessions",
]

JsonDict = dict[str, Any]

MAX_VERSION_DIGITS: Final = 18
# Algorithms whose `auth_data` the spec defines as an object; others' is opaque JSON.
SPEC_BACKUP_ALGORITHMS: Final = frozenset({"m.megolm_backup.v1.curve25519-aes-sha2"})


class BackupStore(Protocol):
    async def create_version(
        self, user_id: str, algorithm: str, auth_data: Any
    ) -> int: ...

    async def get_version(
        self, user_id: str, version: int | None = None
    ) -> BackupVersion | None: ...

    async def update_version(
        self, user_id: str, version: int, auth_data: Any
    ) -> bool: ...

    async def delete_version(
        self, user_id: str, version: int
    ) -> DeleteVersionStatus: ...

    async def put_keys(
        self, user_id: str, version: int, keys: Sequence[BackedUpKey]
    ) -> PutResult: ...

    async def get_keys(
        self,
        user_id: str,
        version: int,
        room_id: str | None = None,
        session_id: str | None = None,
    ) -> list[BackedUpKey] | None: ...

    async def delete_keys(
        self,
        user_id: str,
        version: int,
        room_id: str | None = None,
        session_id: str | None = None,
    ) -> BackupVersion | None: ...


def _version_number(version: str) -> int:
    if (
        not (version.isascii() and version.isdigit())
        or len(version) > MAX_VERSION_DIGITS
    ):
        raise not_found(f"Unknown backup version {version!r}.")
    return int(version)


def _key(room_id: str, session_id: str, data: Any) -> BackedUpKey:
    try:
        return BackedUpKey(room_id, session_id, parse_room_key(data))
    except BackupKeyError as e:
        raise bad_json(f"Key of session {session_id!r}: {e}") from None


def parse_sessions(room_id: str, sessions: Any) -> list[BackedUpKey]:
    """`{"<session_id>": KeyBackupData}` of one room."""
    if not isinstance(sessions, Mapping):
        raise bad_json("'sessions' must be an object")
    return [_key(room_id, sid, data) for sid, data in sessions.items()]


def parse_room_keys(rooms: Any) -> list[BackedUpKey]:
    """`{"<room_id>": {"sessions": {...}}}`."""
    if not isinstance(rooms, Mapping):
        raise bad_json("'rooms' must be an object")
    out: list[BackedUpKey] = []
    for room_id, room in rooms.items():
        if not isinstance(room, Mapping):
            raise bad_json("each room must be an object with 'sessions'")
        out.extend(parse_sessions(room_id, room.get("sessions")))
    return out


def _version_json(v: BackupVersion) -> JsonDict:
    return {
        "algorithm": v.algorithm,
        "auth_data": v.auth_data,
        "version": str(v.version),
        "etag": str(v.etag),
        "count": v.count,
    }


class KeyBackupService:
    def __init__(self, store: BackupStore) -> None:
        self._store = store

    # -- versions ----------------------------------------------------------------------------
    async def create_version(self, user_id: str, algorithm: str, auth_data: Any) -> str:
        return str(await self._store.create_version(user_id, algorithm, auth_data))

    async def get_version(self, user_id: str, version: str | None) -> JsonDict:
        number = None if version is None else _version_number(version)
        found = await self._store.get_version(user_id, number)
        if found is None:
            raise not_found(
                "No current backup version."
                if version is None
                else f"Unknown backup version {version!r}."
            )
        return _version_json(found)

    async def update_version(
        self,
        user_id: str,
        version: str,
        *,
        algorithm: str,
        auth_data: Any,
        body_version: str | None,
    ) -> None:
        if body_version is not None and body_version != version:
            raise invalid_param("'version' in the body does not match the path.")
        number = _version_number(version)
        found = await self._store.get_version(user_id, number)
        if found is None:
            raise not_found(f"Unknown backup version {version!r}.")
        if found.algorithm != algorithm:
            raise invalid_param("The algorithm of a backup cannot change.")
        if not await self._store.update_version(user_id, number, auth_data):
            raise not_found(f"Unknown backup version {version!r}.")

    async def delete_version(self, user_id: str, version: str) -> None:
        status = await self._store.delete_version(user_id, _version_number(version))
        # Spec: deleting an already deleted backup succeeds.
        if status is DeleteVersionStatus.NOT_FOUND:
            raise not_found(f"Unknown backup version {version!r}.")

    # -- keys --------------------------------------------------------------------------------
    async def put_keys(
        self, user_id: str, version: str, keys: Sequence[BackedUpKey]
    ) -> JsonDict:
        number = _version_number(version)
        if any(not isinstance(k.key.session_data, Mapping) for k in keys):
            found = await self._store.get_version(user_id, number)
            if found is not None and found.algorithm in SPEC_BACKUP_ALGORITHMS:
                raise bad_json("'session_data' must be an object")
        result = await self._store.put_keys(user_id, number, keys)
        if result.status is PutStatus.NO_BACKUP:
            raise not_found("No backup exists.")
        if result.status is PutStatus.WRONG_VERSION:
            raise MatrixError(
                403,
                "M_WRONG_ROOM_KEYS_VERSION",
                "Wrong backup version.",
                current_version=str(result.current_version),
            )
        return {"etag": str(result.etag), "count": result.count}

    async def _get(
        self, user_id: str, version: str, room_id: str | None, session_id: str | None
    ) -> list[BackedUpKey]:
        keys = await self._store.get_keys(
            user_id, _version_number(version), room_id, session_id
        )
        if keys is None:
            raise not_found(f"Unknown backup version {version!r}.")
        return keys

    async def get_all_keys(self, user_id: str, version: str) -> JsonDict:
        rooms: dict[str, JsonDict] = {}
        for k in await self._get(user_id, version, None, None):
            room = rooms.setdefault(k.room_id, {"sessions": {}})
            room["sessions"][k.session_id] = k.key.to_json()
        return {"rooms": rooms}

    async def get_room_keys(self, user_id: str, version: str, room_id: str) -> JsonDict:
        keys = await self._get(user_id, version, room_id, None)
        return {"sessions": {k.session_id: k.key.to_json() for k in keys}}

    async def get_session_key(
        self, user_id: str, version: str, room_id: str, session_id: str
    ) -> JsonDict:
        keys = await self._get(user_id, version, room_id, session_id)
        if not keys:
            raise not_found("No room key found for this session.")
        return keys[0].key.to_json()

    async def delete_keys(
        self,
        user_id: str,
        version: str,
        room_id: str | None = None,
        session_id: str | None = None,
    ) -> JsonDict:
        after = await self._store.delete_keys(
            user_id, _version_number(version), room_id, session_id
        )
        if after is None:
            raise not_found(f"Unknown backup version {version!r}.")
        return {"etag": str(after.etag), "count": after.count}
