"""The deprecated (r0) sync API, kept because clients and SyTest still call it.

    GET /_matrix/client/v3/events                      (deprecated; `room_id`: peeking)
    GET /_matrix/client/v3/events/{eventId}            (deprecated)
    GET /_matrix/client/v3/initialSync                 (deprecated)
    GET /_matrix/client/v3/rooms/{roomId}/initialSync  (legacy)

Spec: Client-Server API > Legacy sync (old_sync.yaml, peeking_events.yaml,
room_initial_sync.yaml). `from` is a sync token (what /sync, /initialSync and /events
hand out); a bad one is 400 M_INVALID_PARAM. Guests may use the event stream of one room
(`room_id` is required, as in Synapse) and the room initial sync.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest, client_paths
from ranvier.core.errors import MatrixError, invalid_param
from ranvier.core.streams import InvalidTokenError, SyncToken
from ranvier.services.sync.legacy import INITIAL_SYNC_LIMIT, LegacySyncService


def _from_token(req: MatrixRequest) -> SyncToken | None:
    text = req.query.get("from")
    if not text:
        return None
    try:
        return SyncToken.decode(text)
    except InvalidTokenError as e:
        raise invalid_param(f"Invalid 'from' token: {e}") from None


class OldSyncResource:
    def __init__(self, legacy: LegacySyncService) -> None:
        self._legacy = legacy

    async def get_events(self, req: MatrixRequest) -> dict[str, Any]:
        user = req.user
        room_id = req.query.get("room_id") or None
        if user.is_guest and room_id is None:
            # As Synapse: a guest's event stream is one room's (peeking or joined).
            raise MatrixError(400, "M_MISSING_PARAM", "Guests must give 'room_id'.")
        return await self._legacy.get_events(
            user.user_id,
            user.device_id,
            from_token=_from_token(req),
            timeout_ms=max(0, req.query_int("timeout", 0) or 0),
            room_id=room_id,
        )

    async def get_event(self, req: MatrixRequest) -> dict[str, Any]:
        user = req.user
        return await self._legacy.get_event(
            user.user_id, user.device_id, req.path_param("eventId")
        )

    async def get_initial_sync(self, req: MatrixRequest) -> dict[str, Any]:
        user = req.user
        return await self._legacy.get_initial_sync(
            user.user_id,
            user.device_id,
            limit=_limit(req),
            archived=req.query_bool("archived"),
        )

    async def get_room_initial_sync(self, req: MatrixRequest) -> dict[str, Any]:
        user = req.user
        return await self._legacy.get_room_initial_sync(
            user.user_id, user.device_id, req.path_param("roomId"), limit=_limit(req)
        )

    def endpoints(self) -> list[Endpoint]:
        guest = AuthMode.GUEST_OK
        return [
            Endpoint("GET", client_paths("/events"), self.get_events, auth=guest),
            Endpoint(
                "GET", client_paths("/events/{eventId}"), self.get_event, auth=guest
            ),
            Endpoint(
                "GET",
                client_paths("/initialSync"),
                self.get_initial_sync,
                auth=AuthMode.USER,
            ),
            Endpoint(
                "GET",
                client_paths("/rooms/{roomId}/initialSync"),
                self.get_room_initial_sync,
                auth=guest,
            ),
        ]


def _limit(req: MatrixRequest) -> int:
    limit = req.query_int("limit", INITIAL_SYNC_LIMIT)
    return INITIAL_SYNC_LIMIT if limit is None else max(0, limit)
