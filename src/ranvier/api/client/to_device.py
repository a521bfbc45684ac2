"""Send-to-device messaging.

    PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}

Spec: Client-Server API > Modules > Send-to-Device messaging. Body `{"messages":
{user_id: {device_id or "*": content}}}`; idempotent per (device, txnId).
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest, client_paths
from ranvier.core.errors import missing_param
from ranvier.services.to_device import ToDeviceService


class ToDeviceResource:
    def __init__(self, to_device: ToDeviceService) -> None:
        self._to_device = to_device

    async def put_send_to_device(self, req: MatrixRequest) -> dict[str, Any]:
        body = await req.json()
        messages = body.get_dict("messages")
        if messages is None:
            raise missing_param("Missing 'messages'.")
        user = req.user
        await self._to_device.send_to_device(
            user.user_id,
            user.device_id or "",
            req.path_param("eventType"),
            req.path_param("txnId"),
            messages,
        )
        return {}

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "PUT",
                client_paths("/sendToDevice/{eventType}/{txnId}"),
                self.put_send_to_device,
                auth=AuthMode.GUEST_OK,
            ),
        ]
