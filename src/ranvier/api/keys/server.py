"""GET /_matrix/key/v2/server — this server's signed verify keys.

Spec: Server-Server API, "Retrieving server keys", "Publishing keys".
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest
from ranvier.services.server_keys import ServerKeys


class ServerKeyResource:
    def __init__(self, keys: ServerKeys) -> None:
        self._keys = keys

    async def get_server_key(self, _req: MatrixRequest) -> dict[str, Any]:
        return self._keys.signed_key_response()

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "GET",
                ("/_matrix/key/v2/server", "/_matrix/key/v2/server/{keyId}"),
                self.get_server_key,
                auth=AuthMode.NONE,
            )
        ]
