"""What `ranvier register-user` and `ranvier registration-token` do, against the
configured database (the server may be running: both engines allow a second writer)."""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ranvier.app.accounts import Accounts, build_accounts, localpart_of
from ranvier.app.homeserver import database_settings
from ranvier.config.schema import HomeserverConfig
from ranvier.storage.database import open_database
from ranvier.storage.stores.registration import RegistrationTokenRow
from ranvier.util.clock import Clock, RealClock

T = TypeVar("T")


async def _with_accounts(
    config: HomeserverConfig, clock: Clock, fn: Callable[[Accounts], Awaitable[T]]
) -> T:
    db = await open_database(database_settings(config))
    try:
        accounts = build_accounts(config, db, clock)
        try:
            return await fn(accounts)
        finally:
            await accounts.close()
    finally:
        await db.close()


async def register_user(
    config: HomeserverConfig,
    user: str,
    password: str,
    *,
    admin: bool,
    clock: Clock | None = None,
) -> str:
    """Create an account; raises ValueError or MatrixError (invalid or taken name)."""
    localpart = localpart_of(user, config.server_name)

    async def run(accounts: Accounts) -> str:
        return await accounts.registration.register_local_user(
            localpart, password, admin=admin
        )

    return await _with_accounts(config, clock or RealClock(), run)


async def create_registration_token(
    config: HomeserverConfig,
    token: str | None,
    *,
    uses_allowed: int | None,
    expires_in_ms: int | None,
    clock: Clock | None = None,
) -> RegistrationTokenRow:
    async def run(accounts: Accounts) -> RegistrationTokenRow:
        return await accounts.registration.create_registration_token(
            token, uses_allowed=uses_allowed, expires_in_ms=expires_in_ms
        )

    return await _with_accounts(config, clock or RealClock(), run)


async def list_registration_tokens(
    config: HomeserverConfig, *, clock: Clock | None = None
) -> list[RegistrationTokenRow]:
    async def run(accounts: Accounts) -> list[RegistrationTokenRow]:
        return await accounts.registration.get_registration_tokens()

    return await _with_accounts(config, clock or RealClock(), run)


async def delete_registration_token(
    config: HomeserverConfig, token: str, *, clock: Clock | None = None
) -> bool:
    async def run(accounts: Accounts) -> bool:
        return await accounts.registration.delete_registration_token(token)

    return await _with_accounts(config, clock or RealClock(), run)


def format_token(row: RegistrationTokenRow, now_ms: int) -> str:
    """One line per token for `registration-token list`."""
    uses = "unlimited" if row.uses_allowed is None else str(row.uses_allowed)
    if row.expiry_ts is None:
        expires = "never"
    else:
        when = datetime.datetime.fromtimestamp(row.expiry_ts / 1000, tz=datetime.UTC)
        expires = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    state = "valid" if row.is_valid(now_ms) else "invalid"
    return (
        f"{row.token}  uses_allowed={uses} pending={row.pending} "
        f"completed={row.completed} expires={expires} {state}"
    )
