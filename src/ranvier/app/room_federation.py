"""Wiring of the outbound half of room federation (issue #6): joining, leaving, knocking
and inviting through other servers, backfill, remote directory/profile/room-list
queries, and sending local events and EDUs to the other servers in a room.

The rooms and accounts services are built before the federation transport (which opens
the outbound HTTP session and comes last), yet they call into federation. So the
composition root hands them a `FederationSeam` first and binds it once
`build_room_federation` has built the real services; until then (and when federation
is disabled) remote operations answer "no known servers" and local events go nowhere.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ranvier.app.federation import Federation
from ranvier.app.rooms import Rooms
from ranvier.core.errors import MatrixError, not_found
from ranvier.core.events.event import Event
from ranvier.services.federation.outbound_sender import (
    FederationEduSender,
    RoomPduForwarder,
    RoomServers,
)
from ranvier.services.federation.pdu_checks import PduChecker
from ranvier.services.federation.remote import RemoteRoomApi
from ranvier.services.federation.remote_backfill import RoomBackfiller
from ranvier.services.federation.remote_membership import (
    PipelineOutlierSink,
    RemoteMembershipService,
)
from ranvier.services.federation.remote_queries import RemoteQueries
from ranvier.services.presence import PushesFor
from ranvier.storage.database import Database
from ranvier.storage.stores.backfill import BackfillStore
from ranvier.storage.stores.events import EventStore
from ranvier.util.clock import Clock
from ranvier.util.supervisor import TaskSupervisor

__all__ = ["FederationSeam", "RoomFederation", "build_room_federation"]

JsonDict = dict[str, Any]


@dataclass
class RoomFederation:
    servers: RoomServers
    forwarder: RoomPduForwarder
    edus: FederationEduSender
    membership: RemoteMembershipService
    queries: RemoteQueries
    backfiller: RoomBackfiller


async def build_room_federation(
    *,
    server_name: str,
    db: Database,
    clock: Clock,
    supervisor: TaskSupervisor,
    federation: Federation,
    rooms: Rooms,
    random_id: Callable[[], str],
) -> RoomFederation:
    client = federation.client
    checker = PduChecker(federation.keyring)
    servers = RoomServers(server_name, rooms.rooms)
    forwarder = RoomPduForwarder(
        server_name,
        servers,
        federation.sender,
        supervisor,
        log=federation.store,
        current_position=rooms.events.get_current_position,
        clock=clock,
    )
    federation.start_hooks.append(forwarder.start)
    federation.sender.set_room_extremities(_LocalExtremities(server_name, rooms.events))
    edus = FederationEduSender(
        server_name, servers, _UserRooms(rooms), federation.sender, clock
    )
    membership = RemoteMembershipService(
        server_name=server_name,
        client=client,
        checker=checker,
        signer=rooms.sender.builder,
        pipeline=rooms.pipeline,
        rooms=rooms.rooms,
        events=rooms.events,
        forwarding=forwarder,
        clock=clock,
        random_id=random_id,
    )
    backfiller = RoomBackfiller(
        client=client,
        remote=RemoteRoomApi(client),
        checker=checker,
        events=rooms.events,
        state_groups=rooms.state,
        calculator=rooms.pipeline.calculator,
        store=await BackfillStore.open(db),
        outliers=PipelineOutlierSink(rooms.pipeline, rooms.events),
        rooms=rooms.rooms,
        servers=servers,
        clock=clock,
    )
    return RoomFederation(
        servers=servers,
        forwarder=forwarder,
        edus=edus,
        membership=membership,
        queries=RemoteQueries(server_name, client),
        backfiller=backfiller,
    )


class _LocalExtremities:
    """The room's forward extremities sent by local users (federation catch-up)."""

    def __init__(self, server_name: str, events: EventStore) -> None:
        self._suffix = ":" + server_name
        self._events = events

    async def get_local_forward_extremities(self, room_id: str) -> list[Event]:
        ids = [e for e, _depth in await self._events.get_forward_extremities(room_id)]
        stored = await self._events.get_events(ids)
        return [
            stored[e].event
            for e in ids
            if e in stored
            and stored[e].rejected_reason is None
            and stored[e].event.sender.endswith(self._suffix)
        ]


class _UserRooms:
    def __init__(self, rooms: Rooms) -> None:
        self._rooms = rooms

    async def get_joined_room_ids(self, user_id: str) -> set[str]:
        rows = await self._rooms.rooms.get_rooms_for_user(user_id, ("join",))
        return {r.room_id for r in rows}


