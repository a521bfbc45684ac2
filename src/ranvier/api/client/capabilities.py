"""GET /_matrix/client/v3/capabilities — what the requester may do on this server.

Spec: Client-Server API > Capabilities negotiation.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest, client_paths
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS


class CapabilitiesResource:
    def __init__(self, default_room_version: str) -> None:
        self._capabilities: dict[str, Any] = {
            "m.change_password": {"enabled": True},
            "m.room_versions": {
                "default": default_room_version,
                "available": dict.fromkeys(KNOWN_ROOM_VERSIONS, "stable"),
            },
            "m.set_displayname": {"enabled": True},
            "m.set_avatar_url": {"enabled": True},
            "m.3pid_changes": {"enabled": False},
            "m.get_login_token": {"enabled": True},
            "m.profile_fields": {"enabled": True},
        }

    async def get_capabilities(self, _req: MatrixRequest) -> dict[str, Any]:
        return {"capabilities": self._capabilities}

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "GET",
                client_paths("/capabilities"),
                self.get_capabilities,
                auth=AuthMode.GUEST_OK,
            )
        ]
