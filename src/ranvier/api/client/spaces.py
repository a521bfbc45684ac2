"""Spaces and mutual rooms.

    GET /_matrix/client/v1/rooms/{roomId}/hierarchy
    GET /_matrix/client/unstable/org.matrix.msc2946/rooms/{roomId}/hierarchy
    GET /_matrix/client/v1/mutual_rooms?user_id=…                         (since v1.19)
    GET /_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms?user_id=…

Spec: C-S API > Spaces; Mutual Rooms (MSC2666). The unstable paths are the ones
Synapse still serves for older clients; they answer the same.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest
from ranvier.core.errors import missing_param
from ranvier.services.rooms.spaces import MutualRoomsService, SpaceHierarchyService

__all__ = ["SpacesResource"]


class SpacesResource:
    def __init__(
        self, hierarchy: SpaceHierarchyService, mutual: MutualRoomsService
    ) -> None:
        self._hierarchy = hierarchy
        self._mutual = mutual

    async def get_hierarchy(self, req: MatrixRequest) -> dict[str, Any]:
        return await self._hierarchy.get_hierarchy(
            req.user.user_id,
            req.path_param("roomId"),
            suggested_only=req.query_bool("suggested_only"),
            limit=req.query_int("limit", minimum=1),
            max_depth=req.query_int("max_depth", minimum=0),
            from_token=req.query.get("from"),
        )

    async def get_mutual_rooms(self, req: MatrixRequest) -> dict[str, Any]:
        user_id = req.query.get("user_id")
        if not user_id:
            raise missing_param("Missing 'user_id'.")
        return await self._mutual.get_mutual_rooms(
            req.user.user_id, user_id, req.query.get("from")
        )

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "GET",
                (
                    "/_matrix/client/v1/rooms/{roomId}/hierarchy",
                    "/_matrix/client/unstable/org.matrix.msc2946/rooms/{roomId}/hierarchy",
                ),
                self.get_hierarchy,
                auth=AuthMode.GUEST_OK,
            ),
            Endpoint(
                "GET",
                (
                    "/_matrix/client/v1/mutual_rooms",
                    "/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms",
                ),
                self.get_mutual_rooms,
                auth=AuthMode.USER,
                ratelimit="default",
            ),
        ]
