"""Receipts and read markers.

    POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}
    POST /_matrix/client/v3/rooms/{roomId}/read_markers

Spec: Client-Server API > Modules > Receipts; Read and unread markers. Receipt types
`m.read`, `m.read.private`, `m.fully_read`; a `thread_id` in the body makes a threaded
receipt. `read_markers` takes `m.fully_read`, `m.read` and `m.read.private`.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest, client_paths
from ranvier.services.receipts import ReceiptService


class ReceiptsResource:
    def __init__(self, receipts: ReceiptService) -> None:
        self._receipts = receipts

    async def post_receipt(self, req: MatrixRequest) -> dict[str, Any]:
        body = await req.json()
        await self._receipts.set_receipt(
            req.user.user_id,
            req.path_param("roomId"),
            req.path_param("receiptType"),
            req.path_param("eventId"),
            body.get_str("thread_id"),
        )
        return {}

    async def post_read_markers(self, req: MatrixRequest) -> dict[str, Any]:
        body = await req.json()
        await self._receipts.set_read_markers(
            req.user.user_id,
            req.path_param("roomId"),
            fully_read=body.get_str("m.fully_read"),
            read=body.get_str("m.read"),
            read_private=body.get_str("m.read.private"),
        )
        return {}

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "POST",
                client_paths("/rooms/{roomId}/receipt/{receiptType}/{eventId}"),
                self.post_receipt,
                auth=AuthMode.GUEST_OK,
            ),
            Endpoint(
                "POST",
                client_paths("/rooms/{roomId}/read_markers"),
                self.post_read_markers,
                auth=AuthMode.GUEST_OK,
            ),
        ]
