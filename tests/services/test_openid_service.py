"""OpenID tokens expire after an hour and are stored only as their hash."""

from __future__ import annotations

from ranvier.services.accounts.identifiers import hash_token
from ranvier.services.accounts.openid import OPENID_TOKEN_LIFETIME_MS, OpenIdService
from ranvier.util.clock import FakeClock


class _Store:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, int]] = {}

    async def add_openid_token(
        self, token_hash: str, user_id: str, expires_ts: int, now_ms: int
    ) -> None:
        self.rows[token_hash] = (user_id, expires_ts)

    async def get_openid_token_user(self, token_hash: str, now_ms: int) -> str | None:
        row = self.rows.get(token_hash)
        return row[0] if row is not None and row[1] > now_ms else None


async def test_tokens_are_hashed_and_expire() -> None:
    clock = FakeClock()
    store = _Store()
    service = OpenIdService(server_name="hs", store=store, clock=clock)
    out = await service.request_token("@a:hs", "@a:hs")
    token = out["access_token"]
    assert token not in store.rows
    assert hash_token(token) in store.rows
    now = clock.time_msec()
    assert await service.get_user_for_openid_token(token, now) == "@a:hs"
    later = now + OPENID_TOKEN_LIFETIME_MS
    assert await service.get_user_for_openid_token(token, later) is None
