"""Typing notifications.

    PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}

Spec: Client-Server API > Modules > Typing Notifications. Body `{"typing": bool,
"timeout": ms}`; the timeout is capped at 30 s. Only the user themselves, and only in a
room they are joined to (403 otherwise).
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
from ranvier.core.errors import missing_param
from ranvier.services.typing import TypingService


class TypingResource:
    def __init__(self, typing: TypingService) -> None:
        self._typing = typing

    async def put_typing(self, req: MatrixRequest) -> dict[str, Any]:
        user_id = req.path_param("userId")
        require_self(req, user_id)
        body = await req.json()
        if "typing" not in body:
            raise missing_param("Missing 'typing'.")
        typing = body.get_bool("typing")
        await self._typing.set_typing(
            user_id, req.path_param("roomId"), typing, body.get_int("timeout")
        )
        return {}

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "PUT",
                client_paths("/rooms/{roomId}/typing/{userId}"),
                self.put_typing,
                auth=AuthMode.GUEST_OK,
            ),
        ]
