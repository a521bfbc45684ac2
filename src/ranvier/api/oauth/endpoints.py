"""Discovery and the machine-facing endpoints of the authorization server.

    GET  /_matrix/client/v1/auth_metadata
    GET  /_matrix/client/unstable/org.matrix.msc2965/auth_metadata
    GET  /_matrix/client/unstable/org.matrix.msc2965/auth_issuer
    GET  /.well-known/openid-configuration            (at the issuer)
    GET  /.well-known/oauth-authorization-server      (RFC 8414, at the issuer)
    GET  /_ranvier/oauth2/keys.json                   (JWKS for ID tokens)
    GET|POST /_ranvier/oauth2/userinfo                (OpenID Connect, Bearer token)
    POST /_ranvier/oauth2/registration                (RFC 7591, JSON)
    POST /_ranvier/oauth2/token                       (form: code, refresh, device grants)
    POST /_ranvier/oauth2/revoke                      (RFC 7009, form)
    POST /_ranvier/oauth2/device_authorization        (RFC 8628, form)

Spec: Client-Server API > OAuth 2.0 API (server metadata discovery, client
registration, grants, token revocation). Errors are RFC 6749 / RFC 7591 JSON
(`error`, `error_description`), never Matrix errors, except the HTTP edge's own
answers (rate limit, body too large before parsing).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Protocol

import orjson
from aiohttp import web

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest
from ranvier.api.oauth.html import PREFIX
from ranvier.core.errors import MatrixError
from ranvier.services.oauth.clients import (
    AUTHORIZATION_CODE,
    DEVICE_CODE,
    REFRESH_TOKEN,
)
from ranvier.services.oauth.errors import OAuthError, invalid_request
from ranvier.services.oauth.grants import OAuthGrants, TokenResponse

ACCOUNT_ACTIONS = (
    "org.matrix.sessions_list",
    "org.matrix.session_view",
    "org.matrix.session_end",
    # MSC4191's later names for the same pages.
    "org.matrix.devices_list",
    "org.matrix.device_view",
    "org.matrix.device_delete",
    # MSC4312: approve replacing cross-signing keys.
    "org.matrix.cross_signing_reset",
)
MAX_FORM_FIELDS = 32


def issuer_urls(issuer: str) -> dict[str, str]:
    base = issuer.rstrip("/") + PREFIX
    return {
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "registration_endpoint": f"{base}/registration",
        "revocation_endpoint": f"{base}/revoke",
        "device_authorization_endpoint": f"{base}/device_authorization",
        "account_management_uri": f"{base}/account",
        "jwks_uri": f"{base}/keys.json",
        "userinfo_endpoint": f"{base}/userinfo",
        "device_verification_uri": f"{base}/device",
    }


def server_metadata(issuer: str, *, sign_up: bool) -> dict[str, Any]:
    """RFC 8414 metadata with the Matrix extensions (MSC2965, MSC4191). `create` is
    offered only when `registration.enabled` (clients show "Create account" for it)."""
    urls = issuer_urls(issuer)
    return {
        "issuer": issuer,
        "authorization_endpoint": urls["authorization_endpoint"],
        "token_endpoint": urls["token_endpoint"],
        "registration_endpoint": urls["registration_endpoint"],
        "revocation_endpoint": urls["revocation_endpoint"],
        "device_authorization_endpoint": urls["device_authorization_endpoint"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment"],
        "grant_types_supported": [AUTHORIZATION_CODE, REFRESH_TOKEN, DEVICE_CODE],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["openid", "urn:matrix:client:api:*"],
        # OpenID Connect Discovery: ID tokens for the `openid` scope.
        "jwks_uri": urls["jwks_uri"],
        "userinfo_endpoint": urls["userinfo_endpoint"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "subject_types_supported": ["public"],
        "prompt_values_supported": ["create"] if sign_up else [],
        "account_management_uri": urls["account_management_uri"],
        "account_management_actions_supported": list(ACCOUNT_ACTIONS),
    }


def oauth_json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def oauth_error(err: OAuthError) -> web.Response:
    return oauth_json(err.to_json(), err.status)


async def read_form(req: MatrixRequest) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body; repeated parameters are an error
    (RFC 6749 section 3.2)."""
    if req.raw.content_type != "application/x-www-form-urlencoded":
        raise invalid_request("The body must be application/x-www-form-urlencoded.")
    try:
        form = await req.raw.post()
    except web.HTTPRequestEntityTooLarge:
        raise invalid_request("The request body is too large.") from None
    except ValueError:
        raise invalid_request("Malformed form body.") from None
    out: dict[str, str] = {}
    for key, value in form.items():
        if not isinstance(value, str) or key in out or "\x00" in value:
            raise invalid_request(f"Invalid or repeated parameter {key[:40]}.")
        out[key] = value
    if len(out) > MAX_FORM_FIELDS:
        raise invalid_request("Too many parameters.")
    return out


