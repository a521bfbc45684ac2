"""User profiles.

    GET    /_matrix/client/v3/profile/{userId}
    GET    /_matrix/client/v3/profile/{userId}/{keyName}
    PUT    /_matrix/client/v3/profile/{userId}/{keyName}
    DELETE /_matrix/client/v3/profile/{userId}/{keyName}

`keyName` covers the pre-v1.16 `/displayname` and `/avatar_url` URLs too. Spec:
Client-Server API > User data > Profiles; guests may only set their `displayname`
(Modules > Guest access).
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
from ranvier.core.errors import MatrixError, missing_param
from ranvier.services.accounts.profiles import (
    DISPLAYNAME,
    ProfileService,
    check_key_name,
)


class ProfileResource:
    def __init__(self, profiles: ProfileService) -> None:
        self._profiles = profiles

    async def get_profile(self, req: MatrixRequest) -> dict[str, Any]:
        return await self._profiles.get_profile(req.path_param("userId"))

    async def get_field(self, req: MatrixRequest) -> dict[str, Any]:
        key = req.path_param("keyName")
        value = await self._profiles.get_profile_field(req.path_param("userId"), key)
        return {key: value}

    async def put_field(self, req: MatrixRequest) -> dict[str, Any]:
        user_id, key = req.path_param("userId"), req.path_param("keyName")
        check_key_name(key)
        require_self(req, user_id)
        if req.user.is_guest and key != DISPLAYNAME:
            raise MatrixError(
                403,
                "M_GUEST_ACCESS_FORBIDDEN",
                "Guests may only set their display name.",
            )
        body = await req.json()
        if key not in body:
            raise missing_param(f"Missing '{key}'.")
        await self._profiles.set_profile_field(user_id, key, body.raw[key])
        return {}

    async def delete_field(self, req: MatrixRequest) -> dict[str, Any]:
        user_id, key = req.path_param("userId"), req.path_param("keyName")
        check_key_name(key)
        require_self(req, user_id)
        await self._profiles.delete_profile_field(user_id, key)
        return {}

    def endpoints(self) -> list[Endpoint]:
        field = client_paths("/profile/{userId}/{keyName}")
        return [
            Endpoint(
                "GET",
                client_paths("/profile/{userId}"),
                self.get_profile,
                auth=AuthMode.NONE,
            ),
            Endpoint("GET", field, self.get_field, auth=AuthMode.NONE),
            Endpoint("PUT", field, self.put_field, auth=AuthMode.GUEST_OK),
            Endpoint("DELETE", field, self.delete_field, auth=AuthMode.USER),
        ]
