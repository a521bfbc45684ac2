"""Wiring of the rooms feature (issue #5): event storage, the ingest pipeline, room
creation, sending, membership, aliases/directory and reading.

`build_rooms` constructs the stores, services and HTTP resources once. It takes the
notifier the pipeline reports persisted events to (`app.sync.build_notifier`), and
connects the account hooks (profile changes refresh member events; deactivated accounts
leave their rooms). `Rooms.read_side()` is what sync reads.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from ranvier.api.client.directory import DirectoryResource
from ranvier.api.client.membership import MembershipResource
from ranvier.api.client.reading import ReadingResource
from ranvier.api.client.relations import RelationsResource
from ranvier.api.client.rooms import RoomsResource
from ranvier.api.client.search import SearchResource
from ranvier.api.http import Endpoint
from ranvier.app.third_party_invites import build_third_party_invites
from ranvier.config.schema import HomeserverConfig
from ranvier.core.crypto.keys import SigningKey
from ranvier.services.accounts.hooks import AccountHooks
from ranvier.services.events.creation import EventBuilder, LocalEventSender
from ranvier.services.events.notify import RoomEventNotifier
from ranvier.services.events.pipeline import EventPipeline
from ranvier.services.events.state import StateCalculator
from ranvier.services.rooms.aliases import AppServiceAliases, DirectoryService
from ranvier.services.rooms.bundled import RelationBundler
from ranvier.services.rooms.client_events import ClientEventSerializer
from ranvier.services.rooms.creation import MemberProfiles, RoomCreationService
from ranvier.services.rooms.membership import MembershipService
from ranvier.services.rooms.messages import RoomMessageService
from ranvier.services.rooms.reading import RoomReadService
from ranvier.services.rooms.relations import RelationService
from ranvier.services.rooms.remote import RemoteDirectory, RemoteRoomOps, RoomBackfill
from ranvier.services.rooms.state_reader import RoomStateReader
from ranvier.services.rooms.third_party_invites import ThirdPartyInviteService
from ranvier.services.rooms.visibility import ErasedUsers, EventVisibility
from ranvier.services.search import SearchService
from ranvier.storage.database import Database
from ranvier.storage.stores.events import EventStore
from ranvier.storage.stores.ignored_users import IgnoredUsersStore
from ranvier.storage.stores.relations import RelationStore
from ranvier.storage.stores.rooms import RoomStore
from ranvier.storage.stores.search import SearchStore
from ranvier.storage.stores.state import StateStore
from ranvier.util.clock import Clock


def random_opaque_id() -> str:
    return secrets.token_urlsafe(18)


@dataclass
class Rooms:
    events: EventStore
    state: StateStore
    rooms: RoomStore
    pipeline: EventPipeline
    sender: LocalEventSender
    state_reader: RoomStateReader
    visibility: EventVisibility
    serializer: ClientEventSerializer
    creation: RoomCreationService
    messages: RoomMessageService
    membership: MembershipService
    directory: DirectoryService
    reading: RoomReadService
    endpoints: list[Endpoint]
    relations: RelationService | None = None
    search: SearchService | None = None
    erasure: ErasedUsers | None = None
    ignored: IgnoredUsersStore | None = None
    third_party: ThirdPartyInviteService | None = None


async def build_rooms(
    config: HomeserverConfig,
    db: Database,
    clock: Clock,
    *,
    signing_key: SigningKey,
    profiles: MemberProfiles,
    notifier: RoomEventNotifier,
    hooks: AccountHooks | None = None,
    remote: RemoteRoomOps | None = None,
    backfill: RoomBackfill | None = None,
    remote_directory: RemoteDirectory | None = None,
    erasure: ErasedUsers | None = None,
    app_service_aliases: AppServiceAliases | None = None,
) -> Rooms:
    server_name = config.server_name
    events = await EventStore.open(db)
    state = await StateStore.open(db)
    rooms = RoomStore(db)
    pipeline = EventPipeline(
        events=events,
        state=state,
        calculator=StateCalculator(events, state),
        notifier=notifier,
        clock=clock,
    )
    builder = EventBuilder(server_name, signing_key, random_opaque_id)
    sender = LocalEventSender(
        pipeline=pipeline,
        builder=builder,
        versions=rooms,
        txn_lookup=events,
        now=clock.time_msec,
    )
    state_reader = RoomStateReader(state, events)
    ignored = IgnoredUsersStore(db)
    visibility = EventVisibility(
        rooms=rooms, state=state, events=events, erasure=erasure, ignored=ignored
    )
    relation_store = RelationStore(db)
    serializer = ClientEventSerializer(
        events, clock, bundler=RelationBundler(relation_store)
    )
    relations = RelationService(
        events=events,
        relations=relation_store,
        visibility=visibility,
        serializer=serializer,
    )
    directory = DirectoryService(
        server_name=server_name,
        rooms=rooms,
        state=state_reader,
        clock=clock,
        remote=remote_directory,
        app_services=app_service_aliases,
    )
    creation = RoomCreationService(
        server_name=server_name,
        default_room_version=config.limits.default_room_version,
        pipeline=pipeline,
        builder=builder,
        aliases=rooms,
        known_rooms=rooms,
        profiles=profiles,
        clock=clock,
        remote=remote,
        may_create_alias=(
            app_service_aliases.may_create_alias if app_service_aliases else None
        ),
    )
    membership = MembershipService(
        server_name=server_name,
        sender=sender,
        rooms=rooms,
        state=state_reader,
        directory=directory,
        profiles=profiles,
        remote=remote,
    )
    messages = RoomMessageService(
        sender=sender, directory=directory, events=events, guests=membership
    )
    third_party = build_third_party_invites(
        config,
        sender=sender,
        membership=membership,
        rooms=rooms,
        state=state_reader,
        profiles=profiles,
    )
    reading = RoomReadService(
        events=events,
        rooms=rooms,
        state=state_reader,
        visibility=visibility,
        serializer=serializer,
        backfill=backfill,
    )
    search = SearchService(
        search=SearchStore(db),
        rooms=rooms,
        events=events,
        visibility=visibility,
        reading=reading,
        state=state_reader,
        serializer=serializer,
    )
    if hooks is not None:
        hooks.profile_change.append(membership)
        hooks.deactivation.append(membership)
    endpoints = [
        *RoomsResource(
            creation, messages, third_party, new_txn_id=random_opaque_id
        ).endpoints(),
        *MembershipResource(membership, third_party).endpoints(),
        *DirectoryResource(server_name, directory, messages, visibility).endpoints(),
        *ReadingResource(reading).endpoints(),
        *RelationsResource(relations).endpoints(),
        *SearchResource(search).endpoints(),
    ]
    return Rooms(
        events=events,
        state=state,
        rooms=rooms,
        pipeline=pipeline,
        sender=sender,
        state_reader=state_reader,
        visibility=visibility,
        serializer=serializer,
        creation=creation,
        messages=messages,
        membership=membership,
        directory=directory,
        reading=reading,
        endpoints=endpoints,
        relations=relations,
        search=search,
        erasure=erasure,
        ignored=ignored,
        third_party=third_party,
    )
