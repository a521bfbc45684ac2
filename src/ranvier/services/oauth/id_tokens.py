"""ID tokens for the `openid` scope (OpenID Connect Core 1.0 section 2), RS256.

The Matrix OAuth 2.0 API does not need them (current clients do not ask for `openid`),
but `/.well-known/openid-configuration` promises them to OpenID clients. The signing
key is generated on first use and kept in the database (`oauth_signing_keys`); its
public half is the JWKS at `jwks_uri`. joserfc (Authlib's JOSE library) signs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from typing import Any

import orjson
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from ranvier.storage.stores.oauth import OAuthStore
from ranvier.util.clock import Clock

ID_TOKEN_LIFETIME_S = 300


def _generate() -> tuple[str, str]:
    kid = secrets.token_urlsafe(8)
    key = RSAKey.generate_key(2048, parameters={"kid": kid})
    return kid, orjson.dumps(key.as_dict(private=True)).decode()


class IdTokenSigner:
    def __init__(self, store: OAuthStore, clock: Clock, issuer: str) -> None:
        self._store = store
        self._clock = clock
        self._issuer = issuer
        self._key: RSAKey | None = None
        self._lock = asyncio.Lock()

    async def _get_key(self) -> RSAKey:
        async with self._lock:
            if self._key is None:
                # RSA key generation takes ~0.1 s of CPU: off the event loop.
                kid, jwk = await asyncio.to_thread(_generate)
                kid, jwk = await self._store.get_or_create_signing_key(
                    kid, jwk, self._clock.time_msec()
                )
                self._key = RSAKey.import_key(orjson.loads(jwk))
            return self._key

    async def jwks(self) -> dict[str, Any]:
        return dict(KeySet([await self._get_key()]).as_dict(private=False))

    async def sign(
        self, *, user_id: str, client_id: str, nonce: str | None, access_token: str
    ) -> str:
        key = await self._get_key()
        now = self._clock.time_msec() // 1000
        digest = hashlib.sha256(access_token.encode()).digest()
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": user_id,
            "aud": client_id,
            "iat": now,
            "exp": now + ID_TOKEN_LIFETIME_S,
            "auth_time": now,
            # OIDC Core 3.1.3.6: left half of the access token's SHA-256.
            "at_hash": base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode(),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
