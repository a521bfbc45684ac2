"""OpenID tokens: a user proves their identity to a third party (an integration manager,
Element Call's LiveKit JWT service) which asks our federation API who the token belongs
to (spec: C-S API > OpenID; S-S API > OpenID).

Tokens are random, stored only as their SHA-256 and expire after an hour (Synapse's
lifetime). They grant nothing on this server: `userinfo` is their only use.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from ranvier.core.errors import MatrixError
from ranvier.services.accounts.identifiers import generate_token, hash_token
from ranvier.util.clock import Clock

__all__ = ["OPENID_TOKEN_LIFETIME_MS", "OpenIdService"]

OPENID_TOKEN_LIFETIME_MS: Final = 3_600_000
OPENID_TOKEN_PREFIX: Final = "rvo_"  # noqa: S105 - a protocol name, not a secret


class OpenIdTokenStore(Protocol):
    async def add_openid_token(
        self, token_hash: str, user_id: str, expires_ts: int, now_ms: int
    ) -> None: ...

    async def get_openid_token_user(
        self, token_hash: str, now_ms: int
    ) -> str | None: ...


class OpenIdService:
    def __init__(
        self, *, server_name: str, store: OpenIdTokenStore, clock: Clock
    ) -> None:
        self._server_name = server_name
        self._store = store
        self._clock = clock

    async def request_token(self, requester: str, user_id: str) -> dict[str, Any]:
        """`POST /user/{userId}/openid/request_token` for the requester itself."""
        if requester != user_id:
            raise MatrixError(
                403, "M_FORBIDDEN", "Cannot request OpenID tokens for other users."
            )
        token = generate_token(OPENID_TOKEN_PREFIX)
        now = self._clock.time_msec()
        await self._store.add_openid_token(
            hash_token(token), user_id, now + OPENID_TOKEN_LIFETIME_MS, now
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "matrix_server_name": self._server_name,
            "expires_in": OPENID_TOKEN_LIFETIME_MS // 1000,
        }

    async def get_user_for_openid_token(self, token: str, now_ms: int) -> str | None:
        """The federation `userinfo` question (`FederationQueries`' `OpenIdTokens`)."""
        return await self._store.get_openid_token_user(hash_token(token), now_ms)
