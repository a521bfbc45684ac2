"""The resident side of remote joins, leaves, knocks and invites.

    GET /_matrix/federation/v1/make_join/{roomId}/{userId}?ver=…
    PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}?omit_members=…
    GET /_matrix/federation/v1/make_leave/{roomId}/{userId}
    PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}
    GET /_matrix/federation/v1/make_knock/{roomId}/{userId}?ver=…
    PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}
    PUT /_matrix/federation/v2/invite/{roomId}/{eventId}
    PUT /_matrix/federation/v1/send_join/{roomId}/{eventId}    (deprecated)
    PUT /_matrix/federation/v1/send_leave/{roomId}/{eventId}   (deprecated)
    PUT /_matrix/federation/v1/invite/{roomId}/{eventId}       (deprecated)

Spec: S-S API > Joining rooms; Leaving rooms; Knocking upon a room; Inviting to a room.
The deprecated v1 endpoints answer `[200, {...}]` (as specified: a Synapse bug kept for
compatibility); v1 `invite` takes the bare event. Logic lives in `ResidentMembership`.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest
from ranvier.core.errors import missing_param
from ranvier.services.federation.membership_resident import ResidentMembership

__all__ = ["MembershipResource"]

JsonDict = dict[str, Any]

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"


def _versions(req: MatrixRequest, *, required: bool) -> list[str]:
    versions = list(req.raw.query.getall("ver", []))
    if not versions:
        if required:
            raise missing_param("Missing 'ver'.")
        # Spec: without `ver`, the joining server is assumed to support only v1.
        versions = ["1"]
    return versions


class MembershipResource:
    def __init__(self, membership: ResidentMembership) -> None:
        self._membership = membership

    async def get_make_join(self, req: MatrixRequest) -> JsonDict:
        return await self._membership.make_join(
            req.origin,
            req.path_param("roomId"),
            req.path_param("userId"),
            _versions(req, required=False),
        )

    async def put_send_join(self, req: MatrixRequest) -> JsonDict:
        req.query_bool("omit_members")  # validated; full state is always answered
        return await self._membership.send_join(
            req.origin,
            req.path_param("roomId"),
            req.path_param("eventId"),
            await req.json_any(),
        )

    async def put_send_join_v1(self, req: MatrixRequest) -> list[Any]:
        return [200, await self.put_send_join(req)]

    async def put_send_leave_v1(self, req: MatrixRequest) -> list[Any]:
        return [200, await self.put_send_leave(req)]

    async def put_invite_v1(self, req: MatrixRequest) -> list[Any]:
        answer = await self._membership.invite_v1(
            req.origin,
            req.path_param("roomId"),
            req.path_param("eventId"),
            await req.json_any(),
        )
        return [200, answer]

    async def get_make_leave(self, req: MatrixRequest) -> JsonDict:
        return await self._membership.make_leave(
            req.origin, req.path_param("roomId"), req.path_param("userId")
        )

    async def put_send_leave(self, req: MatrixRequest) -> JsonDict:
        return await self._membership.send_leave(
            req.origin,
            req.path_param("roomId"),
            req.path_param("eventId"),
            await req.json_any(),
        )

    async def get_make_knock(self, req: MatrixRequest) -> JsonDict:
        return await self._membership.make_knock(
            req.origin,
            req.path_param("roomId"),
            req.path_param("userId"),
            _versions(req, required=True),
        )

    async def put_send_knock(self, req: MatrixRequest) -> JsonDict:
        return await self._membership.send_knock(
            req.origin,
            req.path_param("roomId"),
            req.path_param("eventId"),
            await req.json_any(),
        )

    async def put_invite(self, req: MatrixRequest) -> JsonDict:
        return await self._membership.invite(
            req.origin,
            req.path_param("roomId"),
            req.path_param("eventId"),
            await req.json_any(),
        )

    def endpoints(self) -> list[Endpoint]:
        def ep(method: str, path: str, handler: Any) -> Endpoint:
            return Endpoint(method, (path,), handler, auth=AuthMode.SERVER)

        return [
            ep("GET", V1 + "/make_join/{roomId}/{userId}", self.get_make_join),
            ep("PUT", V2 + "/send_join/{roomId}/{eventId}", self.put_send_join),
            ep("GET", V1 + "/make_leave/{roomId}/{userId}", self.get_make_leave),
            ep("PUT", V2 + "/send_leave/{roomId}/{eventId}", self.put_send_leave),
            ep("GET", V1 + "/make_knock/{roomId}/{userId}", self.get_make_knock),
            ep("PUT", V1 + "/send_knock/{roomId}/{eventId}", self.put_send_knock),
            ep("PUT", V2 + "/invite/{roomId}/{eventId}", self.put_invite),
            ep("PUT", V1 + "/send_join/{roomId}/{eventId}", self.put_send_join_v1),
            ep("PUT", V1 + "/send_leave/{roomId}/{eventId}", self.put_send_leave_v1),
            ep("PUT", V1 + "/invite/{roomId}/{eventId}", self.put_invite_v1),
        ]
