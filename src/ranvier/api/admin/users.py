"""User administration (Synapse admin API) and the spec's admin endpoints.

    GET    /_synapse/admin/v2/users                      (and v3: tri-state `deactivated`)
    GET    /_synapse/admin/v2/users/{userId}
    PUT    /_synapse/admin/v2/users/{userId}             create (201) or modify (200)
    POST   /_synapse/admin/v1/deactivate/{userId}        {"erase": bool}
    POST   /_synapse/admin/v1/reset_password/{userId}
    GET    /_synapse/admin/v1/users/{userId}/admin
    PUT    /_synapse/admin/v1/users/{userId}/admin
    GET    /_synapse/admin/v1/whois/{userId}
    GET    /_synapse/admin/v2/users/{userId}/devices
    POST   /_synapse/admin/v2/users/{userId}/delete_devices
    GET    /_synapse/admin/v2/users/{userId}/devices/{deviceId}   (PUT rename, DELETE)
    GET    /_synapse/admin/v1/users/{userId}/joined_rooms
    POST   /_synapse/admin/v1/users/{userId}/shadow_ban  (DELETE lifts it)
    POST   /_synapse/admin/v1/users/{userId}/login       "login as user"
    GET    /_synapse/admin/v1/users/{userId}/pushers
    GET    /_synapse/admin/v1/users/{userId}/accountdata
    GET    /_matrix/client/v3/admin/whois/{userId}       (spec: Client-Server > Admin)
    GET    /_matrix/client/v1/admin/{lock,suspend}/{userId}  (PUT sets; spec v1.18)

Every endpoint needs a server admin (`users.is_admin`); others get 403 M_FORBIDDEN
"You are not a server admin". Pagination is Synapse's: `from` (offset), `limit`,
`next_token` while more remain, `total`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol

from ranvier.api.http import Endpoint, MatrixRequest, client_paths
from ranvier.core.errors import (
    MatrixError,
    bad_json,
    forbidden,
    invalid_param,
    missing_param,
    not_found,
)
from ranvier.storage.stores.accounts import DeviceRow
from ranvier.storage.stores.admin import ORDER_COLUMNS, AdminUserRow, UserQuery
from ranvier.storage.stores.pushers import PusherRow

V1: Final = "/_synapse/admin/v1"
V2: Final = "/_synapse/admin/v2"
V3: Final = "/_synapse/admin/v3"
NOT_ADMIN: Final = "You are not a server admin"


class AdminUsers(Protocol):
    """What the user endpoints need from the accounts side (wired in app/admin.py)."""

    async def is_admin(self, user_id: str) -> bool: ...

    async def list_users(self, query: UserQuery) -> tuple[list[AdminUserRow], int]: ...

    async def get_user(self, user_id: str) -> AdminUserRow | None: ...

    async def create_user(
        self, user_id: str, password: str | None, *, admin: bool
    ) -> None: ...

    async def set_password(
        self, user_id: str, password: str, *, logout_devices: bool
    ) -> None: ...

    async def set_admin(self, user_id: str, admin: bool) -> None: ...

    async def set_flag(self, user_id: str, flag: str, value: bool) -> None: ...

    async def set_profile_field(self, user_id: str, key: str, value: Any) -> None: ...

    async def deactivate(self, user_id: str, *, erase: bool) -> None: ...

    async def reactivate(self, user_id: str) -> None: ...

    async def get_devices(self, user_id: str) -> list[DeviceRow]: ...

    async def rename_device(
        self, user_id: str, device_id: str, name: str | None
    ) -> None: ...

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> None: ...

    async def get_joined_rooms(self, user_id: str) -> list[str]: ...

    async def login_as(self, user_id: str, valid_until_ms: int | None) -> str: ...

    async def get_pushers(self, user_id: str) -> list[PusherRow]: ...

    async def get_account_data(self, user_id: str) -> list[tuple[str, str, Any]]: ...


class AdminCheck(Protocol):
    async def is_admin(self, user_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class AdminGate:
    users: AdminCheck

    async def require_admin(self, req: MatrixRequest) -> str:
        if not await self.users.is_admin(req.user.user_id):
            raise forbidden(NOT_ADMIN)
        return req.user.user_id


def user_json(row: AdminUserRow) -> dict[str, Any]:
    return {
        "name": row.user_id,
        "displayname": row.displayname,
        "avatar_url": row.avatar_url,
        "threepids": [],
        "external_ids": [],
        "is_guest": row.is_guest,
        "admin": row.is_admin,
        "deactivated": row.deactivated,
        "erased": row.erased,
        "shadow_banned": row.shadow_banned,
        "locked": row.locked,
        "suspended": row.suspended,
        "creation_ts": row.created_ts,
        "appservice_id": None,
        "consent_server_notice_sent": None,
        "consent_version": None,
        "consent_ts": None,
        "user_type": None,
        "approved": True,
        "last_seen_ts": row.last_seen_ts,
    }


def admin_device_json(user_id: str, d: DeviceRow) -> dict[str, Any]:
    return {
        "device_id": d.device_id,
        "display_name": d.display_name,
        "last_seen_ip": d.last_seen_ip,
        "last_seen_ts": d.last_seen_ts,
        "last_seen_user_agent": None,
        "user_id": user_id,
    }


def page_params(req: MatrixRequest, default_limit: int = 100) -> tuple[int, int]:
    """Synapse's `from` and `limit`: non-negative integers."""
    start = req.query_int("from", 0)
    limit = req.query_int("limit", default_limit)
    assert start is not None
    assert limit is not None
    if start < 0:
        raise invalid_param(
            "Query parameter from must be a string representing a positive integer."
        )
    if limit < 0:
        raise invalid_param(
            "Query parameter limit must be a string representing a positive integer."
        )
    return start, limit


