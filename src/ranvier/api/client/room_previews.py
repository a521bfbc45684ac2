"""Looking at one room without /sync.

    GET /_matrix/client/v1/room_summary/{roomIdOrAlias}    (since v1.15; auth optional)
    GET /_matrix/client/v3/rooms/{roomId}/initialSync      (legacy)

Spec: C-S API > Rooms > Room Summaries; Events > Getting events for a room.
Summaries cover rooms this server is in (`via` is accepted and not used yet).
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest, client_paths
from ranvier.services.rooms.previews import RoomInitialSyncService, RoomSummaryService


class RoomPreviewsResource:
    def __init__(
        self, summaries: RoomSummaryService, initial_sync: RoomInitialSyncService
    ) -> None:
        self._summaries = summaries
        self._initial_sync = initial_sync

    async def get_room_summary(self, req: MatrixRequest) -> dict[str, Any]:
        user_id = req.requester.user_id if req.requester is not None else None
        return await self._summaries.get_room_summary(
            user_id, req.path_param("roomIdOrAlias")
        )

    async def get_room_initial_sync(self, req: MatrixRequest) -> dict[str, Any]:
        user = req.user
        return await self._initial_sync.get_room_initial_sync(
            user.user_id, user.device_id, req.path_param("roomId")
        )

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "GET",
                client_paths("/room_summary/{roomIdOrAlias}", prefix="v1"),
                self.get_room_summary,
                auth=AuthMode.OPTIONAL,
            ),
            Endpoint(
                "GET",
                client_paths("/rooms/{roomId}/initialSync"),
                self.get_room_initial_sync,
                auth=AuthMode.GUEST_OK,
            ),
        ]