class FederationSeam:
    """Late-bound federation for services built before it (see the module doc):
    a `RoomEventNotifier`, `RemoteRoomOps`, `RoomBackfill`, `RemoteDirectory`,
    `RemoteProfiles` and `RemoteHierarchy`."""

    def __init__(self) -> None:
        self._target: RoomFederation | None = None

    def bind(self, target: RoomFederation) -> None:
        self._target = target

    @property
    def target(self) -> RoomFederation | None:
        return self._target

    def _need(self) -> RoomFederation:
        if self._target is None:
            raise not_found("No known servers: this server does not federate.")
        return self._target

    # -- RoomEventNotifier --------------------------------------------------------------
    def on_new_event(
        self, event: Event, stream_ordering: int, *, extra_users: Iterable[str] = ()
    ) -> None:
        if self._target is not None:
            self._target.forwarder.on_new_event(
                event, stream_ordering, extra_users=extra_users
            )

    # -- RemoteRoomOps -------------------------------------------------------------------
    async def join(
        self, user_id: str, room_id: str, servers: Sequence[str], content: JsonDict
    ) -> str:
        return await self._need().membership.join(user_id, room_id, servers, content)

    async def leave(
        self, user_id: str, room_id: str, servers: Sequence[str], content: JsonDict
    ) -> str:
        return await self._need().membership.leave(user_id, room_id, servers, content)

    async def knock(
        self, user_id: str, room_id: str, servers: Sequence[str], content: JsonDict
    ) -> str:
        return await self._need().membership.knock(user_id, room_id, servers, content)

    async def invite(
        self, sender: str, room_id: str, target: str, content: JsonDict
    ) -> str:
        if self._target is None:
            raise MatrixError(403, "M_FORBIDDEN", "This server does not federate.")
        return await self._target.membership.invite(sender, room_id, target, content)

    async def query_directory(self, alias: str) -> tuple[str, list[str]]:
        return await self._need().queries.query_directory(alias)

    # -- RoomBackfill --------------------------------------------------------------------
    async def backfill(self, room_id: str, limit: int) -> bool:
        if self._target is None:
            return False
        return await self._target.backfiller.backfill(room_id, limit)

    # -- RemoteDirectory / RemoteProfiles ------------------------------------------------
    async def get_public_rooms(
        self,
        server: str,
        *,
        limit: int | None,
        since: str | None,
        search_filter: Mapping[str, Any] | None = None,
        include_all_networks: bool = False,
        third_party_instance_id: str | None = None,
    ) -> JsonDict:
        return await self._need().queries.get_public_rooms(
            server,
            limit=limit,
            since=since,
            search_filter=search_filter,
            include_all_networks=include_all_networks,
            third_party_instance_id=third_party_instance_id,
        )

    async def query_profile(self, user_id: str, field: str | None = None) -> JsonDict:
        return await self._need().queries.query_profile(user_id, field)

    # -- RemoteHierarchy (services/rooms/spaces.py) --------------------------------------
    async def get_remote_hierarchy(
        self, room_id: str, via: Sequence[str], *, suggested_only: bool
    ) -> JsonDict | None:
        if self._target is None:
            return None
        return await self._target.queries.get_remote_hierarchy(
            room_id, via, suggested_only=suggested_only
        )

    # -- EduFederation (app/sync.py) -------------------------------------------------------
    async def send_typing(self, room_id: str, user_id: str, typing: bool) -> None:
        if self._target is not None:
            await self._target.edus.send_typing(room_id, user_id, typing)

    async def send_receipt(
        self,
        room_id: str,
        receipt_type: str,
        user_id: str,
        event_ids: Collection[str],
        data: Mapping[str, Any],
    ) -> None:
        if self._target is not None:
            await self._target.edus.send_receipt(
                room_id, receipt_type, user_id, event_ids, data
            )

    async def send_presence(self, user_id: str, presence: Mapping[str, Any]) -> None:
        if self._target is not None:
            await self._target.edus.send_presence(user_id, presence)

    async def send_presence_on_join(
        self, room_id: str, user_id: str, pushes_for: PushesFor
    ) -> None:
        if self._target is not None:
            await self._target.edus.send_presence_on_join(room_id, user_id, pushes_for)

    async def send_to_device(
        self,
        sender: str,
        event_type: str,
        message_id: str,
        messages: Mapping[str, Mapping[str, Any]],
    ) -> None:
        if self._target is not None:
            await self._target.edus.send_to_device(
                sender, event_type, message_id, messages
            )
