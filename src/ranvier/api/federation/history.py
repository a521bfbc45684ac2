"""Room history and state served to other servers.

    GET  /_matrix/federation/v1/backfill/{roomId}?v=…&limit=…
    POST /_matrix/federation/v1/get_missing_events/{roomId}
    GET  /_matrix/federation/v1/state/{roomId}?event_id=…
    GET  /_matrix/federation/v1/state_ids/{roomId}?event_id=…
    GET  /_matrix/federation/v1/event/{eventId}
    GET  /_matrix/federation/v1/event_auth/{roomId}/{eventId}
    GET  /_matrix/federation/v1/timestamp_to_event/{roomId}?ts=…&dir=f|b

Spec: S-S API > Backfilling and retrieving missing events; Retrieving events; Room
state; Timestamp to event. Logic and access checks live in `HistoryService`.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest
from ranvier.core.errors import invalid_param, missing_param
from ranvier.services.federation.serving import HistoryService

__all__ = ["HistoryResource"]

JsonDict = dict[str, Any]

_PREFIX: Final = "/_matrix/federation/v1"
DEFAULT_BACKFILL_LIMIT: Final = 10
DEFAULT_MISSING_LIMIT: Final = 10
MAX_BACKFILL_FROM: Final = 20


def _event_id_param(req: MatrixRequest) -> str:
    # Query parameters are checked before the room (and its ACL) is looked at, as in
    # Synapse: SyTest asks for a 400 even for an unknown room.
    event_id = req.query.get("event_id")
    if not event_id:
        raise missing_param("Missing 'event_id'.")
    return event_id


class HistoryResource:
    def __init__(self, history: HistoryService) -> None:
        self._history = history

    async def get_backfill(self, req: MatrixRequest) -> JsonDict:
        from_ids = req.raw.query.getall("v", [])
        if not from_ids:
            raise missing_param("Missing 'v'.")
        limit = req.query_int("limit", DEFAULT_BACKFILL_LIMIT)
        return await self._history.backfill(
            req.origin,
            req.path_param("roomId"),
            list(from_ids)[:MAX_BACKFILL_FROM],
            limit or 0,
        )

    async def post_get_missing_events(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        # Missing lists are empty ones, as Synapse (SyTest's ACL test sends `{}`).
        earliest = body.get_str_list("earliest_events") or []
        latest = body.get_str_list("latest_events") or []
        limit = body.get_int("limit", DEFAULT_MISSING_LIMIT)
        min_depth = body.get_int("min_depth", 0)
        return await self._history.get_missing_events(
            req.origin,
            req.path_param("roomId"),
            earliest=earliest,
            latest=latest,
            limit=limit if limit is not None else DEFAULT_MISSING_LIMIT,
            min_depth=min_depth or 0,
        )

    async def get_state(self, req: MatrixRequest) -> JsonDict:
        return await self._history.get_state(
            req.origin, req.path_param("roomId"), _event_id_param(req)
        )

    async def get_state_ids(self, req: MatrixRequest) -> JsonDict:
        return await self._history.get_state_ids(
            req.origin, req.path_param("roomId"), _event_id_param(req)
        )

    async def get_event(self, req: MatrixRequest) -> JsonDict:
        return await self._history.get_event(req.origin, req.path_param("eventId"))

    async def get_event_auth(self, req: MatrixRequest) -> JsonDict:
        return await self._history.get_event_auth(
            req.origin, req.path_param("roomId"), req.path_param("eventId")
        )

    async def get_timestamp_to_event(self, req: MatrixRequest) -> JsonDict:
        ts = req.query_int("ts")
        if ts is None:
            raise missing_param("Missing 'ts'.")
        raw_dir = req.query.get("dir")
        if not raw_dir:
            raise missing_param("Missing 'dir'.")
        if raw_dir not in ("f", "b"):
            raise invalid_param("'dir' must be f or b.")
        direction: Literal["f", "b"] = "f" if raw_dir == "f" else "b"
        return await self._history.timestamp_to_event(
            req.origin, req.path_param("roomId"), ts, direction
        )

    def endpoints(self) -> list[Endpoint]:
        def ep(method: str, path: str, handler: Any) -> Endpoint:
            return Endpoint(method, (_PREFIX + path,), handler, auth=AuthMode.SERVER)

        return [
            ep("GET", "/backfill/{roomId}", self.get_backfill),
            ep("POST", "/get_missing_events/{roomId}", self.post_get_missing_events),
            ep("GET", "/state/{roomId}", self.get_state),
            ep("GET", "/state_ids/{roomId}", self.get_state_ids),
            ep("GET", "/event/{eventId}", self.get_event),
            ep("GET", "/event_auth/{roomId}/{eventId}", self.get_event_auth),
            ep("GET", "/timestamp_to_event/{roomId}", self.get_timestamp_to_event),
        ]
