"""Pushers and the notification list.

    GET  /_matrix/client/v3/pushers
    POST /_matrix/client/v3/pushers/set
    GET  /_matrix/client/v3/notifications?from=&limit=&only=

Spec: Client-Server API > Modules > Push Notifications. `kind: null` deletes a pusher;
missing fields are 400 M_MISSING_PARAM, invalid ones M_INVALID_PARAM.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import Endpoint, MatrixRequest, client_paths
from ranvier.core.errors import missing_param
from ranvier.services.push.notifications import NotificationsService
from ranvier.services.push.pushers import PusherService, SetPusherRequest


class PushersResource:
    def __init__(
        self, pushers: PusherService, notifications: NotificationsService
    ) -> None:
        self._pushers = pushers
        self._notifications = notifications

    async def get_pushers(self, req: MatrixRequest) -> dict[str, Any]:
        return {"pushers": await self._pushers.get_pushers(req.user.user_id)}

    async def set_pusher(self, req: MatrixRequest) -> dict[str, Any]:
        body = await req.json()
        if "kind" not in body:
            raise missing_param("Missing 'kind'.")
        parsed = SetPusherRequest(
            kind=body.get_str("kind"),
            app_id=body.require_str("app_id"),
            pushkey=body.require_str("pushkey"),
            app_display_name=body.get_str("app_display_name"),
            device_display_name=body.get_str("device_display_name"),
            profile_tag=body.get_str("profile_tag"),
            lang=body.get_str("lang"),
            data=body.get_dict("data"),
            append=body.get_bool("append"),
        )
        requester = req.user
        await self._pushers.set_pusher(requester.user_id, requester.device_id, parsed)
        return {}

    async def get_notifications(self, req: MatrixRequest) -> dict[str, Any]:
        return await self._notifications.get_notifications(
            req.user.user_id,
            from_token=req.query.get("from"),
            limit=req.query_int("limit", None, minimum=0, maximum=1_000_000),
            only=req.query.get("only"),
        )

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint("GET", client_paths("/pushers"), self.get_pushers),
            Endpoint(
                "POST",
                client_paths("/pushers/set"),
                self.set_pusher,
                ratelimit="default",
            ),
            Endpoint("GET", client_paths("/notifications"), self.get_notifications),
        ]
