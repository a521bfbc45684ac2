"""GET /.well-known/matrix/client and GET /.well-known/matrix/server (server discovery)."""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest


class WellKnownResource:
    def __init__(self, public_baseurl: str, federation_authority: str | None) -> None:
        self._client = {"m.homeserver": {"base_url": public_baseurl.rstrip("/") + "/"}}
        self._server = (
            {"m.server": federation_authority} if federation_authority else None
        )

    async def get_client(self, _req: MatrixRequest) -> dict[str, Any]:
        return self._client

    async def get_server(self, _req: MatrixRequest) -> Any:
        if self._server is None:
            return 404, {"errcode": "M_NOT_FOUND", "error": "No server delegation."}
        return self._server

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "GET",
                ("/.well-known/matrix/client",),
                self.get_client,
                auth=AuthMode.NONE,
            ),
            Endpoint(
                "GET",
                ("/.well-known/matrix/server",),
                self.get_server,
                auth=AuthMode.NONE,
            ),
        ]
