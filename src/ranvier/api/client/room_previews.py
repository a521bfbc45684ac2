"""Looking at one room without /sync.

    GET /_matrix/client/v1/room_summary/{roomIdOrAlias}    (since v1.15; auth optional)

Spec: C-S API > Rooms > Room Summaries. Summaries cover rooms this server is in (`via`
is accepted and not used yet). The room initial sync is in `old_sync.py`.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest, client_paths
from ranvier.services.rooms.previews import RoomSummaryService


class RoomPreviewsResource:
    def __init__(self, summaries: RoomSummaryService) -> None:
        self._summaries = summaries

    async def get_room_summary(self, req: MatrixRequest) -> dict[str, Any]:
        user_id = req.requester.user_id if req.requester is not None else None
        return await self._summaries.get_room_summary(
            user_id, req.path_param("roomIdOrAlias")
        )

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "GET",
                client_paths("/room_summary/{roomIdOrAlias}", prefix="v1"),
                self.get_room_summary,
                auth=AuthMode.OPTIONAL,
            ),
        ]
