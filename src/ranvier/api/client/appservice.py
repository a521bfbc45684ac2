"""Application service → homeserver: identity assertion and the service endpoints.

    POST /_matrix/client/v1/appservice/{appserviceId}/ping

Spec: Application Service API > Client-Server API extensions. A request carrying a
service's `as_token` acts as the service's sender, or as the user named by `?user_id=`
when that user is in the service's user namespace and exists (the sender exists
implicitly); `org.matrix.msc3202.device_id` (MSC3202) picks the device.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ranvier.api.http import (
    AuthMode,
    Endpoint,
    MatrixRequest,
    Requester,
    client_paths,
)
from ranvier.core.appservice import AppService, AppServiceRegistry
from ranvier.core.errors import MatrixError, forbidden
from ranvier.storage.stores.accounts import UserRow
from ranvier.util.clock import Clock

MSC3202_DEVICE_ID = "org.matrix.msc3202.device_id"


class UserLookup(Protocol):
    async def get_user(self, user_id: str) -> UserRow | None: ...


class AppServiceAuth:
    def __init__(
        self, registry: AppServiceRegistry, users: UserLookup, server_name: str
    ) -> None:
        self._registry = registry
        self._users = users
        self._suffix = ":" + server_name

    async def authenticate_appservice(
        self, token: str, query: Mapping[str, str]
    ) -> Requester | None:
        service = self._registry.by_as_token(token)
        if service is None:
            return None
        user_id = query.get("user_id") or service.sender
        if not user_id.endswith(self._suffix) or not service.is_user_in_namespace(
            user_id
        ):
            raise forbidden(
                "Application service cannot masquerade as this user "
                f"({user_id} is not in its namespace)."
            )
        if user_id != service.sender and await self._users.get_user(user_id) is None:
            raise forbidden(f"Application service has not registered {user_id}.")
        return Requester(
            user_id=user_id,
            device_id=query.get(MSC3202_DEVICE_ID) or query.get("device_id"),
            app_service_id=service.id,
            ratelimited=service.rate_limited,
        )


class Pinger(Protocol):
    async def ping(
        self, service: AppService, transaction_id: str | None
    ) -> int | None: ...


class AppServiceResource:
    def __init__(
        self, registry: AppServiceRegistry, pinger: Pinger, clock: Clock
    ) -> None:
        self._registry = registry
        self._pinger = pinger
        self._clock = clock

    def _own_service(self, req: MatrixRequest, service_id: str) -> AppService:
        service = (
            self._registry.by_id(service_id)
            if req.user.app_service_id == service_id
            else None
        )
        if service is None:
            raise forbidden("Only the application service itself may do this.")
        return service

    async def ping(self, req: MatrixRequest) -> dict[str, Any]:
        service = self._own_service(req, req.path_param("appserviceId"))
        if service.url is None:
            raise MatrixError(400, "M_URL_NOT_SET", "The service has no URL.")
        body = await req.json()
        started = self._clock.monotonic()
        status = await self._pinger.ping(service, body.get_str("transaction_id"))
        if status is None:
            raise MatrixError(502, "M_CONNECTION_FAILED", "The service is unreachable.")
        if status != 200:
            error = MatrixError(502, "M_BAD_STATUS", "The service answered an error.")
            error.extra["status"] = status  # `status` is MatrixError's own argument
            raise error
        return {"duration_ms": int((self._clock.monotonic() - started) * 1000)}

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "POST",
                client_paths("/appservice/{appserviceId}/ping", prefix="v1"),
                self.ping,
                auth=AuthMode.USER,
            ),
        ]
