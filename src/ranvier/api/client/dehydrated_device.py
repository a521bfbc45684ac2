"""Dehydrated devices (MSC3814, unstable).

PUT    /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device
GET    /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device
DELETE /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device
POST   /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device/{deviceId}/events
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest
from ranvier.core.errors import missing_param
from ranvier.services.e2e.dehydrated import DehydratedDevices

__all__ = ["DehydratedDeviceResource"]

JsonDict = dict[str, Any]

PREFIX = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"


class DehydratedDeviceResource:
    def __init__(self, devices: DehydratedDevices) -> None:
        self._devices = devices

    async def put(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        device_id = body.require_str("device_id")
        device_data = body.get_dict("device_data")
        if device_data is None:
            raise missing_param("Missing 'device_data'.")
        device_keys = body.get_dict("device_keys")
        if device_keys is None:
            raise missing_param("Missing 'device_keys'.")
        await self._devices.put(
            req.user.user_id,
            device_id,
            device_data,
            display_name=body.get_str("initial_device_display_name"),
            device_keys=device_keys,
            one_time_keys=body.get_dict("one_time_keys"),
            fallback_keys=body.get_dict("fallback_keys"),
        )
        return {"device_id": device_id}

    async def get(self, req: MatrixRequest) -> JsonDict:
        return await self._devices.get(req.user.user_id)

    async def delete(self, req: MatrixRequest) -> JsonDict:
        return {"device_id": await self._devices.delete(req.user.user_id)}

    async def events(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        return await self._devices.get_events(
            req.user.user_id, req.path_param("deviceId"), body.get_str("next_batch")
        )

    def endpoints(self) -> list[Endpoint]:
        user = AuthMode.USER
        return [
            Endpoint("PUT", (PREFIX,), self.put, auth=user),
            Endpoint("GET", (PREFIX,), self.get, auth=user),
            Endpoint("DELETE", (PREFIX,), self.delete, auth=user),
            Endpoint("POST", (PREFIX + "/{deviceId}/events",), self.events, auth=user),
        ]
