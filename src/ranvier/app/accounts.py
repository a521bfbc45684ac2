"""Wiring of the accounts feature (issue #4), and the operator commands that use it.

`build_accounts` constructs the stores, services and HTTP resources once; the composition
root (`homeserver.build_homeserver`) installs its authenticator and endpoints and may
connect listeners to `hooks` (rooms: deactivation and profile changes; E2E: deleted
devices). The CLI's `register-user` and `registration-token` commands run the same
services against the configured database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ranvier.api.client.account import AccountResource
from ranvier.api.client.capabilities import CapabilitiesResource
from ranvier.api.client.devices import DevicesResource
from ranvier.api.client.login import AccessTokenAuthenticator, LoginResource
from ranvier.api.client.profile import ProfileResource
from ranvier.api.client.register import RegisterResource
from ranvier.api.http import Endpoint
from ranvier.config.schema import HomeserverConfig
from ranvier.core.appservice import AppServiceRegistry
from ranvier.services.accounts.devices import DeviceService
from ranvier.services.accounts.hooks import AccountHooks
from ranvier.services.accounts.login import LoginService, PasswordStage
from ranvier.services.accounts.passwords import PasswordHasher
from ranvier.services.accounts.profiles import (
    AppServiceUserQuery,
    ProfileService,
    RemoteProfiles,
)
from ranvier.services.accounts.registration import (
    RegistrationService,
    RegistrationTokenStage,
)
from ranvier.services.accounts.sessions import SessionService, TokenPolicy
from ranvier.services.accounts.uia import (
    DUMMY,
    PASSWORD,
    REGISTRATION_TOKEN,
    DummyStage,
    UserInteractiveAuth,
)
from ranvier.storage.database import Database
from ranvier.storage.stores.accounts import AccountsStore
from ranvier.storage.stores.erasure import ErasureStore
from ranvier.storage.stores.profiles import ProfileStore
from ranvier.storage.stores.registration import RegistrationStore
from ranvier.util.clock import Clock


@dataclass
class Accounts:
    store: AccountsStore
    registration_store: RegistrationStore
    profile_store: ProfileStore
    hooks: AccountHooks
    sessions: SessionService
    uia: UserInteractiveAuth
    login: LoginService
    registration: RegistrationService
    devices: DeviceService
    profiles: ProfileService
    authenticator: AccessTokenAuthenticator
    resources: tuple[
        RegisterResource,
        LoginResource,
        AccountResource,
        DevicesResource,
        ProfileResource,
        CapabilitiesResource,
    ]
    hasher: PasswordHasher
    erasure: ErasureStore

    def endpoints(self) -> list[Endpoint]:
        return [ep for resource in self.resources for ep in resource.endpoints()]

    async def close(self) -> None:
        """Stop the password hashing threads (after the HTTP listeners have drained)."""
        await self.hasher.close()


def build_accounts(
    config: HomeserverConfig,
    db: Database,
    clock: Clock,
    *,
    hasher: PasswordHasher | None = None,
    token_policy: TokenPolicy | None = None,
    remote_profiles: RemoteProfiles | None = None,
    app_services: AppServiceRegistry | None = None,
    app_service_users: AppServiceUserQuery | None = None,
) -> Accounts:
    server_name = config.server_name
    hasher = hasher or PasswordHasher()
    store = AccountsStore(db)
    registration_store = RegistrationStore(db)
    profile_store = ProfileStore(db)
    hooks = AccountHooks()
    sessions = SessionService(store, clock, token_policy or TokenPolicy())
    login = LoginService(server_name, store, hasher, sessions, hooks)
    uia = UserInteractiveAuth(
        registration_store,
        clock,
        {
            DUMMY: DummyStage(),
            PASSWORD: PasswordStage(login),
            REGISTRATION_TOKEN: RegistrationTokenStage(registration_store, clock),
        },
    )
    registration = RegistrationService(
        server_name,
        config.registration,
        store,
        registration_store,
        sessions,
        uia,
        hasher,
        clock,
        is_exclusive=app_services.is_exclusive_user if app_services else None,
    )
    erasure = ErasureStore(db, clock.time_msec)
    devices = DeviceService(store, sessions, hasher, hooks, erasure)
    profiles = ProfileService(
        server_name,
        profile_store,
        store,
        hooks,
        remote=remote_profiles,
        app_service_users=app_service_users,
    )
    hooks.deactivation.append(profiles)
    resources = (
        RegisterResource(server_name, registration, app_services),
        LoginResource(server_name, login, sessions, devices, uia, app_services),
        AccountResource(devices, uia),
        DevicesResource(devices, uia),
        ProfileResource(profiles),
        CapabilitiesResource(config.limits.default_room_version),
    )
    return Accounts(
        store=store,
        registration_store=registration_store,
        profile_store=profile_store,
        hooks=hooks,
        sessions=sessions,
        uia=uia,
        login=login,
        registration=registration,
        devices=devices,
        profiles=profiles,
        authenticator=AccessTokenAuthenticator(sessions),
        resources=resources,
        hasher=hasher,
        erasure=erasure,
    )


# --- operator commands ------------------------------------------------------------------

_DURATION = re.compile(r"(\d+)\s*([smhdw]?)")
_UNIT_MS = {
    "": 1000,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
}


def parse_duration_ms(text: str) -> int:
    """`90`, `90s`, `15m`, `12h`, `7d`, `2w` -> milliseconds; ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or int(match[1]) <= 0:
        raise ValueError(f"invalid duration {text!r} (use e.g. 30m, 12h, 7d)")
    return int(match[1]) * _UNIT_MS[match[2]]


def localpart_of(user: str, server_name: str) -> str:
    """`alice` or `@alice:<server_name>` -> `alice`; ValueError for another server."""
    if not user.startswith("@"):
        return user
    localpart, _, server = user[1:].partition(":")
    if server != server_name:
        raise ValueError(f"{user} is not a user of {server_name}")
    return localpart
