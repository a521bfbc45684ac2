"""Client config (account data).

    GET /_matrix/client/v3/user/{userId}/account_data/{type}
    PUT /_matrix/client/v3/user/{userId}/account_data/{type}
    GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}
    PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}

Spec: Client-Server API > Modules > Client Config. Users read and write only their own
(403); unknown entries are 404; `m.fully_read` and `m.push_rules` are server-managed
(405 M_BAD_JSON); room IDs must start with '!' (400 M_INVALID_PARAM).
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import (
    AuthMode,
    Endpoint,
    MatrixRequest,
    client_paths,
    require_self,
)
from ranvier.core.errors import invalid_param
from ranvier.services.account_data import AccountDataService


def room_id_param(req: MatrixRequest) -> str:
    room_id = req.path_param("roomId")
    # Since room v12 room IDs carry no server name: only the sigil is required.
    if not room_id.startswith("!") or len(room_id) < 2:
        raise invalid_param(f"{room_id!r} is not a room ID.")
    return room_id


class AccountDataResource:
    def __init__(self, account_data: AccountDataService) -> None:
        self._account_data = account_data

    async def get_global(self, req: MatrixRequest) -> dict[str, Any]:
        user_id = req.path_param("userId")
        require_self(req, user_id)
        return await self._account_data.get_account_data(
            user_id, None, req.path_param("type")
        )

    async def put_global(self, req: MatrixRequest) -> dict[str, Any]:
        user_id = req.path_param("userId")
        require_self(req, user_id)
        body = await req.json()
        await self._account_data.set_account_data(
            user_id, None, req.path_param("type"), body.raw
        )
        return {}

    async def get_room(self, req: MatrixRequest) -> dict[str, Any]:
        user_id = req.path_param("userId")
        require_self(req, user_id)
        return await self._account_data.get_account_data(
            user_id, room_id_param(req), req.path_param("type")
        )

    async def put_room(self, req: MatrixRequest) -> dict[str, Any]:
        user_id = req.path_param("userId")
        require_self(req, user_id)
        room_id = room_id_param(req)
        body = await req.json()
        await self._account_data.set_account_data(
            user_id, room_id, req.path_param("type"), body.raw
        )
        return {}

    def endpoints(self) -> list[Endpoint]:
        global_path = client_paths("/user/{userId}/account_data/{type}")
        room_path = client_paths("/user/{userId}/rooms/{roomId}/account_data/{type}")
        return [
            Endpoint("GET", global_path, self.get_global, auth=AuthMode.GUEST_OK),
            Endpoint("PUT", global_path, self.put_global, auth=AuthMode.GUEST_OK),
            Endpoint("GET", room_path, self.get_room, auth=AuthMode.GUEST_OK),
            Endpoint("PUT", room_path, self.put_room, auth=AuthMode.GUEST_OK),
        ]
