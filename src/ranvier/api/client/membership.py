"""Room membership.

    POST /_matrix/client/v3/join/{roomIdOrAlias}
    POST /_matrix/client/v3/rooms/{roomId}/join
    POST /_matrix/client/v3/knock/{roomIdOrAlias}
    POST /_matrix/client/v3/rooms/{roomId}/invite
    POST /_matrix/client/v3/rooms/{roomId}/leave
    POST /_matrix/client/v3/rooms/{roomId}/forget
    POST /_matrix/client/v3/rooms/{roomId}/kick
    POST /_matrix/client/v3/rooms/{roomId}/ban
    POST /_matrix/client/v3/rooms/{roomId}/unban
    GET  /_matrix/client/v3/joined_rooms

Spec: C-S API > Room membership. `via` (and the deprecated `server_name`) name servers
to join or knock through when this server is not in the room. An invite body with
`id_server`, `id_access_token`, `medium` and `address` instead of `user_id` is a
third-party invite (C-S API > Third-party invites; `ThirdPartyInviteService`); a join
with `third_party_signed` first turns that proof into an invite.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest, client_paths
from ranvier.core.errors import MatrixError, invalid_param
from ranvier.core.ids import is_valid_server_name
from ranvier.services.rooms.membership import MembershipService
from ranvier.services.rooms.third_party_invites import (
    ThirdPartyInviteService,
    third_party_invite_from,
)

__all__ = ["MembershipResource"]

JsonDict = dict[str, Any]


def _via(req: MatrixRequest) -> list[str]:
    query = req.raw.query
    via = [*query.getall("via", []), *query.getall("server_name", [])]
    for server in via:
        if not is_valid_server_name(server):
            raise invalid_param(f"'via' is not a server name: {server!r}")
    return via


_THIRD_PARTY_KEYS = ("id_server", "id_access_token", "medium", "address")


class MembershipResource:
    def __init__(
        self,
        membership: MembershipService,
        third_party: ThirdPartyInviteService | None = None,
    ) -> None:
        self._m = membership
        self._third_party = third_party

    async def join(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        target = req.raw.match_info.get("roomIdOrAlias") or req.path_param("roomId")
        signed = body.get_dict("third_party_signed")
        if signed is not None and self._third_party is not None:
            # Spec: Joining rooms, `third_party_signed`: the pending third-party invite
            # it proves becomes an invite (checked like one from onbind), then the join.
            sender = signed.get("sender")
            if not isinstance(sender, str):
                raise MatrixError(
                    400, "M_MISSING_PARAM", "'third_party_signed' lacks 'sender'."
                )
            room_id = await self._m.resolve_room(target)
            await self._third_party.exchange(sender, req.user.user_id, room_id, signed)
        room_id = await self._m.join(
            req.user.user_id,
            target,
            is_guest=req.user.is_guest,
            reason=body.get_str("reason"),
            via=_via(req),
        )
        return {"room_id": room_id}

    async def knock(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        room_id = await self._m.knock(
            req.user.user_id,
            req.path_param("roomIdOrAlias"),
            body.get_str("reason"),
            via=_via(req),
        )
        return {"room_id": room_id}

    async def invite(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        if "user_id" not in body and any(k in body for k in _THIRD_PARTY_KEYS):
            if self._third_party is None:
                raise MatrixError(
                    400, "M_UNRECOGNIZED", "Third-party invites are not supported."
                )
            await self._third_party.invite(
                req.user.user_id,
                req.path_param("roomId"),
                third_party_invite_from(body.raw),
            )
            return {}
        await self._m.invite(
            req.user.user_id,
            req.path_param("roomId"),
            body.require_str("user_id"),
            body.get_str("reason"),
        )
        return {}

    async def leave(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        await self._m.leave(
            req.user.user_id, req.path_param("roomId"), body.get_str("reason")
        )
        return {}

    async def forget(self, req: MatrixRequest) -> JsonDict:
        await self._m.forget(req.user.user_id, req.path_param("roomId"))
        return {}

    async def kick(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        await self._m.kick(
            req.user.user_id,
            req.path_param("roomId"),
            body.require_str("user_id"),
            body.get_str("reason"),
        )
        return {}

    async def ban(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        await self._m.ban(
            req.user.user_id,
            req.path_param("roomId"),
            body.require_str("user_id"),
            body.get_str("reason"),
        )
        return {}

    async def unban(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        await self._m.unban(
            req.user.user_id,
            req.path_param("roomId"),
            body.require_str("user_id"),
            body.get_str("reason"),
        )
        return {}

    async def joined_rooms(self, req: MatrixRequest) -> JsonDict:
        return {"joined_rooms": await self._m.get_joined_rooms(req.user.user_id)}

    def endpoints(self) -> list[Endpoint]:
        guest = AuthMode.GUEST_OK
        return [
            Endpoint(
                "POST", client_paths("/join/{roomIdOrAlias}"), self.join, auth=guest
            ),
            Endpoint(
                "POST", client_paths("/rooms/{roomId}/join"), self.join, auth=guest
            ),
            Endpoint("POST", client_paths("/knock/{roomIdOrAlias}"), self.knock),
            Endpoint("POST", client_paths("/rooms/{roomId}/invite"), self.invite),
            Endpoint(
                "POST", client_paths("/rooms/{roomId}/leave"), self.leave, auth=guest
            ),
            Endpoint("POST", client_paths("/rooms/{roomId}/forget"), self.forget),
            Endpoint("POST", client_paths("/rooms/{roomId}/kick"), self.kick),
            Endpoint("POST", client_paths("/rooms/{roomId}/ban"), self.ban),
            Endpoint("POST", client_paths("/rooms/{roomId}/unban"), self.unban),
            Endpoint(
                "GET", client_paths("/joined_rooms"), self.joined_rooms, auth=guest
            ),
        ]
