"""Federation queries, the public room directory, spaces and OpenID.

    GET  /_matrix/federation/v1/query/directory?room_alias=…
    GET  /_matrix/federation/v1/query/profile?user_id=…&field=…
    GET  /_matrix/federation/v1/publicRooms
    POST /_matrix/federation/v1/publicRooms
    GET  /_matrix/federation/v1/hierarchy/{roomId}?suggested_only=…
    GET  /_matrix/federation/v1/openid/userinfo?access_token=…

Spec: S-S API > Querying for information; Public Room Directory; Spaces; OpenID.
`openid/userinfo` is authenticated by the OpenID token, not X-Matrix.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, JsonBody, MatrixRequest
from ranvier.core.errors import MatrixError, bad_json, missing_param
from ranvier.services.federation.queries import FederationQueries
from ranvier.services.rooms.aliases import PublicRoomsFilter

__all__ = ["QueryResource"]

JsonDict = dict[str, Any]

V1 = "/_matrix/federation/v1"


def _public_filter(body: JsonBody) -> PublicRoomsFilter:
    flt = JsonBody(body.get_dict("filter") or {})
    room_types = flt.get_list("room_types")
    if room_types is not None and not all(
        t is None or isinstance(t, str) for t in room_types
    ):
        raise bad_json("'room_types' must be an array of strings or nulls")
    return PublicRoomsFilter(
        generic_search_term=flt.get_str("generic_search_term"), room_types=room_types
    )


class QueryResource:
    def __init__(self, queries: FederationQueries) -> None:
        self._queries = queries

    async def get_directory(self, req: MatrixRequest) -> JsonDict:
        alias = req.query.get("room_alias")
        if not alias:
            raise missing_param("Missing 'room_alias'.")
        return await self._queries.query_directory(alias)

    async def get_profile(self, req: MatrixRequest) -> JsonDict:
        user_id = req.query.get("user_id")
        if not user_id:
            raise missing_param("Missing 'user_id'.")
        return await self._queries.query_profile(user_id, req.query.get("field"))

    async def get_public_rooms(self, req: MatrixRequest) -> JsonDict:
        return await self._queries.get_public_rooms(
            limit=req.query_int("limit"),
            since=req.query.get("since"),
            flt=PublicRoomsFilter(),
        )

    async def post_public_rooms(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        return await self._queries.get_public_rooms(
            limit=body.get_int("limit"),
            since=body.get_str("since"),
            flt=_public_filter(body),
        )

    async def get_hierarchy(self, req: MatrixRequest) -> JsonDict:
        return await self._queries.get_hierarchy(
            req.origin,
            req.path_param("roomId"),
            suggested_only=req.query_bool("suggested_only"),
        )

    async def get_openid_userinfo(self, req: MatrixRequest) -> JsonDict:
        token = req.query.get("access_token")
        if not token:
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "Missing OpenID token.")
        return await self._queries.get_openid_userinfo(token)

    def endpoints(self) -> list[Endpoint]:
        def ep(
            method: str, path: str, handler: Any, auth: AuthMode = AuthMode.SERVER
        ) -> Endpoint:
            return Endpoint(method, (V1 + path,), handler, auth=auth)

        return [
            ep("GET", "/query/directory", self.get_directory),
            ep("GET", "/query/profile", self.get_profile),
            ep("GET", "/publicRooms", self.get_public_rooms),
            ep("POST", "/publicRooms", self.post_public_rooms),
            ep("GET", "/hierarchy/{roomId}", self.get_hierarchy),
            ep(
                "GET",
                "/openid/userinfo",
                self.get_openid_userinfo,
                auth=AuthMode.NONE,
            ),
        ]
