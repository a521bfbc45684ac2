"""Login, logout, token refresh and login tokens; the access-token authenticator.

    GET  /_matrix/client/v3/login
    POST /_matrix/client/v3/login                 (m.login.password, m.login.token,
                                                   m.login.application_service)
    POST /_matrix/client/v3/logout
    POST /_matrix/client/v3/logout/all
    POST /_matrix/client/v3/refresh
    POST /_matrix/client/v1/login/get_token       (UIA: m.login.password)

Spec: Client-Server API > Client Authentication > Legacy API (Login, Logout), Refreshing
access tokens, `POST /login/get_token`.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.client.register import APPSERVICE_LOGIN, device_id_param, uia_request
from ranvier.api.http import (
    AuthMode,
    Endpoint,
    JsonBody,
    MatrixRequest,
    Requester,
    client_paths,
    extract_token,
)
from ranvier.core.appservice import AppServiceRegistry
from ranvier.core.errors import MatrixError, forbidden, missing_param, missing_token
from ranvier.services.accounts.devices import DeviceService
from ranvier.services.accounts.login import (
    LOGIN_PASSWORD,
    LOGIN_TOKEN,
    LoginRequest,
    LoginService,
    identifier_user,
)
from ranvier.services.accounts.sessions import SessionService, TokenOwner
from ranvier.services.accounts.uia import PASSWORD, UserInteractiveAuth

PASSWORD_FLOWS: list[list[str]] = [[PASSWORD]]


def token_owner(requester: Requester) -> TokenOwner:
    return TokenOwner(
        user_id=requester.user_id,
        device_id=requester.device_id or "",
        is_guest=requester.is_guest,
        token_id=requester.token_id if requester.token_id is not None else -1,
    )


class AccessTokenAuthenticator:
    """The HTTP edge's `Authenticator`: access token -> `Requester`."""

    def __init__(self, sessions: SessionService) -> None:
        self._sessions = sessions

    async def authenticate(
        self, access_token: str, client_ip: str | None = None
    ) -> Requester:
        owner = await self._sessions.get_token_owner(access_token, client_ip)
        return Requester(
            owner.user_id,
            owner.device_id,
            owner.is_guest,
            owner.token_id,
            locked=owner.locked,
            suspended=owner.suspended,
            shadow_banned=owner.shadow_banned,
        )


class LoginResource:
    def __init__(
        self,
        server_name: str,
        login: LoginService,
        sessions: SessionService,
        devices: DeviceService,
        uia: UserInteractiveAuth,
        app_services: AppServiceRegistry | None = None,
    ) -> None:
        self._server_name = server_name
        self._login = login
        self._sessions = sessions
        self._devices = devices
        self._uia = uia
        self._app_services = app_services or AppServiceRegistry(())

    async def get_login(self, _req: MatrixRequest) -> dict[str, Any]:
        flows: list[dict[str, Any]] = [
            {"type": LOGIN_PASSWORD},
            {"type": LOGIN_TOKEN, "get_login_token": True},
        ]
        if self._app_services.services:
            flows.append({"type": APPSERVICE_LOGIN})
        return {"flows": flows}

    async def _appservice_user(self, req: MatrixRequest, body: JsonBody) -> str:
        """Spec: Application Service API > Server admin style permissions: a service
        logs in users of its namespace with its as_token, without a password."""
        token = extract_token(req.raw)
        if token is None:
            raise missing_token()
        service = self._app_services.by_as_token(token)
        if service is None:
            raise MatrixError(
                401, "M_UNKNOWN_TOKEN", "Not an application service token."
            )
        row = await self._login.find_user(identifier_user(body.raw))
        if row is None or not service.is_user_in_namespace(row.user_id):
            raise forbidden("The user is not in the application service's namespace.")
        return row.user_id

    async def post_login(self, req: MatrixRequest) -> dict[str, Any]:
        body = await req.json()
        login_type = body.require_str("type")
        verified = (
            await self._appservice_user(req, body)
            if login_type == APPSERVICE_LOGIN
            else None
        )
        issued = await self._login.login(
            LoginRequest(
                login_type=login_type,
                body=body.raw,
                device_id=device_id_param(body),
                initial_device_display_name=body.get_str("initial_device_display_name"),
                want_refresh=body.get_bool("refresh_token"),
                client_ip=req.client_ip,
                verified_user_id=verified,
            )
        )
        return issued.to_json(self._server_name)

    async def logout(self, req: MatrixRequest) -> dict[str, Any]:
        await self._devices.logout(token_owner(req.user))
        return {}

    async def logout_all(self, req: MatrixRequest) -> dict[str, Any]:
        await self._devices.logout_all(req.user.user_id)
        return {}

    async def refresh(self, req: MatrixRequest) -> dict[str, Any]:
        body = await req.json()
        token = body.get_str("refresh_token")
        if token is None:
            raise missing_param("Missing 'refresh_token'.")
        refreshed = await self._sessions.refresh(token)
        return refreshed.to_json()

    async def get_token(self, req: MatrixRequest) -> dict[str, Any]:
        body = await req.json()
        user_id = req.user.user_id
        # Spec: always re-prompt, so the session is never reused for a second token.
        result = await self._uia.authenticate(
            uia_request(req, body, user_id), PASSWORD_FLOWS
        )
        await self._uia.finish(result.session_id)
        token, lifetime = await self._sessions.create_login_token(user_id)
        return {"login_token": token, "expires_in_ms": lifetime}

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint("GET", client_paths("/login"), self.get_login, auth=AuthMode.NONE),
            Endpoint(
                "POST",
                client_paths("/login"),
                self.post_login,
                auth=AuthMode.NONE,
                ratelimit="login",
            ),
            Endpoint("POST", client_paths("/logout"), self.logout, auth=AuthMode.USER),
            Endpoint(
                "POST", client_paths("/logout/all"), self.logout_all, auth=AuthMode.USER
            ),
            Endpoint(
                "POST", client_paths("/refresh"), self.refresh, auth=AuthMode.NONE
            ),
            Endpoint(
                "POST",
                client_paths("/login/get_token", prefix="v1"),
                self.get_token,
                auth=AuthMode.USER,
                ratelimit="login",
            ),
        ]
