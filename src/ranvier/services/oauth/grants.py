"""Authorization requests, codes, tokens, refresh, revocation and the device grant.

Spec: OAuth 2.0 API > Authorization code grant (RFC 6749 section 4.1 with PKCE S256,
RFC 7636), Refresh token grant, Token revocation (RFC 7009), Device authorization grant
(RFC 8628, MSC4341).

* Codes are single-use and live `CODE_LIFETIME_MS`; a second redemption ends the session
  the first one created (RFC 6749 section 4.1.2).
* Refresh tokens rotate on every use; presenting a rotated-away one again ends the
  session (a leaked copy is in use), and so does revoking either of its tokens.
* Ending a session deletes its device, as `/logout` does, so E2E keys and device lists
  follow.

Authlib supplies the PKCE mechanics (RFC 7636 verifier syntax and S256 transform). Its
grant and server classes are not used: they call storage synchronously
(`query_client`, `save_token`, …), while every Ranvier database access is an awaited
transaction run off the event loop.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from authlib.oauth2.rfc7636.challenge import (
    CODE_CHALLENGE_PATTERN,
    CODE_VERIFIER_PATTERN,
    create_s256_code_challenge,
)

from ranvier.services.accounts.identifiers import (
    generate_device_id,
    generate_token,
    hash_token,
)
from ranvier.services.oauth.clients import (
    AUTHORIZATION_CODE,
    DEVICE_CODE,
    REFRESH_TOKEN,
    ClientMetadata,
    redirect_uri_matches,
    validate_client_metadata,
)
from ranvier.services.oauth.errors import (
    OAuthError,
    invalid_client,
    invalid_grant,
    invalid_request,
)
from ranvier.services.oauth.scopes import (
    OPENID,
    MatrixScope,
    parse_scope,
    with_device,
)
from ranvier.storage.stores.oauth import (
    AuthorizationRequestRow,
    ClientRow,
    DeviceGrantRow,
    NewSession,
    OAuthStore,
    RefreshOutcome,
    RefreshStatus,
    SessionRow,
)
from ranvier.util.clock import Clock

logger = logging.getLogger(__name__)

ACCESS_TOKEN_PREFIX = "rva_"  # noqa: S105 - the prefix of every access token
REFRESH_TOKEN_PREFIX = "rvo_"  # noqa: S105 - OAuth refresh tokens
CODE_PREFIX = "rvc_"
DEVICE_CODE_PREFIX = "rvd_"
CODE_LIFETIME_MS = 2 * 60 * 1000
REQUEST_LIFETIME_MS = 30 * 60 * 1000
DEVICE_GRANT_LIFETIME_MS = 10 * 60 * 1000
DEVICE_POLL_INTERVAL_S = 5
# RFC 8628 section 6.1: consonants only (no vowels, so no words), 8 characters.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
RESPONSE_MODES = ("query", "fragment")
MAX_PARAM = 2048


class DeviceRemover(Protocol):
    async def delete_devices(self, user_id: str, device_ids: Sequence[str]) -> None: ...


class TokenCache(Protocol):
    def invalidate_user(self, user_id: str) -> None: ...


class IdTokens(Protocol):
    async def sign(
        self, *, user_id: str, client_id: str, nonce: str | None, access_token: str
    ) -> str: ...


@dataclass(frozen=True, slots=True)
class AuthorizationParams:
    """A validated `GET /authorize` request."""

    client: ClientMetadata
    client_id: str
    redirect_uri: str
    response_mode: str
    state: str | None
    scope: MatrixScope
    code_challenge: str
    nonce: str | None
    prompt: str | None


class RedirectError(Exception):
    """An error to send back to the client's redirect URI (RFC 6749 4.1.2.1)."""

    def __init__(
        self, error: OAuthError, redirect_uri: str, mode: str, state: str | None
    ) -> None:
        super().__init__(error.error)
        self.error = error
        self.redirect_uri = redirect_uri
        self.response_mode = mode
        self.state = state


@dataclass(frozen=True, slots=True)
class TokenResponse:
    access_token: str
    refresh_token: str
    expires_in: int
    scope: str
    id_token: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "scope": self.scope,
        }
        if self.id_token is not None:
            out["id_token"] = self.id_token
        return out


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    device_code: str
    user_code: str
    expires_in: int
    interval: int


def format_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def normalise_user_code(text: str) -> str:
    return "".join(c for c in text.upper() if c.isalnum())


