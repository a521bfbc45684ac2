"""Server version and shared-secret registration (Synapse admin API).

    GET  /_synapse/admin/v1/server_version
    GET  /_synapse/admin/v1/register     -> {"nonce": ...}
    POST /_synapse/admin/v1/register     {nonce, username, password, admin, mac, ...}

Shared-secret registration is how `register_new_matrix_user` and SyTest create accounts:
the MAC is HMAC-SHA1, keyed with `registration.shared_secret`, over
`nonce NUL username NUL password NUL ("admin"|"notadmin")` and, when given,
`NUL user_type`, sent as lowercase hex. A nonce is good for one attempt and for
`NONCE_LIFETIME_MS`, as in Synapse.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from hashlib import sha1
from typing import Any, Final, Protocol

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest
from ranvier.core.errors import MatrixError, forbidden, invalid_param, missing_param
from ranvier.util.clock import Clock

NONCE_LIFETIME_MS: Final = 60_000
# Unredeemed nonces kept at most; the oldest are dropped first (an unauthenticated GET
# mints them, so the table must not grow without bound).
MAX_NONCES: Final = 10_000


@functools.cache
def server_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ranvier")
    except PackageNotFoundError:
        return "unknown"


async def get_server_version(_req: MatrixRequest) -> dict[str, Any]:
    return {"server_version": server_version()}


def registration_mac(
    secret: str,
    nonce: str,
    username: str,
    password: str,
    admin: bool,
    user_type: str | None = None,
) -> str:
    """The MAC `register_new_matrix_user` sends (hex HMAC-SHA1)."""
    mac = hmac.new(secret.encode(), digestmod=sha1)
    mac.update(nonce.encode())
    mac.update(b"\x00")
    mac.update(username.encode())
    mac.update(b"\x00")
    mac.update(password.encode())
    mac.update(b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    if user_type:
        mac.update(b"\x00")
        mac.update(user_type.encode())
    return mac.hexdigest()


class SharedSecretRegistrar(Protocol):
    async def register_admin_created(
        self,
        localpart: str,
        password: str,
        *,
        admin: bool,
        displayname: str | None,
        client_ip: str | None,
    ) -> dict[str, Any]:
        """Create the account and log it in; the `/register`-style answer."""
        ...


class SharedSecretRegistration:
    def __init__(
        self, secret: str | None, registrar: SharedSecretRegistrar, clock: Clock
    ) -> None:
        self._secret = secret
        self._registrar = registrar
        self._clock = clock
        self._nonces: dict[str, int] = {}

    def _require_enabled(self) -> str:
        if not self._secret:
            raise MatrixError(
                400, "M_UNKNOWN", "Shared secret registration is not enabled"
            )
        return self._secret

    def _expire(self, now: int) -> None:
        while self._nonces:
            nonce, issued = next(iter(self._nonces.items()))
            if now - issued < NONCE_LIFETIME_MS and len(self._nonces) <= MAX_NONCES:
                break
            del self._nonces[nonce]

    async def get_nonce(self, _req: MatrixRequest) -> dict[str, Any]:
        self._require_enabled()
        now = self._clock.time_msec()
        self._expire(now)
        nonce = secrets.token_hex(32)
        self._nonces[nonce] = now
        return {"nonce": nonce}

    async def post_register(self, req: MatrixRequest) -> dict[str, Any]:
        secret = self._require_enabled()
        body = await req.json()
        self._expire(self._clock.time_msec())
        nonce = body.get_str("nonce")
        if nonce is None:
            raise missing_param("nonce must be specified")
        if nonce not in self._nonces:
            raise MatrixError(400, "M_UNKNOWN", "unrecognised nonce")
        # Single use: the nonce is spent by this attempt whatever its outcome.
        del self._nonces[nonce]
        username = body.get_str("username")
        if not username:
            raise missing_param("username must be specified")
        if "\x00" in username:
            raise invalid_param("Invalid username")
        password = body.get_str("password")
        if not password:
            raise missing_param("password must be specified")
        if "\x00" in password:
            raise invalid_param("Invalid password")
        admin = body.get_bool("admin")
        user_type = body.get_str("user_type")
        if user_type is not None:
            raise invalid_param("Invalid user type")
        displayname = body.get_str("displayname")
        got = body.get_str("mac")
        if got is None:
            raise missing_param("mac must be specified")
        want = registration_mac(secret, nonce, username, password, admin, user_type)
        if not hmac.compare_digest(want.encode(), got.encode()):
            raise forbidden("HMAC incorrect")
        return await self._registrar.register_admin_created(
            username,
            password,
            admin=admin,
            displayname=displayname,
            client_ip=req.client_ip,
        )

    def endpoints(self) -> list[Endpoint]:
        path = ("/_synapse/admin/v1/register",)
        return [
            Endpoint(
                "GET",
                ("/_synapse/admin/v1/server_version",),
                get_server_version,
                auth=AuthMode.NONE,
            ),
            Endpoint("GET", path, self.get_nonce, auth=AuthMode.NONE),
            Endpoint(
                "POST",
                path,
                self.post_register,
                auth=AuthMode.NONE,
                ratelimit="registration",
            ),
        ]
