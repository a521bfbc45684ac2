"""Creating rooms and sending events into them.

    POST /_matrix/client/v3/createRoom
    PUT  /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}
    POST /_matrix/client/v3/rooms/{roomId}/send/{eventType}      (not in the spec: Synapse's
         legacy form without a transaction ID, which older clients and SyTest use)
    PUT  /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}
    PUT  /_matrix/client/v3/rooms/{roomId}/state/{eventType}      (empty state key)
    PUT  /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}
    POST /_matrix/client/v3/rooms/{roomId}/redact/{eventId}      (not in the spec: Synapse's
         legacy form without a transaction ID, as for send; SyTest uses it)

Spec: C-S API > Rooms > Creation; Events > Sending events to a room; Redactions.
Bodies are parsed into typed requests here; the services decide everything else.
`invite_3pid` entries are checked before the room is created and sent as third-party
invites right after (as Synapse does; a failure there is the request's error, the room
stays).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ranvier.api.http import AuthMode, Endpoint, JsonBody, MatrixRequest, client_paths
from ranvier.core.errors import bad_json, invalid_param
from ranvier.core.events.state_content import StateContentError, check_state_content
from ranvier.core.room_presets import Preset, StateEventSpec
from ranvier.services.rooms.creation import CreateRoomRequest, RoomCreationService
from ranvier.services.rooms.messages import RoomMessageService
from ranvier.services.rooms.third_party_invites import (
    ThirdPartyInviteService,
    parse_third_party_invites,
)

__all__ = ["RoomsResource", "parse_create_room"]

JsonDict = dict[str, Any]


def _parse_initial_state(body: JsonBody) -> list[StateEventSpec]:
    out: list[StateEventSpec] = []
    for item in body.get_list("initial_state") or []:
        if not isinstance(item, dict):
            raise bad_json("'initial_state' entries must be objects")
        entry = JsonBody(item)
        content = entry.get_dict("content")
        if content is None:
            raise bad_json("'initial_state' entries need a 'content' object")
        event_type = entry.require_str("type")
        _check_content(event_type, content)
        out.append(
            StateEventSpec(event_type, entry.get_str("state_key", "") or "", content)
        )
    return out


def _check_content(
    event_type: str, content: JsonDict, *, partial: bool = False
) -> JsonDict:
    """Local state content only (core/events/state_content.py): 400 M_BAD_JSON."""
    try:
        check_state_content(event_type, content, partial=partial)
    except StateContentError as e:
        raise bad_json(str(e)) from None
    return content


def _optional_content(body: JsonBody, key: str, event_type: str) -> JsonDict | None:
    content = body.get_dict(key)
    return (
        None if content is None else _check_content(event_type, content, partial=True)
    )


def parse_create_room(body: JsonBody) -> CreateRoomRequest:
    visibility = body.get_str("visibility", "private")
    if visibility not in ("public", "private"):
        raise invalid_param("'visibility' must be 'public' or 'private'")
    preset_name = body.get_str("preset")
    try:
        preset = Preset(preset_name) if preset_name is not None else None
    except ValueError:
        raise invalid_param(f"Unknown preset {preset_name!r}") from None
    return CreateRoomRequest(
        preset=preset,
        is_public=visibility == "public",
        room_alias_name=body.get_str("room_alias_name"),
        name=body.get_str("name"),
        topic=body.get_str("topic"),
        invite=body.get_str_list("invite") or [],
        is_direct=body.get_bool("is_direct"),
        initial_state=_parse_initial_state(body),
        power_level_content_override=_optional_content(
            body, "power_level_content_override", "m.room.power_levels"
        ),
        creation_content=_optional_content(body, "creation_content", "m.room.create"),
        room_version=body.get_str("room_version"),
    )


def appservice_ts(req: MatrixRequest) -> int | None:
    """Spec: Application Service API > Timestamp massaging: `ts` sets the event's
    `origin_server_ts`, for application services only (bridged history)."""
    if req.user.app_service_id is None:
        return None
    return req.query_int("ts", minimum=0)


class RoomsResource:
    def __init__(
        self,
        creation: RoomCreationService,
        messages: RoomMessageService,
        third_party: ThirdPartyInviteService | None = None,
        new_txn_id: Callable[[], str] | None = None,
    ) -> None:
        self._creation = creation
        self._messages = messages
        self._third_party = third_party
        self._new_txn_id = new_txn_id

    async def create_room(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        request = parse_create_room(body)
        invites = parse_third_party_invites(body.get_list("invite_3pid") or [])
        if invites and self._third_party is None:
            raise invalid_param("Third-party invites are not supported.")
        room_id, alias = await self._creation.create_room(req.user.user_id, request)
        for invite in invites:
            assert self._third_party is not None
            await self._third_party.invite(req.user.user_id, room_id, invite)
        out: JsonDict = {"room_id": room_id}
        if alias is not None:
            out["room_alias"] = alias
        return out

    def _txn_id(self, req: MatrixRequest) -> str:
        txn_id = req.raw.match_info.get("txnId")
        if txn_id is None:
            # POST without a transaction ID (Synapse's legacy form): a fresh one, so
            # the request is never deduplicated against another.
            assert self._new_txn_id is not None
            txn_id = f"post-{self._new_txn_id()}"
        return txn_id

    async def send_message(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        txn_id = self._txn_id(req)
        event_id = await self._messages.send_message(
            user_id=req.user.user_id,
            device_id=req.user.device_id,
            room_id=req.path_param("roomId"),
            event_type=req.path_param("eventType"),
            content=body.raw,
            txn_id=txn_id,
            origin_server_ts=appservice_ts(req),
        )
        return {"event_id": event_id}

    async def put_state(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        event_type = req.path_param("eventType")
        event_id = await self._messages.send_state(
            user_id=req.user.user_id,
            room_id=req.path_param("roomId"),
            event_type=event_type,
            state_key=req.raw.match_info.get("stateKey", ""),
            content=_check_content(event_type, body.raw),
            origin_server_ts=appservice_ts(req),
        )
        return {"event_id": event_id}

    async def redact(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        event_id = await self._messages.redact(
            user_id=req.user.user_id,
            device_id=req.user.device_id,
            room_id=req.path_param("roomId"),
            event_id=req.path_param("eventId"),
            reason=body.get_str("reason"),
            txn_id=self._txn_id(req),
        )
        return {"event_id": event_id}

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint("POST", client_paths("/createRoom"), self.create_room),
            Endpoint(
                "PUT",
                client_paths("/rooms/{roomId}/send/{eventType}/{txnId}"),
                self.send_message,
                auth=AuthMode.GUEST_OK,
                ratelimit="message",
            ),
            *(
                [
                    Endpoint(
                        "POST",
                        client_paths("/rooms/{roomId}/send/{eventType}"),
                        self.send_message,
                        auth=AuthMode.GUEST_OK,
                        ratelimit="message",
                    )
                ]
                if self._new_txn_id is not None
                else []
            ),
            Endpoint(
                "PUT",
                client_paths("/rooms/{roomId}/state/{eventType}/{stateKey:.*}")
                + client_paths("/rooms/{roomId}/state/{eventType}"),
                self.put_state,
                ratelimit="message",
            ),
            Endpoint(
                "PUT",
                client_paths("/rooms/{roomId}/redact/{eventId}/{txnId}"),
                self.redact,
                ratelimit="message",
            ),
            *(
                [
                    Endpoint(
                        "POST",
                        client_paths("/rooms/{roomId}/redact/{eventId}"),
                        self.redact,
                        ratelimit="message",
                    )
                ]
                if self._new_txn_id is not None
                else []
            ),
        ]
