"""POST /_matrix/client/v3/rooms/{roomId}/upgrade — replace a room by one of a newer
room version.

Spec: Client-Server API > Modules > Room Upgrades.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest, client_paths
from ranvier.services.rooms.upgrade import RoomUpgradeService


class RoomUpgradeResource:
    def __init__(self, upgrades: RoomUpgradeService) -> None:
        self._upgrades = upgrades

    async def upgrade_room(self, req: MatrixRequest) -> dict[str, Any]:
        body = await req.json()
        new_version = body.require_str("new_version")
        additional_creators = body.get_str_list("additional_creators") or []
        replacement = await self._upgrades.upgrade_room(
            req.user.user_id,
            req.path_param("roomId"),
            new_version,
            additional_creators,
        )
        return {"replacement_room": replacement}

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "POST",
                client_paths("/rooms/{roomId}/upgrade"),
                self.upgrade_room,
                auth=AuthMode.USER,
            )
        ]
