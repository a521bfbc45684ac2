"""Server-side key backup.

    POST   /_matrix/client/v3/room_keys/version
    GET    /_matrix/client/v3/room_keys/version
    GET    /_matrix/client/v3/room_keys/version/{version}
    PUT    /_matrix/client/v3/room_keys/version/{version}
    DELETE /_matrix/client/v3/room_keys/version/{version}
    GET    /_matrix/client/v3/room_keys/keys?version=…
    PUT    /_matrix/client/v3/room_keys/keys?version=…
    DELETE /_matrix/client/v3/room_keys/keys?version=…
    GET    /_matrix/client/v3/room_keys/keys/{roomId}?version=…
    PUT    /_matrix/client/v3/room_keys/keys/{roomId}?version=…
    DELETE /_matrix/client/v3/room_keys/keys/{roomId}?version=…
    GET    /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}?version=…
    PUT    /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}?version=…
    DELETE /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}?version=…

Spec: C-S API > End-to-End Encryption > Server-side key backups.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, JsonBody, MatrixRequest, client_paths
from ranvier.core.errors import missing_param
from ranvier.services.e2e.backup import (
    SPEC_BACKUP_ALGORITHMS,
    KeyBackupService,
    parse_room_keys,
    parse_sessions,
)

__all__ = ["RoomKeysResource"]

JsonDict = dict[str, Any]


def _version_param(req: MatrixRequest) -> str:
    version = req.query.get("version")
    if not version:
        raise missing_param("Missing 'version'.")
    return version


def _auth_data(body: JsonBody, algorithm: str) -> Any:
    """Spec: `auth_data` is "algorithm-dependent data". For the spec's algorithm it is an
    object (`public_key`, `signatures`); other algorithms are opaque to the server, so
    any JSON value is kept as given (as Synapse; SyTest backs up a string)."""
    if algorithm in SPEC_BACKUP_ALGORITHMS:
        auth_data: Any = body.get_dict("auth_data")
    else:
        auth_data = body.raw.get("auth_data")
    if auth_data is None:
        raise missing_param("Missing 'auth_data'.")
    return auth_data


class RoomKeysResource:
    def __init__(self, backup: KeyBackupService) -> None:
        self._backup = backup

    # -- versions ----------------------------------------------------------------------------
    async def create_version(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        algorithm = body.require_str("algorithm")
        version = await self._backup.create_version(
            req.user.user_id, algorithm, _auth_data(body, algorithm)
        )
        return {"version": version}

    async def get_current_version(self, req: MatrixRequest) -> JsonDict:
        return await self._backup.get_version(req.user.user_id, None)

    async def get_version(self, req: MatrixRequest) -> JsonDict:
        return await self._backup.get_version(
            req.user.user_id, req.path_param("version")
        )

    async def put_version(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        algorithm = body.require_str("algorithm")
        await self._backup.update_version(
            req.user.user_id,
            req.path_param("version"),
            algorithm=algorithm,
            auth_data=_auth_data(body, algorithm),
            body_version=body.get_str("version"),
        )
        return {}

    async def delete_version(self, req: MatrixRequest) -> JsonDict:
        await self._backup.delete_version(req.user.user_id, req.path_param("version"))
        return {}

    # -- keys --------------------------------------------------------------------------------
    async def get_keys(self, req: MatrixRequest) -> JsonDict:
        return await self._backup.get_all_keys(req.user.user_id, _version_param(req))

    async def put_keys(self, req: MatrixRequest) -> JsonDict:
        version = _version_param(req)
        body = await req.json()
        rooms = body.get_dict("rooms")
        if rooms is None:
            raise missing_param("Missing 'rooms'.")
        keys = parse_room_keys(rooms)
        return await self._backup.put_keys(req.user.user_id, version, keys)

    async def delete_keys(self, req: MatrixRequest) -> JsonDict:
        return await self._backup.delete_keys(req.user.user_id, _version_param(req))

    async def get_room(self, req: MatrixRequest) -> JsonDict:
        return await self._backup.get_room_keys(
            req.user.user_id, _version_param(req), req.path_param("roomId")
        )

    async def put_room(self, req: MatrixRequest) -> JsonDict:
        version = _version_param(req)
        body = await req.json()
        sessions = body.get_dict("sessions")
        if sessions is None:
            raise missing_param("Missing 'sessions'.")
        keys = parse_sessions(req.path_param("roomId"), sessions)
        return await self._backup.put_keys(req.user.user_id, version, keys)

    async def delete_room(self, req: MatrixRequest) -> JsonDict:
        return await self._backup.delete_keys(
            req.user.user_id, _version_param(req), req.path_param("roomId")
        )

    async def get_session(self, req: MatrixRequest) -> JsonDict:
        return await self._backup.get_session_key(
            req.user.user_id,
            _version_param(req),
            req.path_param("roomId"),
            req.path_param("sessionId"),
        )

    async def put_session(self, req: MatrixRequest) -> JsonDict:
        version = _version_param(req)
        body = await req.json()
        room_id = req.path_param("roomId")
        keys = parse_sessions(room_id, {req.path_param("sessionId"): body.raw})
        return await self._backup.put_keys(req.user.user_id, version, keys)

    async def delete_session(self, req: MatrixRequest) -> JsonDict:
        return await self._backup.delete_keys(
            req.user.user_id,
            _version_param(req),
            req.path_param("roomId"),
            req.path_param("sessionId"),
        )

    def endpoints(self) -> list[Endpoint]:
        version = client_paths("/room_keys/version")
        one_version = client_paths("/room_keys/version/{version}")
        keys = client_paths("/room_keys/keys")
        room = client_paths("/room_keys/keys/{roomId}")
        session = client_paths("/room_keys/keys/{roomId}/{sessionId}")
        user = AuthMode.USER
        return [
            Endpoint("POST", version, self.create_version, auth=user),
            Endpoint("GET", version, self.get_current_version, auth=user),
            Endpoint("GET", one_version, self.get_version, auth=user),
            Endpoint("PUT", one_version, self.put_version, auth=user),
            Endpoint("DELETE", one_version, self.delete_version, auth=user),
            Endpoint("GET", keys, self.get_keys, auth=user),
            Endpoint("PUT", keys, self.put_keys, auth=user),
            Endpoint("DELETE", keys, self.delete_keys, auth=user),
            Endpoint("GET", room, self.get_room, auth=user),
            Endpoint("PUT", room, self.put_room, auth=user),
            Endpoint("DELETE", room, self.delete_room, auth=user),
            Endpoint("GET", session, self.get_session, auth=user),
            Endpoint("PUT", session, self.put_session, auth=user),
            Endpoint("DELETE", session, self.delete_session, auth=user),
        ]
