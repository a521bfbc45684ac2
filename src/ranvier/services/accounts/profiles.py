"""User profiles: `displayname`, `avatar_url`, `m.tz` and custom fields (v1.16).

Spec: Client-Server API > User data > Profiles. Field names match
`avatar_url|displayname|m.tz|<namespaced identifier>`; keys are at most 255 bytes and the
whole profile stays under 64 KiB. `displayname` must be a string and `avatar_url` an MXC
URI; an empty string or null clears either (what clients have long sent to remove them).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, Protocol

from ranvier.core.errors import MatrixError, bad_json, invalid_param, not_found
from ranvier.core.ids import InvalidIdentifierError, parse_user_id
from ranvier.core.json import encode_json
from ranvier.services.accounts.hooks import AccountHooks
from ranvier.storage.stores.accounts import UserRow

JsonDict = dict[str, Any]

DISPLAYNAME = "displayname"
AVATAR_URL = "avatar_url"
TIMEZONE = "m.tz"
# Fields whose changes show up in room membership events.
MEMBER_FIELDS = frozenset({DISPLAYNAME, AVATAR_URL})

MAX_PROFILE_BYTES = 64 * 1024
MAX_KEY_BYTES = 255
MAX_DISPLAYNAME_LENGTH = 256
MAX_AVATAR_URL_LENGTH = 1000

_KEY_NAME = re.compile(
    r"avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+"
)
_MXC_URI = re.compile(r"mxc://[A-Za-z0-9.\-:\[\]]+/[A-Za-z0-9_\-]+")


class ProfileFieldStore(Protocol):
    async def get_profile(self, user_id: str) -> JsonDict: ...

    async def get_profiles(
        self, user_ids: Collection[str], fields: Collection[str] | None = None
    ) -> dict[str, JsonDict]: ...

    async def set_profile_field(self, user_id: str, field: str, value: Any) -> None: ...

    async def delete_profile_field(self, user_id: str, field: str) -> bool: ...

    async def delete_profile(self, user_id: str) -> None: ...


class RemoteProfiles(Protocol):
    """Profiles of other servers' users (federation `GET /query/profile`)."""

    async def query_profile(
        self, user_id: str, field: str | None = None
    ) -> JsonDict: ...


class AppServiceUserQuery(Protocol):
    async def query_user(self, user_id: str) -> bool:
        """Ask the application service whose namespace holds `user_id` to create it;
        True if it says it did."""
        ...


class ProfileUserLookup(Protocol):
    async def get_user(self, user_id: str) -> UserRow | None: ...


def _is_user_id(value: str) -> bool:
    try:
        parse_user_id(value)
    except InvalidIdentifierError:
        return False
    return True


def check_key_name(key: str) -> None:
    if len(key.encode()) > MAX_KEY_BYTES:
        raise MatrixError(
            400, "M_KEY_TOO_LARGE", f"Profile keys are at most {MAX_KEY_BYTES} bytes."
        )
    if _KEY_NAME.fullmatch(key) is None:
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid profile key.")


def _check_value(key: str, value: Any) -> None:
    if key in MEMBER_FIELDS and value is None:
        return
    if key == DISPLAYNAME:
        if not isinstance(value, str):
            raise bad_json("'displayname' must be a string")
        if len(value) > MAX_DISPLAYNAME_LENGTH:
            raise MatrixError(
                400,
                "M_TOO_LARGE",
                f"Display name too long (max {MAX_DISPLAYNAME_LENGTH}).",
            )
    elif key == AVATAR_URL:
        if not isinstance(value, str):
            raise bad_json("'avatar_url' must be a string")
        if len(value) > MAX_AVATAR_URL_LENGTH:
            raise MatrixError(
                400,
                "M_TOO_LARGE",
                f"Avatar URL too long (max {MAX_AVATAR_URL_LENGTH}).",
            )
        if value and _MXC_URI.fullmatch(value) is None:
            raise bad_json("'avatar_url' must be an mxc:// URI")
    elif key == TIMEZONE and not isinstance(value, str):
        raise bad_json("'m.tz' must be a string")


def _profile_size(profile: JsonDict) -> int:
    return len(encode_json(profile))


class ProfileService:
    def __init__(
        self,
        server_name: str,
        store: ProfileFieldStore,
        users: ProfileUserLookup,
        hooks: AccountHooks,
        remote: RemoteProfiles | None = None,
        app_service_users: AppServiceUserQuery | None = None,
    ) -> None:
        self._server_name = server_name
        self._store = store
        self._users = users
        self._hooks = hooks
        self._remote = remote
        self._app_service_users = app_service_users

    def is_local(self, user_id: str) -> bool:
        return user_id.endswith(":" + self._server_name) and user_id.startswith("@")

    async def _require_user(self, user_id: str) -> None:
        if not self.is_local(user_id):
            raise not_found("Profile not found.")
        if await self._users.get_user(user_id) is not None:
            return
        # Spec (Application Service API > Querying): an unknown user in a service's
        # namespace is first asked of the service, which may create it (a ghost).
        if (
            self._app_service_users is None
            or not await self._app_service_users.query_user(user_id)
            or await self._users.get_user(user_id) is None
        ):
            raise not_found("Profile not found.")

    async def get_profile(self, user_id: str) -> JsonDict:
        """The whole profile of a user (other servers' users: asked over federation);
        404 for unknown users, 400 `M_INVALID_PARAM` for what is no user ID."""
        if not _is_user_id(user_id):
            raise invalid_param("Invalid user ID.")
        if (
            self._remote is not None
            and not self.is_local(user_id)
            and _is_user_id(user_id)
        ):
            return await self._remote.query_profile(user_id)
        await self._require_user(user_id)
        return await self._store.get_profile(user_id)

    async def get_profile_field(self, user_id: str, key: str) -> Any:
        check_key_name(key)
        profile = await self.get_profile(user_id)
        if key not in profile:
            raise not_found("Profile field not set.")
        return profile[key]

    async def get_member_profiles(
        self, user_ids: Collection[str]
    ) -> dict[str, JsonDict]:
        """`displayname`/`avatar_url` of many local users at once (for member events)."""
        return await self._store.get_profiles(user_ids, MEMBER_FIELDS)

    async def set_profile_field(self, user_id: str, key: str, value: Any) -> None:
        check_key_name(key)
        _check_value(key, value)
        await self._require_user(user_id)
        if key in MEMBER_FIELDS and value in ("", None):
            await self.delete_profile_field(user_id, key)
            return
        profile = await self._store.get_profile(user_id)
        if key in profile and profile[key] == value:
            return
        profile[key] = value
        if _profile_size(profile) >= MAX_PROFILE_BYTES:
            raise MatrixError(
                400, "M_PROFILE_TOO_LARGE", "The profile would exceed its 64 KiB limit."
            )
        await self._store.set_profile_field(user_id, key, value)
        if key in MEMBER_FIELDS:
            await self._hooks.profile_changed(user_id)

    async def delete_profile_field(self, user_id: str, key: str) -> None:
        check_key_name(key)
        await self._require_user(user_id)
        if (
            await self._store.delete_profile_field(user_id, key)
            and key in MEMBER_FIELDS
        ):
            await self._hooks.profile_changed(user_id)

    async def on_deactivate(self, user_id: str, erase: bool) -> None:
        """Deactivation listener: an erased account keeps no profile."""
        if erase:
            await self._store.delete_profile(user_id)
            await self._hooks.profile_changed(user_id)
