"""Access tokens: issuing them (login, registration, refresh) and resolving them, fast.

Every authenticated request resolves its token, so resolved tokens are cached in memory
(token hash -> owner), bounded LRU. Anything that revokes tokens calls `invalidate_user`
after its transaction has committed; an epoch counter stops a lookup that raced with the
revocation from re-caching a token it read before the delete. The cache is per process:
several processes sharing one database would need an invalidation channel (the same
notifier seam as sync wake-ups).

Spec: Client-Server API > Client authentication > Refreshing access tokens; soft logout.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from ranvier.core.errors import unknown_token
from ranvier.services.accounts.identifiers import (
    generate_device_id,
    generate_token,
    hash_token,
)
from ranvier.storage.stores.accounts import (
    AccessTokenRow,
    NewLogin,
    RefreshResult,
    RefreshStatus,
)
from ranvier.util.clock import Clock

logger = logging.getLogger(__name__)

ACCESS_TOKEN_PREFIX = "rva_"  # noqa: S105 - a protocol name, not a secret
REFRESH_TOKEN_PREFIX = "rvr_"  # noqa: S105 - a protocol name, not a secret
LOGIN_TOKEN_PREFIX = "rvl_"  # noqa: S105 - a protocol name, not a secret


class SessionStore(Protocol):
    async def create_login(self, login: NewLogin) -> int: ...

    async def get_access_token(self, token_hash: str) -> AccessTokenRow | None: ...

    async def mark_access_token_used(
        self, token_id: int, refresh_token_id: int | None
    ) -> None: ...

    async def update_device_last_seen(
        self, user_id: str, device_id: str, ip: str | None, ts: int
    ) -> None: ...

    async def refresh_login(
        self,
        refresh_token_hash: str,
        new_access_hash: str,
        new_refresh_hash: str,
        access_expires_ts: int | None,
        refresh_expires_ts: int | None,
        now: int,
    ) -> RefreshResult: ...

    async def create_login_token(
        self, token_hash: str, user_id: str, expires_ts: int
    ) -> None: ...

    async def consume_login_token(self, token_hash: str, now: int) -> str | None: ...


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    # Lifetime of access tokens issued together with a refresh token (others never expire).
    access_token_lifetime_ms: int = 5 * 60 * 1000
    refresh_token_lifetime_ms: int | None = None
    # Spec recommends 2 minutes for m.login.token tokens from /login/get_token.
    login_token_lifetime_ms: int = 2 * 60 * 1000
    # A device's last_seen_* is written at most this often per process.
    last_seen_interval_ms: int = 2 * 60 * 1000
    cache_size: int = 50_000


@dataclass(frozen=True, slots=True)
class TokenOwner:
    """Who an access token belongs to."""

    user_id: str
    device_id: str
    is_guest: bool
    token_id: int
    locked: bool = False
    suspended: bool = False
    shadow_banned: bool = False


@dataclass(frozen=True, slots=True)
class IssuedLogin:
    user_id: str
    device_id: str
    access_token: str
    refresh_token: str | None
    expires_in_ms: int | None

    def to_json(self, server_name: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "user_id": self.user_id,
            "access_token": self.access_token,
            "device_id": self.device_id,
            "home_server": server_name,
        }
        if self.refresh_token is not None:
            out["refresh_token"] = self.refresh_token
        if self.expires_in_ms is not None:
            out["expires_in_ms"] = self.expires_in_ms
        return out


@dataclass(frozen=True, slots=True)
class RefreshedTokens:
    user_id: str
    access_token: str
    refresh_token: str
    expires_in_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_in_ms": self.expires_in_ms,
        }


@dataclass(slots=True)
class _Cached:
    owner: TokenOwner
    expires_ts: int | None
    refresh_token_id: int | None
    used: bool
    last_seen_ts: int = 0
    last_seen_ip: str | None = None


class SessionService:
    def __init__(self, store: SessionStore, clock: Clock, policy: TokenPolicy) -> None:
        self._store = store
        self._clock = clock
        self._policy = policy
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._by_user: dict[str, set[str]] = {}
        self._epoch = 0

    # -- resolving ----------------------------------------------------------------------

    async def get_token_owner(
        self, access_token: str, client_ip: str | None = None
    ) -> TokenOwner:
        """Resolve an access token or raise M_UNKNOWN_TOKEN (soft_logout when expired)."""
        token_hash = hash_token(access_token)
        entry = self._cache.get(token_hash)
        if entry is None:
            entry = await self._load(token_hash)
        else:
            self._cache.move_to_end(token_hash)
        now = self._clock.time_msec()
        if entry.expires_ts is not None and entry.expires_ts <= now:
            raise unknown_token("Access token has expired.", soft_logout=True)
        owner = entry.owner
        if not entry.used:
            entry.used = True
            await self._store.mark_access_token_used(
                owner.token_id, entry.refresh_token_id
            )
        if now - entry.last_seen_ts >= self._policy.last_seen_interval_ms or (
            client_ip is not None and client_ip != entry.last_seen_ip
        ):
            entry.last_seen_ts = now
            entry.last_seen_ip = client_ip or entry.last_seen_ip
            await self._store.update_device_last_seen(
                owner.user_id, owner.device_id, client_ip, now
            )
        return owner

    async def _load(self, token_hash: str) -> _Cached:
        epoch = self._epoch
        row = await self._store.get_access_token(token_hash)
        if row is None:
            raise unknown_token()
        entry = _Cached(
            owner=TokenOwner(
                row.user_id,
                row.device_id,
                row.is_guest,
                row.token_id,
                locked=row.locked,
                suspended=row.suspended,
                shadow_banned=row.shadow_banned,
            ),
            expires_ts=row.expires_ts,
            refresh_token_id=row.refresh_token_id,
            # Only tokens from a refresh need their first use recorded.
            used=row.used or row.refresh_token_id is None,
        )
        if epoch == self._epoch:
            self._put(token_hash, entry)
        return entry

    def _put(self, token_hash: str, entry: _Cached) -> None:
        self._cache[token_hash] = entry
        self._by_user.setdefault(entry.owner.user_id, set()).add(token_hash)
        while len(self._cache) > self._policy.cache_size:
            old_hash, old = self._cache.popitem(last=False)
            hashes = self._by_user.get(old.owner.user_id)
            if hashes is not None:
                hashes.discard(old_hash)
                if not hashes:
                    del self._by_user[old.owner.user_id]

    def invalidate_user(self, user_id: str) -> None:
        """Forget cached tokens of a user; call after revoking any of them (post-commit)."""
        self._epoch += 1
        for token_hash in self._by_user.pop(user_id, ()):
            self._cache.pop(token_hash, None)

    # -- issuing ------------------------------------------------------------------------

    def prepare_login(
        self,
        user_id: str,
        *,
        device_id: str | None,
        initial_display_name: str | None,
        want_refresh: bool,
        client_ip: str | None,
    ) -> tuple[NewLogin, IssuedLogin]:
        """New tokens for a login, as the row to store and the answer to give."""
        now = self._clock.time_msec()
        access = generate_token(ACCESS_TOKEN_PREFIX)
        refresh = generate_token(REFRESH_TOKEN_PREFIX) if want_refresh else None
        lifetime = self._policy.access_token_lifetime_ms if want_refresh else None
        refresh_lifetime = self._policy.refresh_token_lifetime_ms
        device = device_id or generate_device_id()
        login = NewLogin(
            user_id=user_id,
            device_id=device,
            initial_display_name=initial_display_name,
            access_token_hash=hash_token(access),
            access_expires_ts=None if lifetime is None else now + lifetime,
            refresh_token_hash=None if refresh is None else hash_token(refresh),
            refresh_expires_ts=(
                None
                if refresh is None or refresh_lifetime is None
                else now + refresh_lifetime
            ),
            client_ip=client_ip,
            now=now,
        )
        return login, IssuedLogin(user_id, device, access, refresh, lifetime)

    async def create_login(
        self,
        user_id: str,
        *,
        device_id: str | None,
        initial_display_name: str | None,
        want_refresh: bool,
        client_ip: str | None,
    ) -> IssuedLogin:
        login, issued = self.prepare_login(
            user_id,
            device_id=device_id,
            initial_display_name=initial_display_name,
            want_refresh=want_refresh,
            client_ip=client_ip,
        )
        await self._store.create_login(login)
        return issued

    async def refresh(self, refresh_token: str) -> RefreshedTokens:
        now = self._clock.time_msec()
        access = generate_token(ACCESS_TOKEN_PREFIX)
        refresh = generate_token(REFRESH_TOKEN_PREFIX)
        lifetime = self._policy.access_token_lifetime_ms
        refresh_lifetime = self._policy.refresh_token_lifetime_ms
        result = await self._store.refresh_login(
            hash_token(refresh_token),
            hash_token(access),
            hash_token(refresh),
            now + lifetime,
            None if refresh_lifetime is None else now + refresh_lifetime,
            now,
        )
        if result.status is RefreshStatus.EXPIRED:
            raise unknown_token("Refresh token has expired.")
        if result.status is not RefreshStatus.OK or result.user_id is None:
            raise unknown_token("Unknown or already used refresh token.")
        # The previous access token of this chain was revoked.
        self.invalidate_user(result.user_id)
        return RefreshedTokens(result.user_id, access, refresh, lifetime)

    async def create_login_token(self, user_id: str) -> tuple[str, int]:
        """A single-use `m.login.token` token and its lifetime in milliseconds."""
        token = generate_token(LOGIN_TOKEN_PREFIX)
        lifetime = self._policy.login_token_lifetime_ms
        await self._store.create_login_token(
            hash_token(token), user_id, self._clock.time_msec() + lifetime
        )
        return token, lifetime

    async def consume_login_token(self, token: str) -> str | None:
        return await self._store.consume_login_token(
            hash_token(token), self._clock.time_msec()
        )