def direction(req: MatrixRequest) -> bool:
    """`dir=f` (default) is True, `dir=b` False."""
    d = req.query.get("dir", "f")
    if d not in ("f", "b"):
        raise invalid_param("Query parameter 'dir' must be one of ['b', 'f']")
    return d == "f"


def optional_bool(req: MatrixRequest, name: str) -> bool | None:
    return req.query_bool(name) if name in req.query else None


class UsersAdminResource:
    def __init__(self, server_name: str, users: AdminUsers) -> None:
        self._server_name = server_name
        self._users = users
        self._gate = AdminGate(users)

    def _local(self, user_id: str, message: str) -> None:
        if not user_id.startswith("@") or user_id.partition(":")[2] != (
            self._server_name
        ):
            raise MatrixError(400, "M_INVALID_PARAM", message)

    async def _existing(self, user_id: str) -> AdminUserRow:
        row = await self._users.get_user(user_id)
        if row is None:
            raise not_found("User not found")
        return row

    # -- listing --------------------------------------------------------------------

    async def _list(self, req: MatrixRequest, *, v3: bool) -> dict[str, Any]:
        await self._gate.require_admin(req)
        start, limit = page_params(req)
        order_by = req.query.get("order_by", "name")
        if order_by not in ORDER_COLUMNS:
            raise invalid_param("Unknown value for order_by")
        deactivated = optional_bool(req, "deactivated")
        query = UserQuery(
            start=start,
            limit=limit,
            user_id=req.query.get("user_id"),
            name=req.query.get("name"),
            guests=req.query_bool("guests", True),
            # v2: deactivated accounts only when asked for; v3: a filter either way.
            deactivated=(
                ("any" if deactivated is None else "only" if deactivated else "none")
                if v3
                else ("any" if deactivated else "none")
            ),
            admins=optional_bool(req, "admins"),
            order_by=order_by,
            forwards=direction(req),
        )
        rows, total = await self._users.list_users(query)
        out: dict[str, Any] = {"users": [user_json(r) for r in rows], "total": total}
        if start + len(rows) < total:
            out["next_token"] = str(start + len(rows))
        return out

    async def list_users_v2(self, req: MatrixRequest) -> dict[str, Any]:
        return await self._list(req, v3=False)

    async def list_users_v3(self, req: MatrixRequest) -> dict[str, Any]:
        return await self._list(req, v3=True)

    # -- one user -------------------------------------------------------------------

    async def get_user(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        user_id = req.path_param("userId")
        self._local(user_id, "Can only look up local users")
        return user_json(await self._existing(user_id))

    async def put_user(self, req: MatrixRequest) -> tuple[int, dict[str, Any]]:
        me = await self._gate.require_admin(req)
        user_id = req.path_param("userId")
        self._local(user_id, "This endpoint can only be used with local users")
        body = await req.json()
        password = body.get_str("password")
        if password is not None and (not password or len(password) > 512):
            raise invalid_param("Invalid password")
        displayname = body.get_str("displayname")
        avatar_url = body.get_str("avatar_url")
        admin = body.get_optional_bool("admin")
        deactivated = body.get_optional_bool("deactivated")
        locked = body.get_optional_bool("locked")
        logout_devices = body.get_bool("logout_devices", True)
        existing = await self._users.get_user(user_id)
        status = 200
        if existing is None:
            if deactivated:
                raise invalid_param("Cannot create a deactivated user")
            await self._users.create_user(user_id, password, admin=bool(admin))
            status = 201
            password = None
            if displayname is None:
                displayname = user_id[1:].partition(":")[0]
        else:
            if admin is not None and admin != existing.is_admin:
                if user_id == me and not admin:
                    raise MatrixError(400, "M_UNKNOWN", "You may not demote yourself.")
                await self._users.set_admin(user_id, admin)
            if deactivated is False and existing.deactivated:
                if password is None:
                    raise invalid_param(
                        "Must provide a password to re-activate an account."
                    )
                await self._users.reactivate(user_id)
        if password is not None:
            await self._users.set_password(
                user_id, password, logout_devices=logout_devices
            )
        if displayname is not None:
            await self._users.set_profile_field(user_id, "displayname", displayname)
        if avatar_url is not None:
            await self._users.set_profile_field(user_id, "avatar_url", avatar_url)
        if locked is not None:
            await self._users.set_flag(user_id, "locked", locked)
        if deactivated and existing is not None and not existing.deactivated:
            await self._users.deactivate(user_id, erase=False)
        return status, user_json(await self._existing(user_id))

    async def deactivate(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        user_id = req.path_param("userId")
        self._local(user_id, "Can only deactivate local users")
        body = await req.json()
        erase = body.get_bool("erase")
        row = await self._existing(user_id)
        if not row.deactivated:
            await self._users.deactivate(user_id, erase=erase)
        return {"id_server_unbind_result": "success"}

    async def reset_password(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        user_id = req.path_param("userId")
        self._local(user_id, "Can only reset the password of local users")
        body = await req.json()
        password = body.get_str("new_password")
        if not password:
            raise missing_param("Missing 'new_password'")
        await self._existing(user_id)
        await self._users.set_password(
            user_id, password, logout_devices=body.get_bool("logout_devices", True)
        )
        return {}

    async def get_admin(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        user_id = req.path_param("userId")
        self._local(user_id, "Only local users can be admins of this homeserver")
        return {"admin": (await self._existing(user_id)).is_admin}

    async def put_admin(self, req: MatrixRequest) -> dict[str, Any]:
        me = await self._gate.require_admin(req)
        user_id = req.path_param("userId")
        self._local(user_id, "Only local users can be admins of this homeserver")
        body = await req.json()
        if "admin" not in body:
            raise missing_param("Missing key 'admin'")
        admin = body.get_bool("admin")
        await self._existing(user_id)
        if user_id == me and not admin:
            raise MatrixError(400, "M_UNKNOWN", "You may not demote yourself.")
        await self._users.set_admin(user_id, admin)
        return {}

    # -- sessions and devices ----------------------------------------------------------

    async def whois(self, req: MatrixRequest) -> dict[str, Any]:
        user_id = req.path_param("userId")
        # Spec: servers may let users look themselves up.
        if user_id != req.user.user_id:
            await self._gate.require_admin(req)
        self._local(user_id, "Can only whois local users")
        await self._existing(user_id)
        devices: dict[str, Any] = {}
        for d in await self._users.get_devices(user_id):
            connection = {
                "ip": d.last_seen_ip,
                "last_seen": d.last_seen_ts,
                "user_agent": None,
            }
            connections = [connection] if d.last_seen_ts is not None else []
            devices[d.device_id] = {"sessions": [{"connections": connections}]}
        return {"user_id": user_id, "devices": devices}

    async def list_devices(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        user_id = req.path_param("userId")
        self._local(user_id, "Can only look up local users")
        await self._existing(user_id)
        devices = await self._users.get_devices(user_id)
        return {
            "devices": [admin_device_json(user_id, d) for d in devices],
            "total": len(devices),
        }

    async def _device(self, req: MatrixRequest) -> tuple[str, DeviceRow]:
        await self._gate.require_admin(req)
        user_id = req.path_param("userId")
        self._local(user_id, "Can only look up local users")
        await self._existing(user_id)
        device_id = req.path_param("deviceId")
        for d in await self._users.get_devices(user_id):
            if d.device_id == device_id:
                return user_id, d
        raise not_found("Device not found")

    async def get_device(self, req: MatrixRequest) -> dict[str, Any]:
        user_id, device = await self._device(req)
        return admin_device_json(user_id, device)

    async def put_device(self, req: MatrixRequest) -> dict[str, Any]:
        user_id, device = await self._device(req)
        body = await req.json()
        if "display_name" in body:
            await self._users.rename_device(
                user_id, device.device_id, body.get_str("display_name")
            )
        return {}

    async def delete_device(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        user_id = req.path_param("userId")
        self._local(user_id, "Can only look up local users")
        await self._existing(user_id)
        # Synapse: deleting an unknown device succeeds.
        await self._users.delete_devices(user_id, [req.path_param("deviceId")])
        return {}

    async def delete_devices(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        user_id = req.path_param("userId")
        self._local(user_id, "Can only look up local users")
        body = await req.json()
        device_ids = body.get_str_list("devices")
        if device_ids is None:
            raise missing_param("Missing 'devices'")
        await self._existing(user_id)
        await self._users.delete_devices(user_id, device_ids)
        return {}

    async def joined_rooms(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        user_id = req.path_param("userId")
        rooms = await self._users.get_joined_rooms(user_id)
        return {"joined_rooms": rooms, "total": len(rooms)}

    # -- moderation ---------------------------------------------------------------------

    async def _shadow_ban(self, req: MatrixRequest, value: bool) -> dict[str, Any]:
        await self._gate.require_admin(req)
        user_id = req.path_param("userId")
        self._local(user_id, "Only local users can be shadow-banned")
        await self._existing(user_id)
        await self._users.set_flag(user_id, "shadow_banned", value)
        return {}

    async def shadow_ban(self, req: MatrixRequest) -> dict[str, Any]:
        return await self._shadow_ban(req, True)

    async def unshadow_ban(self, req: MatrixRequest) -> dict[str, Any]:
        return await self._shadow_ban(req, False)

    async def login_as(self, req: MatrixRequest) -> dict[str, Any]:
        me = await self._gate.require_admin(req)
        user_id = req.path_param("userId")
        self._local(user_id, "Only local users can be logged in as")
        if user_id == me:
            raise MatrixError(400, "M_UNKNOWN", "Cannot use admin API to login as self")
        row = await self._existing(user_id)
        if row.deactivated:
            raise not_found("User not found")
        body = await req.json()
        valid_until = body.get_int("valid_until_ms")
        token = await self._users.login_as(user_id, valid_until)
        return {"access_token": token}

    async def pushers(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        user_id = req.path_param("userId")
        self._local(user_id, "Can only look up local users")
        await self._existing(user_id)
        rows = await self._users.get_pushers(user_id)
        pushers = [
            {
                "app_display_name": p.app_display_name,
                "app_id": p.app_id,
                "data": p.data,
                "device_display_name": p.device_display_name,
                "kind": p.kind,
                "lang": p.lang,
                "profile_tag": p.profile_tag or "",
                "pushkey": p.pushkey,
            }
            for p in rows
        ]
        return {"pushers": pushers, "total": len(pushers)}

    async def account_data(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        user_id = req.path_param("userId")
        self._local(user_id, "Can only look up local users")
        await self._existing(user_id)
        global_data: dict[str, Any] = {}
        rooms: dict[str, dict[str, Any]] = {}
        for room_id, data_type, content in await self._users.get_account_data(user_id):
            if room_id:
                rooms.setdefault(room_id, {})[data_type] = content
            else:
                global_data[data_type] = content
        return {"account_data": {"global": global_data, "rooms": rooms}}

    async def _spec_target(self, req: MatrixRequest) -> AdminUserRow:
        user_id = req.path_param("userId")
        self._local(user_id, "The user ID does not belong to this server")
        row = await self._users.get_user(user_id)
        if row is None or row.deactivated:
            raise not_found("User not found")
        return row

    async def _get_spec_flag(self, req: MatrixRequest, flag: str) -> dict[str, Any]:
        await self._gate.require_admin(req)
        row = await self._spec_target(req)
        return {flag: row.locked if flag == "locked" else row.suspended}

    async def _put_spec_flag(self, req: MatrixRequest, flag: str) -> dict[str, Any]:
        me = await self._gate.require_admin(req)
        row = await self._spec_target(req)
        body = await req.json()
        if flag not in body:
            raise missing_param(f"Missing '{flag}'")
        value = body.raw[flag]
        if not isinstance(value, bool):
            raise bad_json(f"'{flag}' must be a boolean")
        if row.user_id == me or row.is_admin:
            raise forbidden(f"Cannot change the {flag} status of an administrator")
        await self._users.set_flag(row.user_id, flag, value)
        return {flag: value}

    async def get_lock(self, req: MatrixRequest) -> dict[str, Any]:
        return await self._get_spec_flag(req, "locked")

    async def put_lock(self, req: MatrixRequest) -> dict[str, Any]:
        return await self._put_spec_flag(req, "locked")

    async def get_suspend(self, req: MatrixRequest) -> dict[str, Any]:
        return await self._get_spec_flag(req, "suspended")

    async def put_suspend(self, req: MatrixRequest) -> dict[str, Any]:
        return await self._put_spec_flag(req, "suspended")

    def endpoints(self) -> list[Endpoint]:
        user = f"{V2}/users/{{userId}}"
        device = f"{user}/devices/{{deviceId}}"
        v1user = f"{V1}/users/{{userId}}"
        lock = client_paths("/admin/lock/{userId}", prefix="v1")
        suspend = client_paths("/admin/suspend/{userId}", prefix="v1")
        return [
            Endpoint("GET", (f"{V2}/users",), self.list_users_v2),
            Endpoint("GET", (f"{V3}/users",), self.list_users_v3),
            Endpoint("GET", (user,), self.get_user),
            Endpoint("PUT", (user,), self.put_user),
            Endpoint("POST", (f"{V1}/deactivate/{{userId}}",), self.deactivate),
            Endpoint("POST", (f"{V1}/reset_password/{{userId}}",), self.reset_password),
            Endpoint("GET", (f"{v1user}/admin",), self.get_admin),
            Endpoint("PUT", (f"{v1user}/admin",), self.put_admin),
            Endpoint(
                "GET",
                (f"{V1}/whois/{{userId}}", *client_paths("/admin/whois/{userId}")),
                self.whois,
            ),
            Endpoint("GET", (f"{user}/devices",), self.list_devices),
            Endpoint("POST", (f"{user}/delete_devices",), self.delete_devices),
            Endpoint("GET", (device,), self.get_device),
            Endpoint("PUT", (device,), self.put_device),
            Endpoint("DELETE", (device,), self.delete_device),
            Endpoint("GET", (f"{v1user}/joined_rooms",), self.joined_rooms),
            Endpoint("POST", (f"{v1user}/shadow_ban",), self.shadow_ban),
            Endpoint("DELETE", (f"{v1user}/shadow_ban",), self.unshadow_ban),
            Endpoint("POST", (f"{v1user}/login",), self.login_as),
            Endpoint("GET", (f"{v1user}/pushers",), self.pushers),
            Endpoint("GET", (f"{v1user}/accountdata",), self.account_data),
            Endpoint("GET", lock, self.get_lock),
            Endpoint("PUT", lock, self.put_lock),
            Endpoint("GET", suspend, self.get_suspend),
            Endpoint("PUT", suspend, self.put_suspend),
        ]
