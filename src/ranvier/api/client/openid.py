"""OpenID tokens for third parties (Element Call, integration managers).

    POST /_matrix/client/v3/user/{userId}/openid/request_token

Spec: Client-Server API > OpenID. The token is checked by the third party through
`GET /_matrix/federation/v1/openid/userinfo` (api/federation/queries.py).
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest, client_paths
from ranvier.services.accounts.openid import OpenIdService


class OpenIdResource:
    def __init__(self, openid: OpenIdService) -> None:
        self._openid = openid

    async def request_token(self, req: MatrixRequest) -> dict[str, Any]:
        await req.json()  # the body is an empty object, but must be one
        return await self._openid.request_token(
            req.user.user_id, req.path_param("userId")
        )

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "POST",
                client_paths("/user/{userId}/openid/request_token"),
                self.request_token,
                auth=AuthMode.USER,
            ),
        ]
