"""Wiring of the smaller client features Element calls at start-up or in everyday use:
the user directory, TURN credentials, MatrixRTC transports, space hierarchies and
mutual rooms, content reports, room upgrades, room summaries, OpenID tokens
(`build_openid`, also handed to the federation `userinfo` query), and the answers for
third-party identifiers and networks
this server does not provide.
"""

from __future__ import annotations

from collections.abc import Callable

from ranvier.api.client import threepid
from ranvier.api.client.openid import OpenIdResource
from ranvier.api.client.reports import ReportsResource
from ranvier.api.client.room_previews import RoomPreviewsResource
from ranvier.api.client.room_upgrade import RoomUpgradeResource
from ranvier.api.client.rtc import RtcResource
from ranvier.api.client.spaces import SpacesResource
from ranvier.api.client.user_directory import UserDirectoryResource
from ranvier.api.client.voip import VoipResource
from ranvier.api.http import Endpoint
from ranvier.app.rooms import Rooms
from ranvier.config.schema import HomeserverConfig
from ranvier.services.accounts.openid import OpenIdService
from ranvier.services.reports import ReportService
from ranvier.services.rooms.previews import RoomSummaryService
from ranvier.services.rooms.reading import Reader
from ranvier.services.rooms.spaces import (
    MutualRoomsService,
    NoRemoteHierarchy,
    RemoteHierarchy,
    SpaceHierarchyService,
)
from ranvier.services.rooms.upgrade import RoomUpgradeService
from ranvier.services.user_directory import UserDirectoryService
from ranvier.services.voip import TurnService
from ranvier.storage.database import Database
from ranvier.storage.stores.accounts import AccountsStore
from ranvier.storage.stores.openid import OpenIdStore
from ranvier.storage.stores.reports import ReportStore
from ranvier.storage.stores.user_directory import UserDirectoryStore
from ranvier.util.clock import Clock


class _RoomFacts:
    """What reports need to know about rooms, from the rooms feature."""

    def __init__(self, rooms: Rooms) -> None:
        self._rooms = rooms

    async def get_visible_event(
        self, user_id: str, room_id: str, event_id: str
    ) -> object:
        return await self._rooms.reading.get_event(
            Reader(user_id, None), room_id, event_id
        )

    async def get_membership_of(self, room_id: str, user_id: str) -> str | None:
        row = await self._rooms.rooms.get_membership(room_id, user_id)
        return None if row is None else row.membership

    async def has_room(self, room_id: str) -> bool:
        return await self._rooms.rooms.get_room(room_id) is not None


class _LocalUsers:
    def __init__(self, accounts: AccountsStore) -> None:
        self._accounts = accounts

    async def user_exists(self, user_id: str) -> bool:
        return await self._accounts.get_user(user_id) is not None


def build_client_extras(
    config: HomeserverConfig,
    db: Database,
    clock: Clock,
    *,
    rooms: Rooms,
    accounts: AccountsStore,
    random_id: Callable[[], str],
    remote_hierarchy: RemoteHierarchy | None = None,
) -> list[Endpoint]:
    facts = _RoomFacts(rooms)
    reports = ReportService(
        server_name=config.server_name,
        store=ReportStore(db),
        events=facts,
        memberships=facts,
        rooms=facts,
        users=_LocalUsers(accounts),
        clock=clock,
        random_id=random_id,
    )
    upgrades = RoomUpgradeService(
        creation=rooms.creation,
        state=rooms.state_reader,
        sender=rooms.messages,
        rooms=rooms.rooms,
        now_ms=clock.time_msec,
    )
    summaries = RoomSummaryService(
        directory=rooms.directory, rooms=rooms.rooms, state=rooms.state_reader
    )
    hierarchy = SpaceHierarchyService(
        directory=rooms.directory,
        rooms=rooms.rooms,
        state=rooms.state_reader,
        remote=remote_hierarchy or NoRemoteHierarchy(),
    )
    return [
        *RoomPreviewsResource(summaries).endpoints(),
        *SpacesResource(hierarchy, MutualRoomsService(rooms=rooms.rooms)).endpoints(),
        *UserDirectoryResource(
            UserDirectoryService(UserDirectoryStore(db))
        ).endpoints(),
        *VoipResource(TurnService(config.turn, clock)).endpoints(),
        *RtcResource(config.matrix_rtc.livekit_service_urls).endpoints(),
        *ReportsResource(reports).endpoints(),
        *RoomUpgradeResource(upgrades).endpoints(),
        *threepid.endpoints(),
    ]


def build_openid(
    config: HomeserverConfig, db: Database, clock: Clock
) -> tuple[OpenIdService, list[Endpoint]]:
    """OpenID tokens: the client endpoint, and the service that answers `userinfo`."""
    openid = OpenIdService(
        server_name=config.server_name, store=OpenIdStore(db), clock=clock
    )
    return openid, OpenIdResource(openid).endpoints()
