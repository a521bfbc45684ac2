"""Wiring of the OAuth 2.0 authorization server (issue #13).

`build_oauth` constructs the store, services and HTTP resources once, from the accounts
feature's services: sign-in checks passwords with the same `LoginService`, sign-up uses
`RegistrationService` (so `registration.*` applies), ending a session deletes the device
through `DeviceService` (E2E hooks follow), and the access tokens are ordinary
`access_tokens` rows resolved by the accounts authenticator.

With `oauth.password_api: false` the classic `/login` and `/register` endpoints are not
mounted (404 `M_UNRECOGNIZED`), as on a Synapse that delegates auth to MAS.
"""

from __future__ import annotations

from ranvier.api.http import Endpoint
from ranvier.api.oauth.endpoints import OAuthEndpoints
from ranvier.api.oauth.pages import OAuthPages
from ranvier.app.accounts import Accounts
from ranvier.config.schema import HomeserverConfig
from ranvier.services.oauth.browser import BrowserSessions
from ranvier.services.oauth.grants import OAuthGrants
from ranvier.storage.database import Database
from ranvier.storage.stores.oauth import OAuthStore
from ranvier.util.clock import Clock

_CLASSIC_AUTH_SUFFIXES = ("/login", "/register")


def build_oauth(
    config: HomeserverConfig, db: Database, clock: Clock, accounts: Accounts
) -> list[Endpoint]:
    store = OAuthStore(db)
    issuer = config.public_baseurl
    grants = OAuthGrants(
        store,
        clock,
        accounts.devices,
        accounts.sessions,
        access_token_lifetime_ms=config.oauth.access_token_lifetime * 1000,
    )
    pages = OAuthPages(
        server_name=config.server_name,
        issuer=issuer,
        grants=grants,
        login=accounts.login,
        signup=accounts.registration,
        devices=accounts.devices,
        browsers=BrowserSessions(store, clock),
        registration_enabled=config.registration.enabled,
        require_token=config.registration.require_token,
    )
    return [*OAuthEndpoints(issuer, grants).endpoints(), *pages.endpoints()]


def without_classic_auth(endpoints: list[Endpoint]) -> list[Endpoint]:
    """Drop password `/login` and UIA `/register` (OAuth-only mode)."""
    out: list[Endpoint] = []
    for ep in endpoints:
        paths = tuple(
            p
            for p in ep.paths
            if not (
                p.startswith("/_matrix/client/") and p.endswith(_CLASSIC_AUTH_SUFFIXES)
            )
        )
        if paths:
            out.append(Endpoint(ep.method, paths, ep.handler, ep.auth, ep.ratelimit))
    return out
