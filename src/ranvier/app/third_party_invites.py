"""Wiring of third-party (e-mail) invites.

`build_third_party_invites` is called by `build_rooms` (the client endpoints need it);
the identity-server client obeys the federation IP lists and TLS settings. Once the
federation client exists, `bind_federation` gives the service its forwarder
(`exchange_third_party_invite` to a server that can issue the invite) and returns
the federation endpoints (`/3pid/onbind`, `/exchange_third_party_invite`).
"""

from __future__ import annotations

from typing import Any

from ranvier.api.federation.third_party import ThirdPartyResource
from ranvier.api.http import Endpoint
from ranvier.config.schema import HomeserverConfig
from ranvier.core.errors import MatrixError
from ranvier.federation.client import FederationClient, federation_path
from ranvier.federation.dns import SystemDnsResolver
from ranvier.federation.errors import FederationError
from ranvier.federation.identity import IdentityServerClient
from ranvier.federation.ip_filter import IpRangeFilter
from ranvier.federation.transport import build_tls_context
from ranvier.services.events.creation import LocalEventSender
from ranvier.services.rooms.creation import MemberProfiles
from ranvier.services.rooms.membership import MembershipService
from ranvier.services.rooms.state_reader import RoomStateReader
from ranvier.services.rooms.third_party_invites import ThirdPartyInviteService
from ranvier.storage.stores.rooms import RoomStore

_EXCHANGE = "/_matrix/federation/v1/exchange_third_party_invite/{}"


def build_third_party_invites(
    config: HomeserverConfig,
    *,
    sender: LocalEventSender,
    membership: MembershipService,
    rooms: RoomStore,
    state: RoomStateReader,
    profiles: MemberProfiles,
) -> ThirdPartyInviteService:
    fed = config.federation
    identity = IdentityServerClient(
        IpRangeFilter(fed.ip_range_blocklist, fed.ip_range_allowlist),
        SystemDnsResolver(),
        build_tls_context(verify=fed.verify_tls, ca_file=fed.ca_file),
    )
    return ThirdPartyInviteService(
        server_name=config.server_name,
        sender=sender,
        membership=membership,
        rooms=rooms,
        state=state,
        profiles=profiles,
        identity=identity,
    )


class FederationInviteForwarder:
    def __init__(self, client: FederationClient) -> None:
        self._client = client

    async def exchange_third_party_invite(
        self, destination: str, room_id: str, event: dict[str, Any]
    ) -> None:
        try:
            await self._client.put_json(
                destination, federation_path(_EXCHANGE, room_id), event
            )
        except FederationError as e:
            if e.status is not None and e.status in (400, 403, 404):
                # The resident server's verdict on the invite itself.
                raise MatrixError(
                    403 if e.status == 403 else 400,
                    e.errcode or "M_UNKNOWN",
                    f"{destination} refused the invite: {e.message}",
                ) from None
            raise


def bind_federation(
    service: ThirdPartyInviteService, client: FederationClient | None
) -> list[Endpoint]:
    if client is not None:
        service.forwarder = FederationInviteForwarder(client)
    return ThirdPartyResource(service).endpoints()
