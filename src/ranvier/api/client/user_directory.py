"""POST /_matrix/client/v3/user_directory/search — find users by name or ID.

Spec: Client-Server API > User data > User directory.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest, client_paths
from ranvier.core.errors import invalid_param
from ranvier.services.user_directory import UserDirectoryService

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000


class UserDirectoryResource:
    def __init__(self, directory: UserDirectoryService) -> None:
        self._directory = directory

    async def search(self, req: MatrixRequest) -> dict[str, Any]:
        body = await req.json()
        term = body.require_str("search_term")
        limit = body.get_int("limit", DEFAULT_LIMIT)
        if limit is None or limit < 0:
            raise invalid_param("'limit' must be a non-negative integer")
        found = await self._directory.search_users(
            req.user.user_id, term, min(limit, MAX_LIMIT)
        )
        results = []
        for e in found.results:
            item: dict[str, Any] = {"user_id": e.user_id}
            if e.display_name is not None:
                item["display_name"] = e.display_name
            if e.avatar_url is not None:
                item["avatar_url"] = e.avatar_url
            results.append(item)
        return {"results": results, "limited": found.limited}

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "POST",
                client_paths("/user_directory/search"),
                self.search,
                auth=AuthMode.USER,
            )
        ]
