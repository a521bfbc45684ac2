"""Wiring of the OAuth 2.0 authorization server (issue #13).

`build_oauth` constructs the store, services and HTTP resources once, from the accounts
feature's services: sign-in checks passwords with the same `LoginService`, sign-up uses
`RegistrationService` (so `registration.*` applies), ending a session deletes the device
through `DeviceService` (E2E hooks follow), and the access tokens are ordinary
`access_tokens` rows resolved by the accounts authenticator. The cross-signing reset
gate (MSC4312) is handed to the E2E feature's `keys/device_signing/upload`.

With `oauth.password_api: false` the classic `/login` and `/register` endpoints are not
mounted (404 `M_UNRECOGNIZED`), as on a Synapse that delegates auth to MAS.
"""

from __future__ import annotations

from dataclasses import dataclass

from ranvier.api.http import Endpoint
from ranvier.api.oauth.endpoints import OAuthEndpoints, issuer_urls
from ranvier.api.oauth.pages import OAuthPages
from ranvier.app.accounts import Accounts
from ranvier.config.schema import HomeserverConfig
from ranvier.services.oauth.browser import BrowserSessions
from ranvier.services.oauth.cross_signing import CrossSigningResetGate
from ranvier.services.oauth.grants import OAuthGrants
from ranvier.services.oauth.id_tokens import IdTokenSigner
from ranvier.storage.database import Database
from ranvier.storage.stores.oauth import OAuthStore
from ranvier.util.clock import Clock

_CLASSIC_AUTH_SUFFIXES = ("/login", "/register")


@dataclass
class OAuth:
    endpoints: list[Endpoint]
    # For `keys/device_signing/upload` (MSC4312), wired into the E2E feature.
    reset_gate: CrossSigningResetGate


def build_oauth(
    config: HomeserverConfig, db: Database, clock: Clock, accounts: Accounts
) -> OAuth:
    store = OAuthStore(db)
    issuer = config.public_baseurl
    id_tokens = IdTokenSigner(store, clock, issuer)
    reset_gate = CrossSigningResetGate(
        store, clock, accounts.uia, issuer_urls(issuer)["account_management_uri"]
    )
    grants = OAuthGrants(
        store,
        clock,
        accounts.devices,
        accounts.sessions,
        access_token_lifetime_ms=config.oauth.access_token_lifetime * 1000,
        id_tokens=id_tokens,
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
        reset_approver=reset_gate,
    )
    return OAuth(
        endpoints=[
            *OAuthEndpoints(
                issuer, grants, id_tokens, sign_up=config.registration.enabled
            ).endpoints(),
            *pages.endpoints(),
        ],
        reset_gate=reset_gate,
    )


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
