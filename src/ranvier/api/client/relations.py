"""Relations and threads.

    GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}
    GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}
    GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}
    GET /_matrix/client/v1/rooms/{roomId}/threads

Spec: C-S API > Forming relationships between events; Threading. Query parameters are
parsed here; access and aggregation live in `services/rooms/relations.py`.
"""

from __future__ import annotations

from typing import Any, Literal

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest, client_paths
from ranvier.core.errors import invalid_param
from ranvier.services.rooms.relations import RelationQuery, RelationService, ThreadQuery

__all__ = ["RelationsResource"]

JsonDict = dict[str, Any]

DEFAULT_LIMIT = 50


def _direction(req: MatrixRequest) -> Literal["b", "f"]:
    value = req.query.get("dir", "b")
    if value == "b":
        return "b"
    if value == "f":
        return "f"
    raise invalid_param("'dir' must be 'b' or 'f'")


def _limit(req: MatrixRequest) -> int:
    limit = req.query_int("limit", DEFAULT_LIMIT, minimum=0)
    return DEFAULT_LIMIT if limit is None else limit


class RelationsResource:
    def __init__(self, relations: RelationService) -> None:
        self._relations = relations

    async def relations(self, req: MatrixRequest) -> JsonDict:
        match = req.raw.match_info
        query = RelationQuery(
            rel_type=match.get("relType"),
            event_type=match.get("eventType"),
            from_token=req.query.get("from"),
            to_token=req.query.get("to"),
            direction=_direction(req),
            limit=_limit(req),
            recurse=req.query_bool("recurse"),
        )
        return await self._relations.get_relations(
            req.user.user_id,
            req.user.device_id,
            req.path_param("roomId"),
            req.path_param("eventId"),
            query,
        )

    async def threads(self, req: MatrixRequest) -> JsonDict:
        include = req.query.get("include", "all")
        if include not in ("all", "participated"):
            raise invalid_param("'include' must be 'all' or 'participated'")
        query = ThreadQuery(
            participated_only=include == "participated",
            from_token=req.query.get("from"),
            limit=_limit(req),
        )
        return await self._relations.get_threads(
            req.user.user_id, req.user.device_id, req.path_param("roomId"), query
        )

    def endpoints(self) -> list[Endpoint]:
        base = "/rooms/{roomId}/relations/{eventId}"
        return [
            Endpoint(
                "GET",
                client_paths(base, prefix="v1")
                + client_paths(base + "/{relType}", prefix="v1")
                + client_paths(base + "/{relType}/{eventType}", prefix="v1"),
                self.relations,
                auth=AuthMode.GUEST_OK,
            ),
            Endpoint(
                "GET",
                client_paths("/rooms/{roomId}/threads", prefix="v1"),
                self.threads,
                auth=AuthMode.GUEST_OK,
            ),
        ]
