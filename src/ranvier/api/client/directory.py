"""Room aliases and the published room directory.

    GET    /_matrix/client/v3/directory/room/{roomAlias}
    PUT    /_matrix/client/v3/directory/room/{roomAlias}
    DELETE /_matrix/client/v3/directory/room/{roomAlias}
    GET    /_matrix/client/v3/rooms/{roomId}/aliases
    GET    /_matrix/client/v3/directory/list/room/{roomId}
    PUT    /_matrix/client/v3/directory/list/room/{roomId}
    GET    /_matrix/client/v3/publicRooms
    POST   /_matrix/client/v3/publicRooms

Spec: C-S API > Rooms > Room aliases; Published room directory. `server=` on the
public room list asks that server (over federation).
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, JsonBody, MatrixRequest, client_paths
from ranvier.core.errors import bad_json, invalid_param
from ranvier.core.ids import is_valid_server_name
from ranvier.services.rooms.aliases import DirectoryService, PublicRoomsFilter
from ranvier.services.rooms.messages import RoomMessageService
from ranvier.services.rooms.visibility import EventVisibility

__all__ = ["DirectoryResource"]

JsonDict = dict[str, Any]


def _remote_server(server: str | None, ours: str) -> str | None:
    if server in (None, "", ours):
        return None
    if not is_valid_server_name(server):
        raise invalid_param(f"'server' is not a server name: {server!r}")
    return server


def _parse_public_filter(body: JsonBody) -> PublicRoomsFilter:
    raw = body.get_dict("filter") or {}
    flt = JsonBody(raw)
    room_types = flt.get_list("room_types")
    if room_types is not None and not all(
        t is None or isinstance(t, str) for t in room_types
    ):
        raise bad_json("'room_types' must be an array of strings or nulls")
    return PublicRoomsFilter(
        generic_search_term=flt.get_str("generic_search_term"), room_types=room_types
    )


class DirectoryResource:
    def __init__(
        self,
        server_name: str,
        directory: DirectoryService,
        messages: RoomMessageService,
        visibility: EventVisibility,
    ) -> None:
        self._server_name = server_name
        self._directory = directory
        self._messages = messages
        self._visibility = visibility

    async def get_alias(self, req: MatrixRequest) -> JsonDict:
        room_id, servers = await self._directory.resolve_alias(
            req.path_param("roomAlias")
        )
        return {"room_id": room_id, "servers": servers}

    async def put_alias(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        await self._directory.create_alias(
            req.user.user_id, req.path_param("roomAlias"), body.require_str("room_id")
        )
        return {}

    async def delete_alias(self, req: MatrixRequest) -> JsonDict:
        await self._directory.delete_alias(
            req.user.user_id, req.path_param("roomAlias"), self._messages
        )
        return {}

    async def get_room_aliases(self, req: MatrixRequest) -> JsonDict:
        room_id = req.path_param("roomId")
        await self._visibility.check_can_read(room_id, req.user.user_id)
        return {"aliases": await self._directory.get_local_aliases(room_id)}

    async def get_visibility(self, req: MatrixRequest) -> JsonDict:
        return {
            "visibility": await self._directory.get_visibility(req.path_param("roomId"))
        }

    async def put_visibility(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        await self._directory.set_visibility(
            req.user.user_id,
            req.path_param("roomId"),
            body.get_str("visibility", "public") or "",
        )
        return {}

    async def get_public_rooms(self, req: MatrixRequest) -> JsonDict:
        limit = req.query_int("limit")
        if limit is not None and limit < 0:
            raise invalid_param("'limit' must not be negative")
        remote = _remote_server(req.query.get("server"), self._server_name)
        if remote is not None:
            return await self._directory.get_remote_public_rooms(
                remote, limit=limit, since=req.query.get("since")
            )
        return await self._directory.get_public_rooms(
            limit=limit, since=req.query.get("since"), flt=PublicRoomsFilter()
        )

    async def post_public_rooms(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        limit = body.get_int("limit")
        if limit is not None and limit < 0:
            raise invalid_param("'limit' must not be negative")
        remote = _remote_server(req.query.get("server"), self._server_name)
        if remote is not None:
            return await self._directory.get_remote_public_rooms(
                remote,
                limit=limit,
                since=body.get_str("since"),
                search_filter=body.get_dict("filter"),
                include_all_networks=body.get_bool("include_all_networks"),
                third_party_instance_id=body.get_str("third_party_instance_id"),
            )
        return await self._directory.get_public_rooms(
            limit=limit, since=body.get_str("since"), flt=_parse_public_filter(body)
        )

    def endpoints(self) -> list[Endpoint]:
        alias = client_paths("/directory/room/{roomAlias}")
        listing = client_paths("/directory/list/room/{roomId}")
        return [
            Endpoint("GET", alias, self.get_alias, auth=AuthMode.OPTIONAL),
            Endpoint("PUT", alias, self.put_alias),
            Endpoint("DELETE", alias, self.delete_alias),
            Endpoint(
                "GET",
                client_paths("/rooms/{roomId}/aliases"),
                self.get_room_aliases,
                auth=AuthMode.GUEST_OK,
            ),
            Endpoint("GET", listing, self.get_visibility, auth=AuthMode.OPTIONAL),
            Endpoint("PUT", listing, self.put_visibility),
            Endpoint(
                "GET",
                client_paths("/publicRooms"),
                self.get_public_rooms,
                auth=AuthMode.OPTIONAL,
            ),
            Endpoint("POST", client_paths("/publicRooms"), self.post_public_rooms),
        ]
