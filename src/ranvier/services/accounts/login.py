"""Password and token login, and the password stage of user-interactive auth.

Spec: Client-Server API > Client Authentication > Login; Identifier types; Password-based
(`m.login.password`) and Token-based (`m.login.token`) login.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ranvier.core.errors import MatrixError, bad_json, forbidden, missing_param
from ranvier.services.accounts.hooks import AccountHooks
from ranvier.services.accounts.identifiers import split_user_id, user_id_of
from ranvier.services.accounts.passwords import PasswordHasher
from ranvier.services.accounts.sessions import IssuedLogin, SessionService
from ranvier.services.accounts.uia import StageFailedError
from ranvier.storage.stores.accounts import DeviceRow, UserRow
from ranvier.storage.stores.registration import UiaSessionRow

LOGIN_PASSWORD = "m.login.password"  # noqa: S105 - a protocol name, not a secret
LOGIN_TOKEN = "m.login.token"  # noqa: S105 - a protocol name, not a secret

_BAD_CREDENTIALS = "Invalid username or password."


class UserLookup(Protocol):
    async def get_user(self, user_id: str) -> UserRow | None: ...

    async def get_device(self, user_id: str, device_id: str) -> DeviceRow | None: ...

    async def set_password_hash(
        self, user_id: str, password_hash: str | None
    ) -> bool: ...


@dataclass(frozen=True, slots=True)
class LoginRequest:
    login_type: str
    # The whole request body (identifier, password, token, ...).
    body: Mapping[str, Any]
    device_id: str | None
    initial_device_display_name: str | None
    want_refresh: bool
    client_ip: str | None
    # Set by the caller once it has established who logs in some other way (an
    # application service logging in a user of its namespace with its as_token).
    verified_user_id: str | None = None


def identifier_user(body: Mapping[str, Any]) -> str:
    """The `user` a login (or UIA password) body names: `identifier` or legacy `user`."""
    identifier = body.get("identifier")
    if identifier is None:
        user = body.get("user")
        if user is None:
            if "medium" in body or "address" in body:
                raise forbidden("No account is bound to this third-party identifier.")
            raise missing_param("Missing 'identifier'.")
        if not isinstance(user, str):
            raise bad_json("'user' must be a string")
        return user
    if not isinstance(identifier, dict):
        raise bad_json("'identifier' must be an object")
    id_type = identifier.get("type")
    if id_type == "m.id.user":
        user = identifier.get("user")
        if not isinstance(user, str):
            raise bad_json("'identifier.user' must be a string")
        return user
    if id_type in ("m.id.thirdparty", "m.id.phone"):
        raise forbidden("No account is bound to this third-party identifier.")
    raise MatrixError(400, "M_UNKNOWN", "Unknown login identifier type.")


class LoginService:
    def __init__(
        self,
        server_name: str,
        users: UserLookup,
        hasher: PasswordHasher,
        sessions: SessionService,
        hooks: AccountHooks | None = None,
    ) -> None:
        self._hooks = hooks
        self._server_name = server_name
        self._users = users
        self._hasher = hasher
        self._sessions = sessions

    async def find_user(self, user: str) -> UserRow | None:
        """The local account `user` (an MXID or a localpart) names, case-insensitively
        as a fallback (clients often capitalise the first letter)."""
        if user.startswith("@"):
            parts = split_user_id(user)
            if parts is None or parts[1] != self._server_name:
                return None
            localpart = parts[0]
        else:
            localpart = user
        row = await self._users.get_user(user_id_of(localpart, self._server_name))
        if row is None and localpart != localpart.lower():
            row = await self._users.get_user(
                user_id_of(localpart.lower(), self._server_name)
            )
        return row

    async def check_password(self, user: UserRow | None, password: str) -> bool:
        """Verify, always spending the hashing time (also for unknown users)."""
        if user is None or user.deactivated:
            await self._hasher.verify(None, password)
            return False
        ok = await self._hasher.verify(user.password_hash, password)
        if (
            ok
            and user.password_hash is not None
            and self._hasher.needs_rehash(user.password_hash)
        ):
            await self._users.set_password_hash(
                user.user_id, await self._hasher.hash(password)
            )
        return ok

    async def login(self, req: LoginRequest) -> IssuedLogin:
        if req.verified_user_id is not None:
            user_id = req.verified_user_id
        elif req.login_type == LOGIN_PASSWORD:
            user_id = await self._password_login(req.body)
        elif req.login_type == LOGIN_TOKEN:
            user_id = await self._token_login(req.body)
        else:
            raise MatrixError(400, "M_UNKNOWN", "Unknown login type.")
        known = (
            req.device_id is not None
            and await self._users.get_device(user_id, req.device_id) is not None
        )
        issued = await self._sessions.create_login(
            user_id,
            device_id=req.device_id,
            initial_display_name=req.initial_device_display_name,
            want_refresh=req.want_refresh,
            client_ip=req.client_ip,
        )
        if not known and self._hooks is not None:
            # A new device: everyone sharing a room sees it in `device_lists`.
            await self._hooks.devices_changed(
                user_id, {issued.device_id: req.initial_device_display_name}
            )
        return issued

    async def _password_login(self, body: Mapping[str, Any]) -> str:
        user = identifier_user(body)
        password = body.get("password")
        if password is None:
            raise missing_param("Missing 'password'.")
        if not isinstance(password, str):
            raise bad_json("'password' must be a string")
        row = await self.find_user(user)
        if not await self.check_password(row, password) or row is None:
            raise forbidden(_BAD_CREDENTIALS)
        if row.is_guest:
            raise forbidden(_BAD_CREDENTIALS)
        return row.user_id

    async def _token_login(self, body: Mapping[str, Any]) -> str:
        token = body.get("token")
        if token is None:
            raise missing_param("Missing 'token'.")
        if not isinstance(token, str):
            raise bad_json("'token' must be a string")
        user_id = await self._sessions.consume_login_token(token)
        if user_id is None:
            raise forbidden("Invalid or expired login token.")
        row = await self._users.get_user(user_id)
        if row is None or row.deactivated:
            raise MatrixError(
                403, "M_USER_DEACTIVATED", "This account has been deactivated."
            )
        return user_id


class PasswordStage:
    """UIA `m.login.password`: the requester proves it knows its own password."""

    def __init__(self, login: LoginService) -> None:
        self._login = login

    async def check(self, auth: Mapping[str, Any], session: UiaSessionRow) -> Any:
        password = auth.get("password")
        if not isinstance(password, str):
            raise StageFailedError("M_MISSING_PARAM", "Missing 'password'.")
        try:
            user = identifier_user(auth)
        except MatrixError as e:
            raise StageFailedError(e.errcode, e.message) from None
        row = await self._login.find_user(user)
        if not await self._login.check_password(row, password) or row is None:
            raise StageFailedError("M_FORBIDDEN", _BAD_CREDENTIALS)
        if row.user_id != session.user_id:
            raise StageFailedError(
                "M_FORBIDDEN", "You can only authenticate as yourself."
            )
        return row.user_id
