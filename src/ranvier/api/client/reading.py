"""Reading rooms.

    GET /_matrix/client/v3/rooms/{roomId}/messages
    GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}
    GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}
    GET /_matrix/client/v3/rooms/{roomId}/state
    GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}   (`format=event`)
    GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}              (empty state key)
    GET /_matrix/client/v3/rooms/{roomId}/members
    GET /_matrix/client/v3/rooms/{roomId}/joined_members
    GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event

Spec: C-S API > Events > Getting events for a room; Event context. Access rules live in
the services (`services/rooms/visibility.py`).
"""

from __future__ import annotations

from typing import Any, Literal

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest, client_paths
from ranvier.core.errors import MatrixError, bad_json, invalid_param
from ranvier.core.filters import FilterError, RoomEventFilter, parse_room_event_filter
from ranvier.services.rooms.reading import Reader, RoomReadService

__all__ = ["ReadingResource"]

JsonDict = dict[str, Any]
_MEMBERSHIPS = ("join", "invite", "knock", "leave", "ban")


def _reader(req: MatrixRequest) -> Reader:
    return Reader(req.user.user_id, req.user.device_id)


def _direction(
    req: MatrixRequest, default: Literal["b", "f"] | None
) -> Literal["b", "f"]:
    value = req.query.get("dir")
    if value is None and default is not None:
        return default
    if value == "b":
        return "b"
    if value == "f":
        return "f"
    if value is None:
        raise MatrixError(400, "M_MISSING_PARAM", "Missing 'dir'")
    raise invalid_param("'dir' must be 'b' or 'f'")


def _filter(req: MatrixRequest) -> RoomEventFilter | None:
    raw = req.query_json("filter")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise bad_json("'filter' must be a JSON object")
    try:
        return parse_room_event_filter(raw)
    except FilterError as e:
        raise bad_json(f"Invalid filter: {e}") from None


def _limit(req: MatrixRequest, default: int) -> int:
    limit = req.query_int("limit", default)
    if limit is None or limit < 0:
        raise invalid_param("'limit' must be a non-negative integer")
    return limit


def _membership(req: MatrixRequest, name: str) -> str | None:
    value = req.query.get(name)
    if value is not None and value not in _MEMBERSHIPS:
        raise invalid_param(f"'{name}' must be one of {', '.join(_MEMBERSHIPS)}")
    return value


class ReadingResource:
    def __init__(self, reading: RoomReadService) -> None:
        self._r = reading

    async def messages(self, req: MatrixRequest) -> JsonDict:
        flt = _filter(req)
        default_limit = flt.limit if flt is not None and flt.limit is not None else 10
        return await self._r.get_messages(
            _reader(req),
            req.path_param("roomId"),
            from_token=req.query.get("from"),
            to_token=req.query.get("to"),
            direction=_direction(req, "f"),
            limit=_limit(req, default_limit),
            flt=flt,
        )

    async def context(self, req: MatrixRequest) -> JsonDict:
        return await self._r.get_context(
            _reader(req),
            req.path_param("roomId"),
            req.path_param("eventId"),
            limit=_limit(req, 10),
            flt=_filter(req),
        )

    async def event(self, req: MatrixRequest) -> JsonDict:
        return await self._r.get_event(
            _reader(req), req.path_param("roomId"), req.path_param("eventId")
        )

    async def state(self, req: MatrixRequest) -> list[JsonDict]:
        return await self._r.get_state(_reader(req), req.path_param("roomId"))

    async def state_event(self, req: MatrixRequest) -> JsonDict:
        event = await self._r.get_state_event(
            _reader(req),
            req.path_param("roomId"),
            req.path_param("eventType"),
            req.raw.match_info.get("stateKey", ""),
        )
        fmt = req.query.get("format", "content")
        if fmt == "event":
            return event
        if fmt != "content":
            raise invalid_param("'format' must be 'content' or 'event'")
        content: JsonDict = event.get("content", {})
        return content

    async def members(self, req: MatrixRequest) -> JsonDict:
        chunk = await self._r.get_members(
            _reader(req),
            req.path_param("roomId"),
            at=req.query.get("at"),
            membership=_membership(req, "membership"),
            not_membership=_membership(req, "not_membership"),
        )
        return {"chunk": chunk}

    async def joined_members(self, req: MatrixRequest) -> JsonDict:
        return await self._r.get_joined_members(_reader(req), req.path_param("roomId"))

    async def timestamp_to_event(self, req: MatrixRequest) -> JsonDict:
        ts = req.query_int("ts")
        if ts is None:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing 'ts'")
        return await self._r.timestamp_to_event(
            _reader(req), req.path_param("roomId"), ts, _direction(req, None)
        )

    def endpoints(self) -> list[Endpoint]:
        g = AuthMode.GUEST_OK
        state_key = client_paths("/rooms/{roomId}/state/{eventType}/{stateKey:.*}")
        state_empty = client_paths("/rooms/{roomId}/state/{eventType}")
        return [
            Endpoint(
                "GET", client_paths("/rooms/{roomId}/messages"), self.messages, auth=g
            ),
            Endpoint(
                "GET",
                client_paths("/rooms/{roomId}/context/{eventId}"),
                self.context,
                auth=g,
            ),
            Endpoint(
                "GET",
                client_paths("/rooms/{roomId}/event/{eventId}"),
                self.event,
                auth=g,
            ),
            Endpoint("GET", client_paths("/rooms/{roomId}/state"), self.state, auth=g),
            Endpoint("GET", state_key + state_empty, self.state_event, auth=g),
            Endpoint(
                "GET", client_paths("/rooms/{roomId}/members"), self.members, auth=g
            ),
            Endpoint(
                "GET",
                client_paths("/rooms/{roomId}/joined_members"),
                self.joined_members,
                auth=g,
            ),
            Endpoint(
                "GET",
                client_paths("/rooms/{roomId}/timestamp_to_event", prefix="v1"),
                self.timestamp_to_event,
                auth=g,
            ),
        ]
