"""Presence.

    GET /_matrix/client/v3/presence/{userId}/status
    PUT /_matrix/client/v3/presence/{userId}/status

Spec: Client-Server API > Modules > Presence. Only the user sets their own presence;
others may read it when they share a room (403 otherwise); a user with no presence yet
is `offline`.
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
from ranvier.services.presence import PresenceService


class PresenceResource:
    def __init__(self, presence: PresenceService) -> None:
        self._presence = presence

    async def get_status(self, req: MatrixRequest) -> dict[str, Any]:
        return await self._presence.get_presence(
            req.user.user_id, req.path_param("userId")
        )

    async def put_status(self, req: MatrixRequest) -> dict[str, Any]:
        user_id = req.path_param("userId")
        require_self(req, user_id)
        body = await req.json()
        await self._presence.set_presence(
            user_id, body.require_str("presence"), body.get_str("status_msg")
        )
        return {}

    def endpoints(self) -> list[Endpoint]:
        path = client_paths("/presence/{userId}/status")
        return [
            Endpoint("GET", path, self.get_status, auth=AuthMode.GUEST_OK),
            Endpoint("PUT", path, self.put_status, auth=AuthMode.GUEST_OK),
        ]
