"""Reporting content to the server's moderators.

    POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}
    POST /_matrix/client/v3/rooms/{roomId}/report            (since v1.13)
    POST /_matrix/client/v3/users/{userId}/report            (since v1.14)

Spec: Client-Server API > Modules > Reporting content.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest, client_paths
from ranvier.services.reports import ReportService


class ReportsResource:
    def __init__(self, reports: ReportService) -> None:
        self._reports = reports

    async def report_event(self, req: MatrixRequest) -> dict[str, Any]:
        body = await req.json()
        await self._reports.report_event(
            req.user.user_id,
            req.path_param("roomId"),
            req.path_param("eventId"),
            body.get_str("reason"),
            body.get_int("score"),
        )
        return {}

    async def report_room(self, req: MatrixRequest) -> dict[str, Any]:
        body = await req.json()
        await self._reports.report_room(
            req.user.user_id, req.path_param("roomId"), body.require_str("reason")
        )
        return {}

    async def report_user(self, req: MatrixRequest) -> dict[str, Any]:
        body = await req.json()
        await self._reports.report_user(
            req.user.user_id, req.path_param("userId"), body.require_str("reason")
        )
        return {}

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "POST",
                client_paths("/rooms/{roomId}/report/{eventId}"),
                self.report_event,
                auth=AuthMode.USER,
            ),
            Endpoint(
                "POST",
                client_paths("/rooms/{roomId}/report"),
                self.report_room,
                auth=AuthMode.USER,
            ),
            Endpoint(
                "POST",
                client_paths("/users/{userId}/report"),
                self.report_user,
                auth=AuthMode.USER,
            ),
        ]
