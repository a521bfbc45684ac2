"""Room tagging.

    GET    /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags
    PUT    /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}
    DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}

Spec: Client-Server API > Modules > Room Tagging. Tags are the `m.tag` room account
data entry, which sync delivers. Own tags only (403).
"""

from __future__ import annotations

from typing import Any

from ranvier.api.client.account_data import room_id_param
from ranvier.api.http import (
    AuthMode,
    Endpoint,
    MatrixRequest,
    client_paths,
    require_self,
)
from ranvier.services.account_data import AccountDataService


class TagsResource:
    def __init__(self, account_data: AccountDataService) -> None:
        self._account_data = account_data

    async def get_tags(self, req: MatrixRequest) -> dict[str, Any]:
        user_id = req.path_param("userId")
        require_self(req, user_id)
        return {"tags": await self._account_data.get_tags(user_id, room_id_param(req))}

    async def put_tag(self, req: MatrixRequest) -> dict[str, Any]:
        user_id = req.path_param("userId")
        require_self(req, user_id)
        room_id = room_id_param(req)
        body = await req.json()
        await self._account_data.set_tag(
            user_id, room_id, req.path_param("tag"), body.raw
        )
        return {}

    async def delete_tag(self, req: MatrixRequest) -> dict[str, Any]:
        user_id = req.path_param("userId")
        require_self(req, user_id)
        await self._account_data.delete_tag(
            user_id, room_id_param(req), req.path_param("tag")
        )
        return {}

    def endpoints(self) -> list[Endpoint]:
        tags = client_paths("/user/{userId}/rooms/{roomId}/tags")
        tag = client_paths("/user/{userId}/rooms/{roomId}/tags/{tag}")
        return [
            Endpoint("GET", tags, self.get_tags, auth=AuthMode.USER),
            Endpoint("PUT", tag, self.put_tag, auth=AuthMode.USER),
            Endpoint("DELETE", tag, self.delete_tag, auth=AuthMode.USER),
        ]
