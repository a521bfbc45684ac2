"""Account registration: ordinary (UIA), guest, guest upgrade and operator-created.

Spec: Client-Server API > Account registration (`POST /register`, `/register/available`),
Authentication types > Token-authenticated registration, Modules > Guest access.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ranvier.config.schema import RegistrationConfig
from ranvier.core.errors import MatrixError, forbidden, invalid_param, missing_param
from ranvier.core.json import encode_json
from ranvier.services.accounts.identifiers import (
    check_new_localpart,
    generate_guest_localpart,
    split_user_id,
    user_id_of,
)
from ranvier.services.accounts.passwords import (
    PasswordHasher,
    check_password_acceptable,
)
from ranvier.services.accounts.sessions import IssuedLogin, SessionService
from ranvier.services.accounts.uia import (
    DUMMY,
    REGISTRATION_TOKEN,
    StageFailedError,
    UiaRequest,
    UiaRequiredError,
    UserInteractiveAuth,
)
from ranvier.storage.stores.accounts import (
    NewUser,
    Registration,
    UserIdInUseError,
    UserRow,
)
from ranvier.storage.stores.registration import RegistrationTokenRow, UiaSessionRow
from ranvier.util.clock import Clock

# Spec: registration tokens use [A-Za-z0-9._~-], 1 to 64 characters.
REGISTRATION_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~-]{1,64}")
_TOKEN_ALPHABET = string.ascii_letters + string.digits
_GENERATED_TOKEN_LENGTH = 16
_GUEST_ID_ATTEMPTS = 10


def user_in_use() -> MatrixError:
    return MatrixError(400, "M_USER_IN_USE", "User ID already taken.")


class RegistrationUserStore(Protocol):
    async def get_user(self, user_id: str) -> UserRow | None: ...

    async def register_user(self, reg: Registration) -> int | None: ...


class RegistrationTokenStore(Protocol):
    async def create_registration_token(
        self, token: str, uses_allowed: int | None, expiry_ts: int | None, now: int
    ) -> bool: ...

    async def get_registration_token(
        self, token: str
    ) -> RegistrationTokenRow | None: ...

    async def get_registration_tokens(self) -> list[RegistrationTokenRow]: ...

    async def delete_registration_token(self, token: str) -> bool: ...

    async def claim_registration_token(
        self, session_id: str, token: str, now: int
    ) -> bool: ...

    async def claim_registration_token_use(self, token: str, now: int) -> bool: ...

    async def release_registration_token(self, token: str) -> None: ...


@dataclass(frozen=True, slots=True)
class RegisterRequest:
    """One round of `POST /register`. `None` means "not in this round": clients may
    send any parameter in any round of the UIA session (Element's first request, the
    flows probe, has none of them), so what is missing here is taken from earlier
    rounds of the same session."""

    username: str | None
    password: str | None
    device_id: str | None
    initial_device_display_name: str | None
    inhibit_login: bool | None
    want_refresh: bool | None
    guest_access_token: str | None
    client_ip: str | None

    def remembered_params(self) -> dict[str, Any]:
        """The parameters of this round that later rounds may omit (never the
        password: only its slow hash is kept, see `_remember_password`)."""
        given = {
            "device_id": self.device_id,
            "initial_device_display_name": self.initial_device_display_name,
            "inhibit_login": self.inhibit_login,
            "refresh_token": self.want_refresh,
        }
        return {k: v for k, v in given.items() if v is not None}

    def with_session_params(self, data: Mapping[str, Any]) -> RegisterRequest:
        """This round, completed with what earlier rounds of the session sent."""

        def pick(value: Any, key: str, kind: type) -> Any:
            stored = data.get(key)
            return (
                value if value is not None or not isinstance(stored, kind) else stored
            )

        return RegisterRequest(
            username=self.username,
            password=self.password,
            device_id=pick(self.device_id, "device_id", str),
            initial_device_display_name=pick(
                self.initial_device_display_name, "initial_device_display_name", str
            ),
            inhibit_login=pick(self.inhibit_login, "inhibit_login", bool),
            want_refresh=pick(self.want_refresh, "refresh_token", bool),
            guest_access_token=self.guest_access_token,
            client_ip=self.client_ip,
        )


@dataclass(frozen=True, slots=True)
class Registered:
    user_id: str
    login: IssuedLogin | None

    def to_json(self, server_name: str) -> dict[str, Any]:
        if self.login is None:
            return {"user_id": self.user_id, "home_server": server_name}
        return self.login.to_json(server_name)


class RegistrationTokenStage:
    """UIA `m.login.registration_token`: takes a pending use of a valid token."""

    def __init__(self, tokens: RegistrationTokenStore, clock: Clock) -> None:
        self._tokens = tokens
        self._clock = clock

    async def check(self, auth: Mapping[str, Any], session: UiaSessionRow) -> Any:
        token = auth.get("token")
        if (
            not isinstance(token, str)
            or REGISTRATION_TOKEN_PATTERN.fullmatch(token) is None
        ):
            raise StageFailedError("M_UNAUTHORIZED", "Invalid registration token.")
        ok = await self._tokens.claim_registration_token(
            session.session_id, token, self._clock.time_msec()
        )
        if not ok:
            raise StageFailedError("M_UNAUTHORIZED", "Invalid registration token.")
        return token


class RegistrationService:
    def __init__(
        self,
        server_name: str,
        config: RegistrationConfig,
        users: RegistrationUserStore,
        tokens: RegistrationTokenStore,
        sessions: SessionService,
        uia: UserInteractiveAuth,
        hasher: PasswordHasher,
        clock: Clock,
        *,
        is_exclusive: Callable[[str], bool] | None = None,
    ) -> None:
        self._server_name = server_name
        self._config = config
        self._users = users
        self._tokens = tokens
        self._sessions = sessions
        self._uia = uia
        self._hasher = hasher
        self._clock = clock
        # Application-service exclusive namespaces, once app services exist.
        self._is_exclusive = is_exclusive or (lambda _user_id: False)

    @property
    def flows(self) -> list[list[str]]:
        # The dummy stage after the token keeps clients written against Synapse's flow
        # (token, then dummy) working.
        if self._config.require_token:
            return [[REGISTRATION_TOKEN, DUMMY]]
        return [[DUMMY]]

    def _require_enabled(self) -> None:
        if not self._config.enabled:
            raise forbidden("Registration is disabled on this homeserver.")

    async def check_username(self, username: str) -> str:
        """The user ID `username` would get; raises unless it is available."""
        self._require_enabled()
        localpart = username.lower()
        check_new_localpart(localpart, self._server_name)
        user_id = user_id_of(localpart, self._server_name)
        if self._is_exclusive(user_id):
            raise MatrixError(400, "M_EXCLUSIVE", "This user ID is reserved.")
        if await self._users.get_user(user_id) is not None:
            raise user_in_use()
        return user_id

    async def register(self, req: RegisterRequest, uia_req: UiaRequest) -> Registered:
        self._require_enabled()
        if req.password is not None:
            check_password_acceptable(req.password)
        guest = await self._guest_to_upgrade(req)
        if guest is not None:
            user_id: str | None = guest.user_id
        elif req.username is not None:
            user_id = await self.check_username(req.username)
        else:
            user_id = None
        # UIA comes first: the answer to a request without `auth` is the 401 with the
        # flows, whatever else is missing (that is how clients discover the flows).
        # Parameters are checked once a flow is complete.
        data = req.remembered_params()
        if user_id is not None:
            data["user_id"] = user_id
        if guest is not None:
            data["upgrade_guest"] = True
        try:
            result = await self._uia.authenticate(uia_req, self.flows, data=data)
        except UiaRequiredError as e:
            await self._remember_password(e.session_id, req.password)
            raise
        req = req.with_session_params(result.data)
        upgrade = guest is not None or result.data.get("upgrade_guest") is True
        password_hash = await self._password_hash(req.password, result.data)
        user_id = user_id or result.data.get("user_id") or await self._free_user_id()
        reg = Registration(
            user=NewUser(
                user_id=user_id,
                password_hash=password_hash,
                is_guest=False,
                is_admin=False,
                profile=self._initial_profile(user_id, upgrade),
                created_ts=self._clock.time_msec(),
            ),
            login=None,
            upgrade_guest=upgrade,
            registration_token=result.completed.get(REGISTRATION_TOKEN),
            uia_session_id=result.session_id,
        )
        return await self._create(reg, req)

    async def register_guest(
        self, initial_device_display_name: str | None, client_ip: str | None
    ) -> Registered:
        if not self._config.allow_guests:
            raise forbidden("Guest access is disabled on this homeserver.")
        for _ in range(_GUEST_ID_ATTEMPTS):
            user_id = user_id_of(generate_guest_localpart(), self._server_name)
            reg = Registration(
                user=NewUser(
                    user_id=user_id,
                    password_hash=None,
                    is_guest=True,
                    is_admin=False,
                    profile=(),
                    created_ts=self._clock.time_msec(),
                ),
                login=None,
            )
            req = RegisterRequest(
                username=None,
                password=None,
                device_id=None,
                initial_device_display_name=initial_device_display_name,
                inhibit_login=False,
                want_refresh=False,
                guest_access_token=None,
                client_ip=client_ip,
            )
            try:
                return await self._create(reg, req)
            except MatrixError as e:
                if e.errcode != "M_USER_IN_USE":
                    raise
        raise MatrixError(500, "M_UNKNOWN", "Could not allocate a guest user ID.")

    async def register_appservice_user(
        self, localpart: str, req: RegisterRequest
    ) -> Registered:
        """A ghost user an application service registers in its own namespace (the
        caller has checked that): no UIA, no password, and `registration.enabled`
        does not apply (spec: Application Service API > Server admin style
        permissions)."""
        localpart = localpart.lower()
        check_new_localpart(localpart, self._server_name)
        user_id = user_id_of(localpart, self._server_name)
        reg = Registration(
            user=NewUser(
                user_id=user_id,
                password_hash=None,
                is_guest=False,
                is_admin=False,
                profile=self._initial_profile(user_id, False),
                created_ts=self._clock.time_msec(),
            ),
            login=None,
        )
        return await self._create(reg, req)

    async def register_local_user(
        self, localpart: str, password: str, *, admin: bool = False
    ) -> str:
        """Operator-created account (CLI): no UIA, no login, ignores `enabled`."""
        localpart = localpart.lower()
        check_new_localpart(localpart, self._server_name)
        check_password_acceptable(password)
        user_id = user_id_of(localpart, self._server_name)
        reg = Registration(
            user=NewUser(
                user_id=user_id,
                password_hash=await self._hasher.hash(password),
                is_guest=False,
                is_admin=admin,
                profile=self._initial_profile(user_id, False),
                created_ts=self._clock.time_msec(),
            ),
            login=None,
        )
        try:
            await self._users.register_user(reg)
        except UserIdInUseError:
            raise user_in_use() from None
        return user_id

    async def register_with_password(
        self, username: str, password: str, registration_token: str | None
    ) -> str:
        """One-step sign-up (the OAuth sign-up page): the same `registration.*` rules
        and username policy as `/register`, without UIA and without a login."""
        user_id = await self.check_username(username)
        check_password_acceptable(password)
        token: str | None = None
        if self._config.require_token:
            if (
                registration_token is None
                or REGISTRATION_TOKEN_PATTERN.fullmatch(registration_token) is None
                or not await self._tokens.claim_registration_token_use(
                    registration_token, self._clock.time_msec()
                )
            ):
                raise MatrixError(403, "M_FORBIDDEN", "Invalid registration token.")
            token = registration_token
        reg = Registration(
            user=NewUser(
                user_id=user_id,
                password_hash=await self._hasher.hash(password),
                is_guest=False,
                is_admin=False,
                profile=self._initial_profile(user_id, False),
                created_ts=self._clock.time_msec(),
            ),
            login=None,
            registration_token=token,
        )
        try:
            await self._users.register_user(reg)
        except UserIdInUseError:
            if token is not None:
                await self._tokens.release_registration_token(token)
            raise user_in_use() from None
        return user_id

    async def _create(self, reg: Registration, req: RegisterRequest) -> Registered:
        issued: IssuedLogin | None = None
        if not req.inhibit_login:
            login, issued = self._sessions.prepare_login(
                reg.user.user_id,
                device_id=req.device_id,
                initial_display_name=req.initial_device_display_name,
                want_refresh=bool(req.want_refresh),
                client_ip=req.client_ip,
            )
            reg = Registration(
                user=reg.user,
                login=login,
                upgrade_guest=reg.upgrade_guest,
                registration_token=reg.registration_token,
                uia_session_id=reg.uia_session_id,
            )
        try:
            await self._users.register_user(reg)
        except UserIdInUseError:
            raise user_in_use() from None
        if reg.upgrade_guest:
            # Cached tokens still say "guest".
            self._sessions.invalidate_user(reg.user.user_id)
        return Registered(reg.user.user_id, issued)

    async def _guest_to_upgrade(self, req: RegisterRequest) -> UserRow | None:
        if req.guest_access_token is None:
            return None
        owner = await self._sessions.get_token_owner(req.guest_access_token)
        user = await self._users.get_user(owner.user_id)
        if user is None or not user.is_guest:
            raise forbidden("'guest_access_token' does not belong to a guest account.")
        parts = split_user_id(user.user_id)
        if (
            req.username is not None
            and parts is not None
            and req.username.lower() != parts[0]
        ):
            raise forbidden(
                "A guest account keeps its user ID: 'username' must match it."
            )
        return user

    def _initial_profile(
        self, user_id: str, upgrade: bool
    ) -> tuple[tuple[str, str], ...]:
        parts = split_user_id(user_id)
        if upgrade or parts is None:
            return ()
        return (("displayname", encode_json(parts[0]).decode()),)

    async def _remember_password(self, session_id: str, password: str | None) -> None:
        """Keep the password's hash in the session, so the last round may omit it.

        Only the slow hash is kept: the session is stored in the database, and a plain
        or fast-hashed password there would be readable or cheap to crack."""
        if password is None:
            return
        data = await self._uia.get_data(session_id)
        if "password_hash" not in data:
            await self._uia.set_data(
                session_id, {"password_hash": await self._hasher.hash(password)}
            )

    async def _password_hash(
        self, password: str | None, data: Mapping[str, Any]
    ) -> str:
        # The hash an earlier round stored is used even when the client sends the
        # password again (as most do): hashing it a second time would double the
        # cost of every registration (≈15 ms and a 19 MiB buffer), and checking that
        # it is unchanged costs as much as hashing. The password is taken to stay the
        # same through one UIA session, as Synapse does.
        stored = data.get("password_hash")
        if isinstance(stored, str):
            return stored
        if password is not None:
            return await self._hasher.hash(password)
        raise missing_param("Missing 'password'.")

    async def _free_user_id(self) -> str:
        for _ in range(_GUEST_ID_ATTEMPTS):
            user_id = user_id_of(generate_guest_localpart(), self._server_name)
            if await self._users.get_user(user_id) is None:
                return user_id
        raise MatrixError(500, "M_UNKNOWN", "Could not allocate a user ID.")

    # -- registration tokens -----------------------------------------------------------

    async def is_registration_token_valid(self, token: str) -> bool:
        self._require_enabled()
        if REGISTRATION_TOKEN_PATTERN.fullmatch(token) is None:
            return False
        row = await self._tokens.get_registration_token(token)
        return row is not None and row.is_valid(self._clock.time_msec())

    async def create_registration_token(
        self,
        token: str | None = None,
        *,
        uses_allowed: int | None = None,
        expires_in_ms: int | None = None,
    ) -> RegistrationTokenRow:
        if token is None:
            token = "".join(
                secrets.choice(_TOKEN_ALPHABET) for _ in range(_GENERATED_TOKEN_LENGTH)
            )
        elif REGISTRATION_TOKEN_PATTERN.fullmatch(token) is None:
            raise invalid_param("Tokens are 1-64 characters from A-Z a-z 0-9 . _ ~ -")
        if uses_allowed is not None and uses_allowed < 1:
            raise invalid_param("'uses_allowed' must be at least 1.")
        if expires_in_ms is not None and expires_in_ms <= 0:
            raise invalid_param("The expiry must be in the future.")
        now = self._clock.time_msec()
        expiry = None if expires_in_ms is None else now + expires_in_ms
        if not await self._tokens.create_registration_token(
            token, uses_allowed, expiry, now
        ):
            raise invalid_param(f"Token {token!r} already exists.")
        row = await self._tokens.get_registration_token(token)
        assert row is not None
        return row

    async def get_registration_tokens(self) -> list[RegistrationTokenRow]:
        return await self._tokens.get_registration_tokens()

    async def delete_registration_token(self, token: str) -> bool:
        return await self._tokens.delete_registration_token(token)
