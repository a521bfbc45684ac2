"""Wiring of inbound room federation (issue #6): received transactions, gap filling,
serving history and state, the resident side of joins/leaves/knocks/invites, queries and
received EDUs.

`build_federation_rooms` constructs the services once over what the rooms, sync,
accounts and federation-transport features built, and returns the `federation`
resource's endpoints. It needs no start/stop: it owns no background task.
"""

from __future__ import annotations

from dataclasses import dataclass

from ranvier.api.federation.history import HistoryResource
from ranvier.api.federation.membership import MembershipResource
from ranvier.api.federation.queries import QueryResource
from ranvier.api.federation.transactions import TransactionResource
from ranvier.api.http import Endpoint
from ranvier.app.accounts import Accounts
from ranvier.app.federation import Federation
from ranvier.app.rooms import Rooms
from ranvier.app.sync import Sync
from ranvier.core.crypto.keys import SigningKey
from ranvier.services.federation.access import RoomAccess
from ranvier.services.federation.edus import DeviceKeyUpdates, EduHandler
from ranvier.services.federation.inbound import TransactionHandler
from ranvier.services.federation.ingest import RemoteEventIngester
from ranvier.services.federation.membership_resident import ResidentMembership
from ranvier.services.federation.pdu_checks import PduChecker
from ranvier.services.federation.queries import (
    FederationQueries,
    NoOpenIdTokens,
    OpenIdTokens,
)
from ranvier.services.federation.remote import RemoteRoomApi
from ranvier.services.federation.serving import HistoryService
from ranvier.util.clock import Clock


@dataclass
class FederationRooms:
    access: RoomAccess
    checker: PduChecker
    ingester: RemoteEventIngester
    transactions: TransactionHandler
    history: HistoryService
    membership: ResidentMembership
    queries: FederationQueries
    edus: EduHandler
    endpoints: list[Endpoint]


def build_federation_rooms(
    *,
    server_name: str,
    signing_key: SigningKey,
    clock: Clock,
    rooms: Rooms,
    sync: Sync,
    accounts: Accounts,
    federation: Federation,
    openid: OpenIdTokens | None = None,
    device_keys: DeviceKeyUpdates | None = None,
) -> FederationRooms:
    access = RoomAccess(
        state=rooms.state_reader, rooms=rooms.rooms, visibility=rooms.visibility
    )
    checker = PduChecker(federation.keyring)
    ingester = RemoteEventIngester(
        pipeline=rooms.pipeline,
        events=rooms.events,
        state=rooms.state,
        checker=checker,
        remote=RemoteRoomApi(federation.client),
    )
    edus = EduHandler(
        server_name=server_name,
        typing=sync.typing,
        receipts=sync.receipts,
        presence=sync.presence,
        to_device=sync.to_device,
        device_lists=sync.device_lists,
        acl=access,
        rooms=sync.store,
        device_keys=device_keys,
    )
    transactions = TransactionHandler(
        txns=federation.store,
        versions=rooms.rooms,
        acl=access,
        checker=checker,
        ingester=ingester,
        edus=edus,
        clock=clock,
    )
    history = HistoryService(
        server_name=server_name,
        access=access,
        events=rooms.events,
        state=rooms.state,
        clock=clock,
        erasure=rooms.erasure,
    )
    membership = ResidentMembership(
        server_name=server_name,
        signing_key=signing_key,
        access=access,
        pipeline=rooms.pipeline,
        events=rooms.events,
        state=rooms.state,
        memberships=rooms.rooms,
        users=accounts.store,
        checker=checker,
        history=history,
        outbox=federation.sender,
        clock=clock,
    )
    queries = FederationQueries(
        server_name=server_name,
        directory=rooms.directory,
        access=access,
        profiles=accounts.profiles,
        state=rooms.state_reader,
        openid=openid or NoOpenIdTokens(),
        clock=clock,
    )
    endpoints = [
        *TransactionResource(transactions).endpoints(),
        *HistoryResource(history).endpoints(),
        *MembershipResource(membership).endpoints(),
        *QueryResource(queries).endpoints(),
    ]
    return FederationRooms(
        access=access,
        checker=checker,
        ingester=ingester,
        transactions=transactions,
        history=history,
        membership=membership,
        queries=queries,
        edus=edus,
        endpoints=endpoints,
    )
