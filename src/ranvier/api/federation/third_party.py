"""Third-party invites, the server side.

    PUT  /_matrix/federation/v1/3pid/onbind
    POST /_matrix/federation/v1/3pid/onbind        (what Synapse serves; SyTest uses it)
    PUT  /_matrix/federation/v1/exchange_third_party_invite/{roomId}

Spec: S-S API > Third-party invites. `onbind` is called by identity servers, so it
carries no X-Matrix signature: what it asks for is only done when the identity
server's signature over `signed` checks out against the room's invite event.
Logic lives in `ThirdPartyInviteService`.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest
from ranvier.services.rooms.third_party_invites import ThirdPartyInviteService

__all__ = ["ThirdPartyResource"]

V1 = "/_matrix/federation/v1"


class ThirdPartyResource:
    def __init__(self, service: ThirdPartyInviteService) -> None:
        self._service = service

    async def on_bind(self, req: MatrixRequest) -> dict[str, Any]:
        await self._service.on_bind(await req.json_any())
        return {}

    async def exchange(self, req: MatrixRequest) -> dict[str, Any]:
        await self._service.on_exchange(
            req.origin, req.path_param("roomId"), await req.json_any()
        )
        return {}

    def endpoints(self) -> list[Endpoint]:
        onbind = (f"{V1}/3pid/onbind",)
        return [
            Endpoint("PUT", onbind, self.on_bind, auth=AuthMode.NONE),
            Endpoint("POST", onbind, self.on_bind, auth=AuthMode.NONE),
            Endpoint(
                "PUT",
                (f"{V1}/exchange_third_party_invite/{{roomId}}",),
                self.exchange,
                auth=AuthMode.SERVER,
            ),
        ]
