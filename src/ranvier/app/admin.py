"""Wiring of the server admin API (issue #14): the `admin` listener resource.

`AccountsAdmin` adapts the accounts services to what api/admin/ needs, so the endpoint
modules depend on one narrow protocol and the accounts side keeps its invariants
(password hashing, token cache invalidation, deactivation hooks).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ranvier.api.admin.federation import FederationAdminResource
from ranvier.api.admin.media import MediaAdminResource
from ranvier.api.admin.moderation import ModerationResource
from ranvier.api.admin.register import SharedSecretRegistration
from ranvier.api.admin.rooms import RoomsAdminResource
from ranvier.api.admin.users import UsersAdminResource
from ranvier.api.http import Endpoint
from ranvier.app.accounts import Accounts
from ranvier.app.federation import Federation
from ranvier.app.media import Media
from ranvier.app.rooms import Rooms
from ranvier.config.schema import HomeserverConfig
from ranvier.core.errors import MatrixError
from ranvier.core.room_tokens import InvalidRoomTokenError, RoomToken, parse_room_token
from ranvier.services.accounts.identifiers import check_new_localpart, user_id_of
from ranvier.services.accounts.passwords import check_password_acceptable
from ranvier.services.media.files import MediaFiles
from ranvier.storage.database import Database
from ranvier.storage.stores.accounts import (
    DeviceRow,
    NewUser,
    Registration,
    UserIdInUseError,
)
from ranvier.storage.stores.admin import (
    AdminStore,
    AdminUserRow,
    DestinationRow,
    ReportAdminStore,
    UserQuery,
)
from ranvier.storage.stores.admin_media import MediaAdminStore, UserMediaStats
from ranvier.storage.stores.admin_rooms import RoomAdminStore
from ranvier.storage.stores.events import Direction
from ranvier.storage.stores.media import LocalMedia, RemoteMedia
from ranvier.storage.stores.pushers import PusherRow, PusherStore
from ranvier.util.clock import Clock
from ranvier.util.supervisor import TaskSupervisor

JoinedRooms = Callable[[str], Awaitable[list[str]]]


class RoomsAdminOps:
    """What the room endpoints do through the rooms services."""

    def __init__(self, rooms: Rooms, server_name: str) -> None:
        self._rooms = rooms
        self._server_name = server_name

    async def get_state_json(self, room_id: str) -> list[dict[str, Any]]:
        state = await self._rooms.state_reader.get_current_state(room_id)
        return await self._rooms.serializer.serialize(
            list(state.values()), bundle_relations=False
        )

    async def leave(self, user_id: str, room_id: str, reason: str | None) -> None:
        await self._rooms.membership.leave(user_id, room_id, reason)

    async def get_messages(
        self,
        room_id: str,
        from_token: str | None,
        to_token: str | None,
        forwards: bool,
        limit: int,
    ) -> dict[str, Any]:
        """A page of the room's timeline as a server admin sees it: every servable
        event, whatever the history visibility (Synapse's admin messages API)."""
        events = self._rooms.events
        direction: Direction = "f" if forwards else "b"
        try:
            start = parse_room_token(from_token) if from_token else None
            end = parse_room_token(to_token) if to_token else None
        except InvalidRoomTokenError as e:
            raise MatrixError(400, "M_INVALID_PARAM", str(e)) from None
        if start is None:
            start = (
                RoomToken(0, 0)
                if forwards
                else RoomToken(stream=events.get_current_position())
            )
        if start.depth is None:
            start = await events.get_topological_token(room_id, start.stream)
        if end is not None and end.depth is None:
            end = await events.get_topological_token(room_id, end.stream)
        page = await events.paginate_room(room_id, start, end, direction, limit)
        out: dict[str, Any] = {
            "start": start.encode(),
            "chunk": await self._rooms.serializer.serialize(
                page.events, bundle_relations=False
            ),
        }
        if page.next_token is not None:
            out["end"] = page.next_token.encode()
        return out

    async def resolve_room(self, room_id_or_alias: str) -> str:
        return await self._rooms.membership.resolve_room(room_id_or_alias)

    async def make_room_admin(self, room_id: str, user_id: str) -> None:
        levels = (
            await self._rooms.state_reader.get_current_content(
                room_id, "m.room.power_levels"
            )
            or {}
        )
        users: dict[str, Any] = dict(levels.get("users") or {})
        default = levels.get("users_default", 0)
        creators: set[str] = set()
        version = await self._rooms.rooms.get_room_version(room_id)
        if version is not None and version.privileged_creators:
            # Room v12+ (MSC4289): creators outrank every power level and are never
            # listed in `users`; what they grant is the highest listed level (or 100).
            create = await self._rooms.state_reader.get_current_state_event(
                room_id, "m.room.create", ""
            )
            if create is not None:
                extra = create.content.get("additional_creators") or []
                creators = {create.sender, *(u for u in extra if isinstance(u, str))}
        joined = await self._rooms.rooms.get_joined_user_ids(room_id)
        local = [u for u in joined if u.endswith(":" + self._server_name)]
        if not local:
            raise MatrixError(
                400, "M_UNKNOWN", "No local user in the room to grant it."
            )
        infinite = float("inf")

        def level(u: str) -> float:
            return infinite if u in creators else float(users.get(u, default))

        granter = max(local, key=lambda u: (level(u), u))
        power = level(granter)
        if power == infinite:
            power = max([100, *(int(v) for v in users.values())])
        if user_id in creators:
            return
        if user_id != granter:
            users[user_id] = int(power)
            await self._rooms.messages.send_state(
                user_id=granter,
                room_id=room_id,
                event_type="m.room.power_levels",
                state_key="",
                content={**levels, "users": users},
            )
        if user_id not in joined:
            await self._rooms.membership.invite(granter, room_id, user_id)

    async def remove_from_directory(self, room_id: str) -> list[str]:
        await self._rooms.rooms.set_room_is_public(room_id, False)
        aliases = await self._rooms.rooms.get_aliases_for_room(room_id)
        for alias in aliases:
            await self._rooms.rooms.delete_alias(alias)
        return aliases


class AccountsAdmin:
    def __init__(
        self,
        server_name: str,
        accounts: Accounts,
        store: AdminStore,
        clock: Clock,
        joined_rooms: JoinedRooms,
        pushers: PusherStore,
    ) -> None:
        self._server_name = server_name
        self._accounts = accounts
        self._store = store
        self._clock = clock
        self._joined_rooms = joined_rooms
        self._pushers = pushers

    async def is_admin(self, user_id: str) -> bool:
        row = await self._accounts.store.get_user(user_id)
        return row is not None and row.is_admin and not row.deactivated

    async def list_users(self, query: UserQuery) -> tuple[list[AdminUserRow], int]:
        return await self._store.list_users(query)

    async def get_user(self, user_id: str) -> AdminUserRow | None:
        return await self._store.get_user(user_id)

    async def create_user(
        self, user_id: str, password: str | None, *, admin: bool
    ) -> None:
        localpart = user_id[1:].partition(":")[0]
        check_new_localpart(localpart, self._server_name)
        if password is not None:
            check_password_acceptable(password)
        password_hash = (
            None if password is None else await self._accounts.hasher.hash(password)
        )
        reg = Registration(
            user=NewUser(
                user_id=user_id,
                password_hash=password_hash,
                is_guest=False,
                is_admin=admin,
                profile=(),
                created_ts=self._clock.time_msec(),
            ),
            login=None,
        )
        try:
            await self._accounts.store.register_user(reg)
        except UserIdInUseError:
            raise MatrixError(400, "M_USER_IN_USE", "User ID already taken.") from None

    async def set_password(
        self, user_id: str, password: str, *, logout_devices: bool
    ) -> None:
        check_password_acceptable(password)
        await self._accounts.store.set_password_hash(
            user_id, await self._accounts.hasher.hash(password)
        )
        if logout_devices:
            await self._accounts.devices.logout_all(user_id)

    async def set_admin(self, user_id: str, admin: bool) -> None:
        await self._accounts.store.set_admin(user_id, admin)

    async def set_flag(self, user_id: str, flag: str, value: bool) -> None:
        await self._store.set_user_flag(user_id, flag, value)
        # Cached token owners carry no flags, but a lock must apply from now on.
        self._accounts.sessions.invalidate_user(user_id)

    async def set_profile_field(self, user_id: str, key: str, value: Any) -> None:
        await self._accounts.profiles.set_profile_field(user_id, key, value)

    async def deactivate(self, user_id: str, *, erase: bool) -> None:
        await self._accounts.devices.deactivate(user_id, erase=erase)

    async def reactivate(self, user_id: str) -> None:
        await self._store.reactivate_user(user_id)

    async def get_devices(self, user_id: str) -> list[DeviceRow]:
        return await self._accounts.devices.get_devices(user_id)

    async def rename_device(
        self, user_id: str, device_id: str, name: str | None
    ) -> None:
        await self._accounts.devices.set_display_name(user_id, device_id, name)

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> None:
        await self._accounts.devices.delete_devices(user_id, device_ids)

    async def get_joined_rooms(self, user_id: str) -> list[str]:
        return await self._joined_rooms(user_id)

    async def login_as(self, user_id: str, valid_until_ms: int | None) -> str:
        # A session of its own: a device the user can see and revoke, whose token
        # expires at `valid_until_ms` when given.
        login, issued = self._accounts.sessions.prepare_login(
            user_id,
            device_id=None,
            initial_display_name="admin login",
            want_refresh=False,
            client_ip=None,
        )
        if valid_until_ms is not None:
            login = dataclasses.replace(login, access_expires_ts=valid_until_ms)
        await self._accounts.store.create_login(login)
        return issued.access_token

    async def get_pushers(self, user_id: str) -> list[PusherRow]:
        return await self._pushers.get_pushers(user_id)

    async def get_account_data(self, user_id: str) -> list[tuple[str, str, Any]]:
        return await self._store.get_account_data(user_id)

    # -- shared-secret registration ------------------------------------------------------

    async def register_admin_created(
        self,
        localpart: str,
        password: str,
        *,
        admin: bool,
        displayname: str | None,
        client_ip: str | None,
    ) -> dict[str, Any]:
        localpart = localpart.lower()
        user_id = user_id_of(localpart, self._server_name)
        await self.create_user(user_id, password, admin=admin)
        await self.set_profile_field(
            user_id, "displayname", displayname if displayname else localpart
        )
        issued = await self._accounts.sessions.create_login(
            user_id,
            device_id=None,
            initial_display_name=None,
            want_refresh=False,
            client_ip=client_ip,
        )
        return {
            "user_id": user_id,
            "home_server": self._server_name,
            "access_token": issued.access_token,
            "device_id": issued.device_id,
        }


@dataclass
class Admin:
    endpoints: list[Endpoint]
    store: AdminStore
    users: AccountsAdmin


def build_admin(
    config: HomeserverConfig,
    db: Database,
    clock: Clock,
    accounts: Accounts,
    rooms: Rooms,
    supervisor: TaskSupervisor,
) -> Admin:
    store = AdminStore(db)
    room_store = RoomAdminStore(db, config.server_name)
    rooms.membership.blocked_rooms = room_store
    users = AccountsAdmin(
        config.server_name,
        accounts,
        store,
        clock,
        rooms.membership.get_joined_rooms,
        PusherStore(db),
    )
    shared = SharedSecretRegistration(config.registration.shared_secret, users, clock)
    return Admin(
        endpoints=[
            *shared.endpoints(),
            *UsersAdminResource(config.server_name, users).endpoints(),
            *ModerationResource(
                users, ReportAdminStore(db), accounts.registration, store, clock
            ).endpoints(),
            *RoomsAdminResource(
                users,
                room_store,
                RoomsAdminOps(rooms, config.server_name),
                supervisor.start,
                config.server_name,
            ).endpoints(),
        ],
        store=store,
        users=users,
    )


class MediaAdmin:
    """What the media endpoints do: the media store's rows, the content-addressed
    files (deleted only once no row refers to them), profile display names."""

    def __init__(
        self,
        media: Media,
        store: MediaAdminStore,
        files: MediaFiles,
        users: AccountsAdmin,
    ) -> None:
        self._media = media
        self._store = store
        self._files = files
        self._users = users

    async def get_local_media(self, media_id: str) -> LocalMedia | None:
        return await self._media.store.get_local_media(media_id)

    async def get_remote_media(self, origin: str, media_id: str) -> RemoteMedia | None:
        return await self._media.store.get_remote_media(origin, media_id)

    async def set_local_media_quarantined(self, media_id: str, value: bool) -> bool:
        return await self._media.store.set_local_media_quarantined(media_id, value)

    async def get_user_media(
        self, user_id: str, start: int, limit: int, forwards: bool
    ) -> tuple[list[LocalMedia], int]:
        return await self._store.get_user_media(user_id, start, limit, forwards)

    async def get_user_media_stats(
        self, start: int, limit: int, forwards: bool
    ) -> tuple[list[UserMediaStats], int]:
        return await self._store.get_user_media_stats(start, limit, forwards)

    async def _delete_files(self, hashes: list[str]) -> None:
        for sha in hashes:
            async with self._files.lock(sha):
                if not await self._media.store.is_sha256_referenced(sha):
                    await self._files.delete(sha)

    async def delete_local_media(self, media_ids: list[str]) -> None:
        if media_ids:
            await self._delete_files(await self._store.delete_local_media(media_ids))

    async def get_old_media_ids(
        self, before_ts: int, size_gt: int, keep_profiles: bool
    ) -> list[str]:
        return await self._store.get_old_media_ids(before_ts, size_gt, keep_profiles)

    async def purge_remote_cache(self, before_ts: int) -> int:
        count, hashes = await self._store.purge_remote_media(before_ts)
        await self._delete_files(hashes)
        return count

    async def get_displayname(self, user_id: str) -> str | None:
        row = await self._users.get_user(user_id)
        return None if row is None else row.displayname


class FederationDestinations:
    def __init__(self, store: AdminStore, federation: Federation) -> None:
        self._store = store
        self._federation = federation

    async def get_destinations(self) -> list[DestinationRow]:
        return await self._store.get_destinations()

    async def reset_destination(self, destination: str) -> None:
        # As if the destination had contacted us: the backoff goes and its queue wakes.
        await self._federation.retry.record_success(destination)


def build_admin_federation(admin: Admin, federation: Federation) -> list[Endpoint]:
    ops = FederationDestinations(admin.store, federation)
    return FederationAdminResource(admin.users, ops).endpoints()


def build_admin_media(
    config: HomeserverConfig, db: Database, admin: Admin, media: Media
) -> list[Endpoint]:
    """The media endpoints, built after the media repository (last in start-up)."""
    if media.files is None:
        return []
    ops = MediaAdmin(media, MediaAdminStore(db), media.files, admin.users)
    return MediaAdminResource(admin.users, ops, config.server_name).endpoints()
