"""Account registration.

    POST /_matrix/client/v3/register                                       (UIA; ?kind=guest)
    GET  /_matrix/client/v3/register/available?username=
    GET  /_matrix/client/v1/register/m.login.registration_token/validity?token=

Spec: Client-Server API > Account registration; Token-authenticated registration;
Modules > Guest access (guest registration and upgrade with `guest_access_token`);
Application Service API > Registration (`type: m.login.application_service`, no UIA).
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import (
    AuthMode,
    Endpoint,
    JsonBody,
    MatrixRequest,
    client_paths,
    extract_token,
)
from ranvier.core.appservice import AppServiceRegistry
from ranvier.core.errors import MatrixError, invalid_param, missing_param, missing_token
from ranvier.services.accounts.identifiers import MAX_DEVICE_ID_LENGTH
from ranvier.services.accounts.registration import RegisterRequest, RegistrationService
from ranvier.services.accounts.uia import UiaRequest

APPSERVICE_LOGIN = "m.login.application_service"


def device_id_param(body: JsonBody) -> str | None:
    device_id = body.get_str("device_id")
    if device_id is not None and not 0 < len(device_id) <= MAX_DEVICE_ID_LENGTH:
        raise invalid_param(f"'device_id' must be 1-{MAX_DEVICE_ID_LENGTH} characters.")
    return device_id


def uia_request(req: MatrixRequest, body: JsonBody, user_id: str | None) -> UiaRequest:
    return UiaRequest(
        uri=req.raw.path,
        method=req.raw.method,
        auth=body.get_dict("auth"),
        user_id=user_id,
    )


class RegisterResource:
    def __init__(
        self,
        server_name: str,
        registration: RegistrationService,
        app_services: AppServiceRegistry | None = None,
    ) -> None:
        self._server_name = server_name
        self._registration = registration
        self._app_services = app_services or AppServiceRegistry(())

    async def register(self, req: MatrixRequest) -> dict[str, Any]:
        kind = req.query.get("kind", "user")
        if kind not in ("user", "guest"):
            raise invalid_param("'kind' must be 'user' or 'guest'.")
        body = await req.json()
        if kind == "guest":
            # Spec: everything but initial_device_display_name is ignored for guests.
            name = body.raw.get("initial_device_display_name")
            registered = await self._registration.register_guest(
                name if isinstance(name, str) else None, req.client_ip
            )
            return registered.to_json(self._server_name)
        if body.get_str("type") == APPSERVICE_LOGIN:
            return await self._register_ghost(req, body)
        register = RegisterRequest(
            username=body.get_str("username"),
            password=body.get_str("password"),
            device_id=device_id_param(body),
            initial_device_display_name=body.get_str("initial_device_display_name"),
            inhibit_login=body.get_optional_bool("inhibit_login"),
            want_refresh=body.get_optional_bool("refresh_token"),
            guest_access_token=body.get_str("guest_access_token"),
            client_ip=req.client_ip,
        )
        registered = await self._registration.register(
            register, uia_request(req, body, None)
        )
        return registered.to_json(self._server_name)

    async def _register_ghost(
        self, req: MatrixRequest, body: JsonBody
    ) -> dict[str, Any]:
        """An application service registering a user in its namespace."""
        token = extract_token(req.raw)
        if token is None:
            raise missing_token()
        service = self._app_services.by_as_token(token)
        if service is None:
            raise MatrixError(
                401, "M_UNKNOWN_TOKEN", "Not an application service token."
            )
        localpart = body.require_str("username").lower()
        user_id = f"@{localpart}:{self._server_name}"
        if not service.is_user_in_namespace(user_id):
            raise MatrixError(
                400,
                "M_EXCLUSIVE",
                "User ID is not in the application service's namespace.",
            )
        register = RegisterRequest(
            username=localpart,
            password=None,
            device_id=device_id_param(body),
            initial_device_display_name=body.get_str("initial_device_display_name"),
            inhibit_login=body.get_optional_bool("inhibit_login"),
            want_refresh=body.get_optional_bool("refresh_token"),
            guest_access_token=None,
            client_ip=req.client_ip,
        )
        registered = await self._registration.register_appservice_user(
            localpart, register
        )
        return registered.to_json(self._server_name)

    async def available(self, req: MatrixRequest) -> dict[str, Any]:
        username = req.query.get("username")
        if not username:
            raise missing_param("Missing 'username'.")
        await self._registration.check_username(username)
        return {"available": True}

    async def token_validity(self, req: MatrixRequest) -> dict[str, Any]:
        token = req.query.get("token")
        if token is None:
            raise missing_param("Missing 'token'.")
        return {"valid": await self._registration.is_registration_token_valid(token)}

    def endpoints(self) -> list[Endpoint]:
        none = AuthMode.NONE
        return [
            Endpoint(
                "POST",
                client_paths("/register"),
                self.register,
                auth=none,
                ratelimit="registration",
            ),
            Endpoint(
                "GET",
                client_paths("/register/available"),
                self.available,
                auth=none,
                ratelimit="registration",
            ),
            Endpoint(
                "GET",
                client_paths(
                    "/register/m.login.registration_token/validity", prefix="v1"
                ),
                self.token_validity,
                auth=none,
                ratelimit="registration",
            ),
        ]