class OAuthGrants:
    def __init__(
        self,
        store: OAuthStore,
        clock: Clock,
        devices: DeviceRemover,
        tokens: TokenCache,
        *,
        access_token_lifetime_ms: int,
        id_tokens: IdTokens | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._devices = devices
        self._tokens = tokens
        self._access_lifetime_ms = access_token_lifetime_ms
        self._id_tokens = id_tokens

    # -- clients -------------------------------------------------------------------------

    async def register_client(self, body: dict[str, Any]) -> dict[str, Any]:
        metadata = validate_client_metadata(body)
        client_id = secrets.token_urlsafe(16)
        now = self._clock.time_msec()
        await self._store.create_client(
            client_id, orjson.dumps(metadata.document).decode(), now
        )
        return {
            "client_id": client_id,
            "client_id_issued_at": now // 1000,
            **metadata.document,
        }

    async def get_client(self, client_id: str | None) -> ClientMetadata:
        if not client_id or len(client_id) > MAX_PARAM:
            raise invalid_client("Missing client_id.")
        row: ClientRow | None = await self._store.get_client(client_id)
        if row is None:
            raise invalid_client()
        return ClientMetadata.from_document(orjson.loads(row.metadata))

    async def _client_name(self, client_id: str) -> str | None:
        try:
            name = (await self.get_client(client_id)).client_name
        except OAuthError:
            return None
        return None if name is None else name[:100]

    # -- authorization endpoint ----------------------------------------------------------

    async def check_authorization(self, params: dict[str, str]) -> AuthorizationParams:
        """Validate `GET /authorize`. Client and redirect URI problems raise
        `OAuthError` (shown to the user, never redirected); the rest raise
        `RedirectError`."""
        client_id = params.get("client_id")
        client = await self.get_client(client_id)
        assert client_id is not None
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri_matches(client.redirect_uris, redirect_uri):
            raise invalid_request("redirect_uri is not registered for this client.")
        mode = params.get("response_mode") or "query"
        state = params.get("state")
        if mode not in RESPONSE_MODES:
            raise RedirectError(
                invalid_request("response_mode must be query or fragment."),
                redirect_uri, "query", state,
            )  # fmt: skip
        try:
            scope, challenge = self._check_request(client, params)
        except OAuthError as e:
            raise RedirectError(e, redirect_uri, mode, state) from None
        return AuthorizationParams(
            client=client,
            client_id=client_id,
            redirect_uri=redirect_uri,
            response_mode=mode,
            state=state,
            scope=scope,
            code_challenge=challenge,
            nonce=params.get("nonce"),
            prompt=params.get("prompt"),
        )

    def _check_request(
        self, client: ClientMetadata, params: dict[str, str]
    ) -> tuple[MatrixScope, str]:
        if any(len(v) > MAX_PARAM for v in params.values()):
            raise invalid_request("A parameter is too long.")
        if params.get("response_type") != "code":
            raise OAuthError(
                "unsupported_response_type", "Only response_type=code is supported."
            )
        if AUTHORIZATION_CODE not in client.grant_types:
            raise OAuthError(
                "unauthorized_client", "The client did not register authorization_code."
            )
        challenge = params.get("code_challenge")
        if challenge is None:
            raise invalid_request("PKCE is required: code_challenge is missing.")
        if params.get("code_challenge_method") != "S256":
            raise invalid_request("code_challenge_method must be S256.")
        if CODE_CHALLENGE_PATTERN.match(challenge) is None:
            raise invalid_request("Malformed code_challenge.")
        return parse_scope(params.get("scope")), challenge

    async def create_request(self, params: AuthorizationParams) -> str:
        now = self._clock.time_msec()
        request_id = secrets.token_urlsafe(24)
        await self._store.create_authorization_request(
            AuthorizationRequestRow(
                request_id=request_id,
                client_id=params.client_id,
                redirect_uri=params.redirect_uri,
                scope=params.scope.scope,
                state=params.state,
                nonce=params.nonce,
                response_mode=params.response_mode,
                code_challenge=params.code_challenge,
                prompt=params.prompt,
                created_ts=now,
                expires_ts=now + REQUEST_LIFETIME_MS,
            )
        )
        return request_id

    async def get_request(self, request_id: str) -> AuthorizationRequestRow | None:
        if len(request_id) > MAX_PARAM:
            return None
        row = await self._store.get_authorization_request(
            request_id, self._clock.time_msec()
        )
        return None if row is None or row.user_id is not None else row

    async def approve_request(self, request_id: str, user_id: str) -> str | None:
        """The code for a consented request, or None if it is gone or already used."""
        code = generate_token(CODE_PREFIX)
        ok = await self._store.set_authorization_code(
            request_id, user_id, hash_token(code),
            self._clock.time_msec() + CODE_LIFETIME_MS,
        )  # fmt: skip
        return code if ok else None

    async def deny_request(self, request_id: str) -> None:
        await self._store.delete_authorization_request(request_id)

    # -- token endpoint --------------------------------------------------------------------

    async def token(self, form: dict[str, str], client_ip: str | None) -> TokenResponse:
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise invalid_request("Missing grant_type.")
        client_id = form.get("client_id")
        client = await self.get_client(client_id)
        assert client_id is not None
        if grant_type not in (AUTHORIZATION_CODE, REFRESH_TOKEN, DEVICE_CODE):
            raise OAuthError("unsupported_grant_type", "Unsupported grant_type.")
        # Refresh tokens come with every grant (the spec's clients always use them),
        # also for clients that registered only the RFC 7591 default grant_types.
        if grant_type != REFRESH_TOKEN and grant_type not in client.grant_types:
            raise OAuthError(
                "unauthorized_client", f"The client did not register {grant_type}."
            )
        if grant_type == AUTHORIZATION_CODE:
            return await self._code_grant(client_id, form, client_ip)
        if grant_type == REFRESH_TOKEN:
            return await self._refresh_grant(client_id, form)
        return await self._device_grant(client_id, form, client_ip)

    async def _code_grant(
        self, client_id: str, form: dict[str, str], client_ip: str | None
    ) -> TokenResponse:
        code, verifier = form.get("code"), form.get("code_verifier")
        if not code:
            raise invalid_request("Missing code.")
        if not verifier:
            raise invalid_request("PKCE is required: code_verifier is missing.")
        session_id = secrets.token_urlsafe(16)
        request = await self._store.redeem_code(hash_token(code), session_id)
        now = self._clock.time_msec()
        if request is None or request.user_id is None:
            raise invalid_grant("Unknown authorization code.")
        if request.exchanged_session_id is not None:
            # RFC 6749 4.1.2: a replayed code revokes what it was exchanged for.
            await self.end_session(request.exchanged_session_id)
            raise invalid_grant("The authorization code was already used.")
        if request.code_expires_ts is None or request.code_expires_ts <= now:
            raise invalid_grant("The authorization code has expired.")
        if request.client_id != client_id:
            raise invalid_grant("The code was issued to another client.")
        if form.get("redirect_uri") != request.redirect_uri:
            raise invalid_grant(
                "redirect_uri does not match the authorization request."
            )
        if (
            CODE_VERIFIER_PATTERN.match(verifier) is None
            or create_s256_code_challenge(verifier) != request.code_challenge
        ):
            raise invalid_grant("The PKCE code_verifier does not match.")
        return await self.create_session(
            session_id, client_id, request.user_id, parse_scope(request.scope),
            client_ip, nonce=request.nonce,
        )  # fmt: skip

    async def create_session(
        self,
        session_id: str,
        client_id: str,
        user_id: str,
        scope: MatrixScope,
        client_ip: str | None,
        *,
        nonce: str | None = None,
    ) -> TokenResponse:
        """Log `user_id` in on the scope's device (created, or reused with that ID);
        with the `openid` scope the answer carries an ID token."""
        device_id = scope.device_id or generate_device_id()
        granted = with_device(scope, device_id)
        access = generate_token(ACCESS_TOKEN_PREFIX)
        refresh = generate_token(REFRESH_TOKEN_PREFIX)
        now = self._clock.time_msec()
        replaced = await self._store.create_session(
            NewSession(
                session_id=session_id,
                client_id=client_id,
                user_id=user_id,
                device_id=device_id,
                scope=granted,
                access_token_hash=hash_token(access),
                access_expires_ts=now + self._access_lifetime_ms,
                refresh_token_hash=hash_token(refresh),
                client_ip=client_ip,
                now=now,
                device_display_name=await self._client_name(client_id),
            )
        )
        if replaced:
            self._tokens.invalidate_user(user_id)
        id_token = None
        if self._id_tokens is not None and OPENID in granted.split(" "):
            id_token = await self._id_tokens.sign(
                user_id=user_id, client_id=client_id, nonce=nonce, access_token=access
            )
        return TokenResponse(
            access, refresh, self._access_lifetime_ms // 1000, granted, id_token
        )

    async def _refresh_grant(
        self, client_id: str, form: dict[str, str]
    ) -> TokenResponse:
        token = form.get("refresh_token")
        if not token:
            raise invalid_request("Missing refresh_token.")
        access = generate_token(ACCESS_TOKEN_PREFIX)
        refresh = generate_token(REFRESH_TOKEN_PREFIX)
        now = self._clock.time_msec()
        outcome: RefreshOutcome = await self._store.refresh(
            hash_token(token), client_id, hash_token(access),
            now + self._access_lifetime_ms, hash_token(refresh), now,
        )  # fmt: skip
        if outcome.session is not None:
            # The previous access token (or the whole session) was revoked.
            self._tokens.invalidate_user(outcome.session.user_id)
        if outcome.status is RefreshStatus.REUSED and outcome.session is not None:
            logger.warning(
                "refresh token reused: ending OAuth session %s of %s",
                outcome.session.session_id,
                outcome.session.user_id,
            )
            await self._end_device(outcome.session)
            raise invalid_grant("The refresh token was already used.")
        if outcome.status is not RefreshStatus.OK or outcome.session is None:
            raise invalid_grant("Unknown or revoked refresh token.")
        return TokenResponse(
            access, refresh, self._access_lifetime_ms // 1000, outcome.session.scope
        )

    # -- revocation ------------------------------------------------------------------------

    async def revoke(self, form: dict[str, str]) -> None:
        """RFC 7009: unknown tokens are not an error; a known one ends its session."""
        token = form.get("token")
        if not token:
            raise invalid_request("Missing token.")
        hint = form.get("token_type_hint")
        if hint is not None and hint not in ("access_token", "refresh_token"):
            raise OAuthError("unsupported_token_type", "Unknown token_type_hint.")
        client_id = form.get("client_id")
        await self.get_client(client_id)
        session = await self._store.find_session_by_token(hash_token(token))
        if session is None:
            return
        if session.client_id != client_id:
            raise OAuthError(
                "unauthorized_client", "The token was issued to another client."
            )
        await self.end_session(session.session_id)

    async def end_session(self, session_id: str) -> None:
        session = await self._store.end_session(session_id)
        if session is not None:
            self._tokens.invalidate_user(session.user_id)
            await self._end_device(session)

    async def _end_device(self, session: SessionRow) -> None:
        await self._devices.delete_devices(session.user_id, [session.device_id])

    # -- device authorization grant (RFC 8628) ----------------------------------------------

    async def start_device_authorization(
        self, form: dict[str, str]
    ) -> DeviceAuthorization:
        client_id = form.get("client_id")
        client = await self.get_client(client_id)
        assert client_id is not None
        if DEVICE_CODE not in client.grant_types:
            raise OAuthError(
                "unauthorized_client", "The client did not register the device grant."
            )
        scope = parse_scope(form.get("scope"))
        now = self._clock.time_msec()
        device_code = generate_token(DEVICE_CODE_PREFIX)
        for _ in range(5):
            user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
            row = DeviceGrantRow(
                user_code=user_code,
                client_id=client_id,
                scope=scope.scope,
                status="pending",
                user_id=None,
                last_poll_ts=None,
                created_ts=now,
                expires_ts=now + DEVICE_GRANT_LIFETIME_MS,
            )
            if await self._store.create_device_grant(hash_token(device_code), row):
                return DeviceAuthorization(
                    device_code,
                    format_user_code(user_code),
                    DEVICE_GRANT_LIFETIME_MS // 1000,
                    DEVICE_POLL_INTERVAL_S,
                )
        raise OAuthError("server_error", "Could not allocate a user code.", 500)

    async def get_device_grant(self, user_code: str) -> DeviceGrantRow | None:
        code = normalise_user_code(user_code[:64])
        grant = await self._store.get_device_grant(code, self._clock.time_msec())
        return grant if grant is not None and grant.status == "pending" else None

    async def decide_device_grant(
        self, user_code: str, user_id: str, approve: bool
    ) -> bool:
        return await self._store.decide_device_grant(
            normalise_user_code(user_code[:64]), user_id, approve,
            self._clock.time_msec(),
        )  # fmt: skip

    async def _device_grant(
        self, client_id: str, form: dict[str, str], client_ip: str | None
    ) -> TokenResponse:
        device_code = form.get("device_code")
        if not device_code:
            raise invalid_request("Missing device_code.")
        now = self._clock.time_msec()
        grant = await self._store.poll_device_grant(hash_token(device_code), now)
        if grant is None or grant.client_id != client_id:
            raise invalid_grant("Unknown device_code.")
        if grant.expires_ts <= now or grant.status == "exchanged":
            raise OAuthError("expired_token", "The device code has expired.")
        if grant.status == "denied":
            raise OAuthError("access_denied", "The user denied the request.")
        if grant.status == "pending":
            if (
                grant.last_poll_ts is not None
                and now - grant.last_poll_ts < (DEVICE_POLL_INTERVAL_S - 1) * 1000
            ):
                raise OAuthError("slow_down", "Polling too fast.")
            raise OAuthError("authorization_pending", "Waiting for the user.")
        assert grant.user_id is not None
        return await self.create_session(
            secrets.token_urlsafe(16), client_id, grant.user_id,
            parse_scope(grant.scope), client_ip,
        )  # fmt: skip
