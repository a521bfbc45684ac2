"""GET /_matrix/client/v3/voip/turnServer — TURN credentials for VoIP calls.

Spec: Client-Server API > Modules > Voice over IP. `{}` when no TURN is configured.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest, client_paths
from ranvier.services.voip import TurnService


class VoipResource:
    def __init__(self, turn: TurnService) -> None:
        self._turn = turn

    async def get_turn_server(self, req: MatrixRequest) -> dict[str, Any]:
        user = req.user
        return self._turn.get_turn_server(user.user_id, is_guest=user.is_guest)

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "GET",
                client_paths("/voip/turnServer"),
                self.get_turn_server,
                auth=AuthMode.GUEST_OK,
            )
        ]
