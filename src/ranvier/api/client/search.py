"""Server-side search.

    POST /_matrix/client/v3/search

Spec: C-S API > Server Side Search. Only the `room_events` category exists; the body is
parsed into `RoomEventsCriteria` here and `services/search.py` does the rest.
"""

from __future__ import annotations

from typing import Any, Literal

from ranvier.api.http import Endpoint, JsonBody, MatrixRequest, client_paths
from ranvier.core.errors import bad_json, invalid_param, missing_param
from ranvier.core.filters import FilterError, RoomEventFilter, parse_room_event_filter
from ranvier.services.search import (
    MAX_CONTEXT,
    EventContextSpec,
    RoomEventsCriteria,
    SearchService,
)
from ranvier.storage.stores.search import SEARCH_KEYS

__all__ = ["SearchResource", "parse_room_events_criteria"]

JsonDict = dict[str, Any]
_GROUP_KEYS = ("room_id", "sender")


def _order(body: JsonBody) -> Literal["rank", "recent"]:
    value = body.get_str("order_by", "rank")
    if value == "rank":
        return "rank"
    if value == "recent":
        return "recent"
    raise invalid_param("'order_by' must be 'rank' or 'recent'")


def _keys(body: JsonBody) -> tuple[str, ...]:
    keys = body.get_str_list("keys")
    if keys is None:
        return SEARCH_KEYS
    unknown = [k for k in keys if k not in SEARCH_KEYS]
    if unknown:
        raise invalid_param(f"Unknown search key {unknown[0]!r}")
    return tuple(dict.fromkeys(keys))


def _filter(body: JsonBody) -> RoomEventFilter | None:
    raw = body.get_dict("filter")
    if raw is None:
        return None
    try:
        return parse_room_event_filter(raw)
    except FilterError as e:
        raise bad_json(f"Invalid filter: {e}") from None


def _context_limit(body: JsonBody, key: str) -> int:
    value = body.get_int(key, 5)
    if value is None or value < 0:
        raise invalid_param(f"'{key}' must be a non-negative integer")
    return min(value, MAX_CONTEXT)


def _event_context(body: JsonBody) -> EventContextSpec | None:
    raw = body.get_dict("event_context")
    if raw is None:
        return None
    ctx = JsonBody(raw)
    return EventContextSpec(
        before_limit=_context_limit(ctx, "before_limit"),
        after_limit=_context_limit(ctx, "after_limit"),
        include_profile=ctx.get_bool("include_profile"),
    )


def _group_by(body: JsonBody) -> tuple[str, ...]:
    raw = body.get_dict("groupings")
    if raw is None:
        return ()
    keys: list[str] = []
    for item in JsonBody(raw).get_list("group_by") or []:
        if not isinstance(item, dict):
            raise bad_json("'group_by' entries must be objects")
        key = JsonBody(item).require_str("key")
        if key not in _GROUP_KEYS:
            raise invalid_param("Group 'key' must be 'room_id' or 'sender'")
        keys.append(key)
    return tuple(dict.fromkeys(keys))


def parse_room_events_criteria(raw: JsonDict) -> RoomEventsCriteria:
    body = JsonBody(raw)
    return RoomEventsCriteria(
        search_term=body.require_str("search_term"),
        keys=_keys(body),
        filter=_filter(body),
        order_by=_order(body),
        event_context=_event_context(body),
        include_state=body.get_bool("include_state"),
        group_by=_group_by(body),
    )


class SearchResource:
    def __init__(self, search: SearchService) -> None:
        self._search = search

    async def search(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        categories = body.get_dict("search_categories")
        if categories is None:
            raise missing_param("Missing 'search_categories'")
        room_events = JsonBody(categories).get_dict("room_events")
        if room_events is None:
            return {"search_categories": {}}
        return await self._search.search_room_events(
            req.user.user_id,
            req.user.device_id,
            parse_room_events_criteria(room_events),
            req.query.get("next_batch"),
        )

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("POST", client_paths("/search"), self.search)]
