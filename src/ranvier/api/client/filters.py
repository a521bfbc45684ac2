"""Filters.

    POST /_matrix/client/v3/user/{userId}/filter
    GET  /_matrix/client/v3/user/{userId}/filter/{filterId}

Spec: Client-Server API > Filtering > API endpoints. Users manage only their own filters
(403 M_FORBIDDEN otherwise); an invalid filter is 400 M_BAD_JSON; an unknown ID 404.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import (
    AuthMode,
    Endpoint,
    MatrixRequest,
    client_paths,
    require_self,
)
from ranvier.services.filters import FilterService


class FiltersResource:
    def __init__(self, filters: FilterService) -> None:
        self._filters = filters

    async def post_filter(self, req: MatrixRequest) -> dict[str, Any]:
        user_id = req.path_param("userId")
        require_self(req, user_id)
        body = await req.json()
        filter_id = await self._filters.create_filter(user_id, body.raw)
        return {"filter_id": filter_id}

    async def get_filter(self, req: MatrixRequest) -> dict[str, Any]:
        user_id = req.path_param("userId")
        require_self(req, user_id)
        return await self._filters.get_filter_json(user_id, req.path_param("filterId"))

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "POST",
                client_paths("/user/{userId}/filter"),
                self.post_filter,
                auth=AuthMode.GUEST_OK,
            ),
            Endpoint(
                "GET",
                client_paths("/user/{userId}/filter/{filterId}"),
                self.get_filter,
                auth=AuthMode.GUEST_OK,
            ),
        ]