def basic_client_id(req: MatrixRequest, form: dict[str, str]) -> None:
    """A public client may also name itself with HTTP Basic (empty secret)."""
    header = req.raw.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError(
            "invalid_client", "Malformed Basic credentials.", 401
        ) from None
    client_id = decoded.partition(":")[0]
    if form.setdefault("client_id", client_id) != client_id:
        raise OAuthError("invalid_client", "Conflicting client_id.", 401)


class Jwks(Protocol):
    async def jwks(self) -> dict[str, Any]: ...


class OAuthEndpoints:
    def __init__(
        self, issuer: str, grants: OAuthGrants, id_tokens: Jwks, *, sign_up: bool
    ) -> None:
        self._issuer = issuer
        self._grants = grants
        self._id_tokens = id_tokens
        self._metadata = server_metadata(issuer, sign_up=sign_up)

    async def get_metadata(self, _req: MatrixRequest) -> web.Response:
        return oauth_json(self._metadata)

    async def get_jwks(self, _req: MatrixRequest) -> web.Response:
        return oauth_json(await self._id_tokens.jwks())

    async def get_userinfo(self, req: MatrixRequest) -> web.Response:
        """OpenID Connect Core 5.3: who the access token belongs to."""
        return oauth_json({"sub": req.user.user_id})

    async def get_issuer(self, _req: MatrixRequest) -> dict[str, Any]:
        return {"issuer": self._issuer}

    async def register(self, req: MatrixRequest) -> web.Response:
        try:
            try:
                body = orjson.loads(await req.body_bytes())
            except orjson.JSONDecodeError:
                raise invalid_request("The body must be a JSON object.") from None
            except MatrixError:
                raise invalid_request("The request body is too large.") from None
            if not isinstance(body, dict):
                raise invalid_request("The body must be a JSON object.")
            return oauth_json(await self._grants.register_client(body), 201)
        except OAuthError as err:
            return oauth_error(err)

    async def token(self, req: MatrixRequest) -> web.Response:
        try:
            form = await read_form(req)
            basic_client_id(req, form)
            issued: TokenResponse = await self._grants.token(form, req.client_ip)
            return oauth_json(issued.to_json())
        except OAuthError as err:
            return oauth_error(err)

    async def revoke(self, req: MatrixRequest) -> web.Response:
        try:
            form = await read_form(req)
            basic_client_id(req, form)
            await self._grants.revoke(form)
            return oauth_json({})
        except OAuthError as err:
            return oauth_error(err)

    async def device_authorization(self, req: MatrixRequest) -> web.Response:
        try:
            form = await read_form(req)
            basic_client_id(req, form)
            grant = await self._grants.start_device_authorization(form)
        except OAuthError as err:
            return oauth_error(err)
        verification = issuer_urls(self._issuer)["device_verification_uri"]
        return oauth_json(
            {
                "device_code": grant.device_code,
                "user_code": grant.user_code,
                "verification_uri": verification,
                "verification_uri_complete": f"{verification}?user_code={grant.user_code}",
                "expires_in": grant.expires_in,
                "interval": grant.interval,
            }
        )

    def endpoints(self) -> list[Endpoint]:
        metadata_paths = (
            "/_matrix/client/v1/auth_metadata",
            "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
        )
        return [
            Endpoint("GET", metadata_paths, self.get_metadata, auth=AuthMode.NONE),
            Endpoint(
                "GET", (f"{PREFIX}/keys.json",), self.get_jwks, auth=AuthMode.NONE
            ),
            *(
                Endpoint(method, (f"{PREFIX}/userinfo",), self.get_userinfo)
                for method in ("GET", "POST")
            ),
            Endpoint(
                "GET",
                ("/_matrix/client/unstable/org.matrix.msc2965/auth_issuer",),
                self.get_issuer,
                auth=AuthMode.NONE,
            ),
            Endpoint(
                "POST",
                (f"{PREFIX}/registration",),
                self.register,
                auth=AuthMode.NONE,
                ratelimit="registration",
            ),
            Endpoint(
                "POST",
                (f"{PREFIX}/token",),
                self.token,
                auth=AuthMode.NONE,
                ratelimit="default",
            ),
            Endpoint("POST", (f"{PREFIX}/revoke",), self.revoke, auth=AuthMode.NONE),
            Endpoint(
                "POST",
                (f"{PREFIX}/device_authorization",),
                self.device_authorization,
                auth=AuthMode.NONE,
                ratelimit="default",
            ),
        ]
