"""Syncing.

    GET /_matrix/client/v3/sync

Spec: Client-Server API > Events > Syncing. Query parameters: `filter` (ID or inline
JSON), `since`, `full_state`, `set_presence`, `timeout` (ms), `use_state_after`
(and its unstable name `org.matrix.msc4222.use_state_after`). An unparseable `since` is
400 M_INVALID_PARAM.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest, client_paths
from ranvier.core.errors import invalid_param
from ranvier.core.streams import InvalidTokenError, SyncToken
from ranvier.services.filters import FilterService
from ranvier.services.presence import STATES
from ranvier.services.sync.models import SyncRequest
from ranvier.services.sync.service import SyncService


class SyncResource:
    def __init__(self, sync: SyncService, filters: FilterService) -> None:
        self._sync = sync
        self._filters = filters

    async def get_sync(self, req: MatrixRequest) -> dict[str, Any]:
        user = req.user
        since_param = req.query.get("since")
        since: SyncToken | None = None
        if since_param:
            try:
                since = SyncToken.decode(since_param)
            except InvalidTokenError as e:
                raise invalid_param(f"Invalid 'since' token: {e}") from None
        set_presence = req.query.get("set_presence")
        if set_presence is not None and set_presence not in STATES:
            raise invalid_param(
                "'set_presence' must be online, offline or unavailable."
            )
        timeout = req.query_int("timeout", 0) or 0
        use_state_after = req.query_bool("use_state_after") or req.query_bool(
            "org.matrix.msc4222.use_state_after"
        )
        sync_filter = await self._filters.resolve_sync_filter(
            user.user_id, req.query.get("filter")
        )
        result = await self._sync.sync(
            SyncRequest(
                user_id=user.user_id,
                device_id=user.device_id,
                filter=sync_filter,
                since=since,
                timeout_ms=max(0, timeout),
                full_state=req.query_bool("full_state"),
                set_presence=set_presence,
                use_state_after=use_state_after,
            )
        )
        return result.to_json()

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "GET", client_paths("/sync"), self.get_sync, auth=AuthMode.GUEST_OK
            ),
        ]
