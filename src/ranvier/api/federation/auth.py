"""Inbound federation request authentication: verifying `Authorization: X-Matrix`.

Spec: Server-Server API > Authentication > Request Authentication. The origin's key is
fetched through the keyring (it must be valid now); the signature covers
`{method, uri, origin, destination, content}` with `destination` = our server name. Any
failure is 401 M_UNAUTHORIZED. A verified request also proves the origin is up, so its
backoff is cleared (which wakes our outbound queue to it).

Server ACLs (`m.room.server_acl`) are per room: room endpoints check them with the
verified `MatrixRequest.origin`. `OriginPolicy` is the server-wide hook for deny lists.
"""

from __future__ import annotations

import logging
from typing import Protocol

from ranvier.api.http import ServerRequest
from ranvier.core.crypto.errors import SignatureError
from ranvier.core.crypto.keys import VerifyKey
from ranvier.core.errors import MatrixError, forbidden
from ranvier.core.ids import is_valid_server_name
from ranvier.federation.xmatrix import (
    XMatrixAuth,
    XMatrixParseError,
    parse_x_matrix,
    verify_request_signature,
)
from ranvier.util.clock import Clock

logger = logging.getLogger(__name__)


class RequestKeyLookup(Protocol):
    async def get_verify_key(
        self, server_name: str, key_id: str, minimum_valid_until_ts: int
    ) -> VerifyKey | None: ...


class OriginContact(Protocol):
    async def record_success(self, destination: str) -> None: ...


class OriginPolicy(Protocol):
    def is_origin_allowed(self, origin: str) -> bool: ...


def _unauthorized(message: str) -> MatrixError:
    return MatrixError(401, "M_UNAUTHORIZED", message)


def _first_x_matrix(headers: tuple[str, ...]) -> XMatrixAuth:
    error = "Missing X-Matrix Authorization header."
    for header in headers:
        try:
            return parse_x_matrix(header)
        except XMatrixParseError as e:
            error = f"Invalid X-Matrix Authorization header: {e}"
    raise _unauthorized(error)


class XMatrixAuthenticator:
    """`ServerAuthenticator` for the HTTP edge."""

    def __init__(
        self,
        server_name: str,
        keys: RequestKeyLookup,
        clock: Clock,
        *,
        contact: OriginContact | None = None,
        policy: OriginPolicy | None = None,
    ) -> None:
        self._server_name = server_name
        self._keys = keys
        self._clock = clock
        self._contact = contact
        self._policy = policy

    async def authenticate_server(self, request: ServerRequest) -> str:
        auth = _first_x_matrix(request.authorization)
        if auth.destination is not None and auth.destination != self._server_name:
            raise _unauthorized("Request is addressed to another server.")
        if not is_valid_server_name(auth.origin):
            # 400 as Synapse ("malformed Authorization header"; SyTest "Non-numeric
            # ports in server names are rejected"): the request is malformed, not
            # merely unauthenticated.
            raise MatrixError(400, "M_UNAUTHORIZED", "Invalid origin server name.")
        key = await self._keys.get_verify_key(
            auth.origin, auth.key_id, self._clock.time_msec()
        )
        if key is None:
            raise _unauthorized(f"Unknown key {auth.key_id} of {auth.origin}.")
        try:
            verify_request_signature(
                auth,
                self._server_name,
                request.method,
                request.uri,
                request.content,
                key,
            )
        except SignatureError:
            logger.info("bad X-Matrix signature from %s", auth.origin)
            raise _unauthorized("Invalid request signature.") from None
        if self._policy is not None and not self._policy.is_origin_allowed(auth.origin):
            raise forbidden("Server is not allowed to federate with this server.")
        if self._contact is not None:
            await self._contact.record_success(auth.origin)
        return auth.origin
