"""End-to-end encryption keys of local users, for other servers.

    POST /_matrix/federation/v1/user/keys/query
    POST /_matrix/federation/v1/user/keys/claim
    GET  /_matrix/federation/v1/user/devices/{userId}

Spec: S-S API > End-to-End Encryption; Device Management.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.client.keys import parse_claims, parse_device_query
from ranvier.api.http import AuthMode, Endpoint, MatrixRequest
from ranvier.services.e2e.serving import FederationKeyServing

__all__ = ["UserKeysResource"]

JsonDict = dict[str, Any]

V1 = "/_matrix/federation/v1"


class UserKeysResource:
    def __init__(self, serving: FederationKeyServing) -> None:
        self._serving = serving

    async def query(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        return await self._serving.query_keys(parse_device_query(body))

    async def claim(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        return await self._serving.claim_keys(parse_claims(body))

    async def user_devices(self, req: MatrixRequest) -> JsonDict:
        return await self._serving.get_user_devices(req.path_param("userId"))

    def endpoints(self) -> list[Endpoint]:
        server = AuthMode.SERVER
        return [
            Endpoint("POST", (V1 + "/user/keys/query",), self.query, auth=server),
            Endpoint("POST", (V1 + "/user/keys/claim",), self.claim, auth=server),
            Endpoint(
                "GET", (V1 + "/user/devices/{userId}",), self.user_devices, auth=server
            ),
        ]
