"""Device management.

    GET    /_matrix/client/v3/devices
    GET    /_matrix/client/v3/devices/{deviceId}
    PUT    /_matrix/client/v3/devices/{deviceId}
    DELETE /_matrix/client/v3/devices/{deviceId}   (UIA: m.login.password)
    POST   /_matrix/client/v3/delete_devices       (UIA: m.login.password)

Spec: Client-Server API > Modules > Device Management. Guests may list, read and rename
their devices (Modules > Guest access) but not delete them.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.client.login import PASSWORD_FLOWS
from ranvier.api.client.register import uia_request
from ranvier.api.http import AuthMode, Endpoint, MatrixRequest, client_paths
from ranvier.core.errors import missing_param
from ranvier.services.accounts.devices import DeviceService
from ranvier.services.accounts.uia import UserInteractiveAuth
from ranvier.storage.stores.accounts import DeviceRow


def device_json(device: DeviceRow) -> dict[str, Any]:
    out: dict[str, Any] = {"device_id": device.device_id}
    if device.display_name is not None:
        out["display_name"] = device.display_name
    if device.last_seen_ip is not None:
        out["last_seen_ip"] = device.last_seen_ip
    if device.last_seen_ts is not None:
        out["last_seen_ts"] = device.last_seen_ts
    return out


class DevicesResource:
    def __init__(self, devices: DeviceService, uia: UserInteractiveAuth) -> None:
        self._devices = devices
        self._uia = uia

    async def get_devices(self, req: MatrixRequest) -> dict[str, Any]:
        devices = await self._devices.get_devices(req.user.user_id)
        return {"devices": [device_json(d) for d in devices]}

    async def get_device(self, req: MatrixRequest) -> dict[str, Any]:
        device = await self._devices.get_device(
            req.user.user_id, req.path_param("deviceId")
        )
        return device_json(device)

    async def put_device(self, req: MatrixRequest) -> dict[str, Any]:
        body = await req.json()
        user_id, device_id = req.user.user_id, req.path_param("deviceId")
        if "display_name" not in body:
            # Spec: without `display_name` the name is unchanged (the device must exist).
            await self._devices.get_device(user_id, device_id)
            return {}
        await self._devices.set_display_name(
            user_id, device_id, body.get_str("display_name")
        )
        return {}

    async def delete_device(self, req: MatrixRequest) -> dict[str, Any]:
        body = await req.json()
        user_id = req.user.user_id
        result = await self._uia.authenticate(
            uia_request(req, body, user_id), PASSWORD_FLOWS
        )
        await self._devices.delete_devices(user_id, [req.path_param("deviceId")])
        await self._uia.finish(result.session_id)
        return {}

    async def delete_devices(self, req: MatrixRequest) -> dict[str, Any]:
        body = await req.json()
        device_ids = body.get_str_list("devices")
        if device_ids is None:
            raise missing_param("Missing 'devices'.")
        user_id = req.user.user_id
        result = await self._uia.authenticate(
            uia_request(req, body, user_id), PASSWORD_FLOWS
        )
        await self._devices.delete_devices(user_id, device_ids)
        await self._uia.finish(result.session_id)
        return {}

    def endpoints(self) -> list[Endpoint]:
        one = client_paths("/devices/{deviceId}")
        return [
            Endpoint(
                "GET",
                client_paths("/devices"),
                self.get_devices,
                auth=AuthMode.GUEST_OK,
            ),
            Endpoint("GET", one, self.get_device, auth=AuthMode.GUEST_OK),
            Endpoint("PUT", one, self.put_device, auth=AuthMode.GUEST_OK),
            Endpoint("DELETE", one, self.delete_device, auth=AuthMode.USER),
            Endpoint(
                "POST",
                client_paths("/delete_devices"),
                self.delete_devices,
                auth=AuthMode.USER,
            ),
        ]
