"""Signed-in browsers on the authorization pages: a cookie holds a random secret, the
database its sha256 (like access tokens)."""

from __future__ import annotations

from ranvier.services.accounts.identifiers import generate_token, hash_token
from ranvier.storage.stores.oauth import OAuthStore
from ranvier.util.clock import Clock

BROWSER_SESSION_LIFETIME_MS = 24 * 3600 * 1000
MAX_COOKIE = 128


class BrowserSessions:
    def __init__(self, store: OAuthStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    @property
    def lifetime_s(self) -> int:
        return BROWSER_SESSION_LIFETIME_MS // 1000

    async def create(self, user_id: str) -> str:
        secret = generate_token("rvb_")
        now = self._clock.time_msec()
        await self._store.create_browser_session(
            hash_token(secret), user_id, now, now + BROWSER_SESSION_LIFETIME_MS
        )
        return secret

    async def get_user(self, secret: str | None) -> str | None:
        if not secret or len(secret) > MAX_COOKIE:
            return None
        return await self._store.get_browser_session(
            hash_token(secret), self._clock.time_msec()
        )

    async def end(self, secret: str | None) -> None:
        if secret and len(secret) <= MAX_COOKIE:
            await self._store.delete_browser_session(hash_token(secret))
