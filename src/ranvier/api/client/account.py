"""Account management.

    GET  /_matrix/client/v3/account/whoami
    POST /_matrix/client/v3/account/password      (UIA: m.login.password)
    POST /_matrix/client/v3/account/deactivate    (UIA: m.login.password)
    GET  /_matrix/client/v3/account/3pid

Spec: Client-Server API > Client Authentication > Current account information; Account
management > Password management, Account deactivation; Adding account administrative
contact information (this server binds no third-party identifiers).
"""

from __future__ import annotations

from typing import Any

from ranvier.api.client.login import PASSWORD_FLOWS, token_owner
from ranvier.api.client.register import uia_request
from ranvier.api.http import AuthMode, Endpoint, MatrixRequest, client_paths
from ranvier.core.errors import missing_param
from ranvier.services.accounts.devices import DeviceService
from ranvier.services.accounts.passwords import check_password_acceptable
from ranvier.services.accounts.uia import UserInteractiveAuth


class AccountResource:
    def __init__(self, devices: DeviceService, uia: UserInteractiveAuth) -> None:
        self._devices = devices
        self._uia = uia

    async def whoami(self, req: MatrixRequest) -> dict[str, Any]:
        user = req.user
        out: dict[str, Any] = {"user_id": user.user_id, "is_guest": user.is_guest}
        if user.device_id is not None:
            out["device_id"] = user.device_id
        return out

    async def change_password(self, req: MatrixRequest) -> dict[str, Any]:
        body = await req.json()
        new_password = body.get_str("new_password")
        logout_devices = body.get_bool("logout_devices", default=True)
        if new_password is not None:
            check_password_acceptable(new_password)
        result = await self._uia.authenticate(
            uia_request(req, body, req.user.user_id), PASSWORD_FLOWS
        )
        if new_password is None:
            # Only required once authenticated: a client may send it with the last round.
            raise missing_param("Missing 'new_password'.")
        await self._devices.change_password(
            token_owner(req.user), new_password, logout_devices=logout_devices
        )
        await self._uia.finish(result.session_id)
        return {}

    async def deactivate(self, req: MatrixRequest) -> dict[str, Any]:
        body = await req.json()
        erase = body.get_bool("erase")
        body.get_str(
            "id_server"
        )  # type-checked only: no identity server bindings exist
        result = await self._uia.authenticate(
            uia_request(req, body, req.user.user_id), PASSWORD_FLOWS
        )
        await self._devices.deactivate(req.user.user_id, erase=erase)
        await self._uia.finish(result.session_id)
        return {"id_server_unbind_result": "no-support"}

    async def get_3pids(self, _req: MatrixRequest) -> dict[str, Any]:
        return {"threepids": []}

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "GET",
                client_paths("/account/whoami"),
                self.whoami,
                auth=AuthMode.GUEST_OK,
            ),
            Endpoint(
                "POST",
                client_paths("/account/password"),
                self.change_password,
                auth=AuthMode.USER,
            ),
            Endpoint(
                "POST",
                client_paths("/account/deactivate"),
                self.deactivate,
                auth=AuthMode.USER,
            ),
            Endpoint(
                "GET", client_paths("/account/3pid"), self.get_3pids, auth=AuthMode.USER
            ),
        ]
