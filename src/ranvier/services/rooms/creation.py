"""Room creation (`POST /createRoom`; spec: C-S API > Rooms > Creation).

Every event of a new room (create, creator's join, power levels, alias, preset, initial
state, name, topic, invites) is built and checked in one pipeline session and persisted
in ONE transaction together with the room's row and its alias: a failing event (say an
`initial_state` the auth rules refuse) leaves nothing behind.

Users of other servers in `invite` (how clients start a DM across servers) cannot be
invited inside that transaction: their server must countersign the invite. They count
as invitees for the presets (`trusted_private_chat` power levels), and once the room is
committed each is invited over federation (`RemoteInviter`, the outbound invite path);
a remote server that refuses or is down is logged and does not undo the room (the
creator can invite again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ranvier.core.auth import AuthError
from ranvier.core.errors import MatrixError, invalid_param
from ranvier.core.events.event import Event
from ranvier.core.ids import InvalidIdentifierError, domain_of, parse_user_id
from ranvier.core.room_presets import (
    Preset,
    RoomStatePlan,
    StateEventSpec,
    build_create_content,
    plan_initial_state,
)
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from ranvier.services.events.creation import EventBuilder
from ranvier.services.events.pipeline import EventPipeline, RoomSession
from ranvier.services.rooms.aliases import AliasLookup, validate_alias_localpart
from ranvier.storage.stores.event_rows import AliasTakenError, NewRoom
from ranvier.util.clock import Clock

logger = logging.getLogger(__name__)

__all__ = [
    "CreateRoomRequest",
    "MemberProfiles",
    "RemoteInviter",
    "RoomCreationService",
]

JsonDict = dict[str, Any]

_MAX_CREATE_ATTEMPTS = 20


class KnownRooms(Protocol):
    async def get_room_version(self, room_id: str) -> RoomVersion | None: ...


class RemoteInviter(Protocol):
    async def invite(
        self, sender: str, room_id: str, target: str, content: JsonDict
    ) -> str:
        """Invite a user of another server into a room this server is in."""
        ...


class MemberProfiles(Protocol):
    """`displayname`/`avatar_url` of local users, for their membership events."""

    async def get_member_profiles(
        self, user_ids: Collection[str]
    ) -> dict[str, JsonDict]: ...


@dataclass(frozen=True, slots=True)
class CreateRoomRequest:
    preset: Preset | None = None
    is_public: bool = False
    room_alias_name: str | None = None
    name: str | None = None
    topic: str | None = None
    invite: Sequence[str] = ()
    is_direct: bool = False
    initial_state: Sequence[StateEventSpec] = ()
    power_level_content_override: JsonDict | None = None
    creation_content: JsonDict | None = None
    room_version: str | None = None
    extra: JsonDict = field(default_factory=dict)
    # A room ID reserved with `reserve_room_id` (room upgrades before v12 name the new
    # room in the tombstone before it is created); ignored since v12.
    room_id: str | None = None


def _alias_taken() -> MatrixError:
    return MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken.")


def member_content(membership: str, profile: JsonDict | None, **extra: Any) -> JsonDict:
    content: JsonDict = {"membership": membership}
    for key in ("displayname", "avatar_url"):
        value = (profile or {}).get(key)
        if isinstance(value, str):
            content[key] = value
    content.update({k: v for k, v in extra.items() if v is not None})
    return content


class RoomCreationService:
    def __init__(
        self,
        *,
        server_name: str,
        default_room_version: str,
        pipeline: EventPipeline,
        builder: EventBuilder,
        aliases: AliasLookup,
        known_rooms: KnownRooms,
        profiles: MemberProfiles,
        clock: Clock,
        remote: RemoteInviter | None = None,
        may_create_alias: Callable[[str, str], bool] | None = None,
    ) -> None:
        # (user_id, alias) -> False inside another's exclusive application-service
        # namespace.
        self._may_create_alias = may_create_alias or (lambda _user, _alias: True)
        self._known = known_rooms
        self._remote = remote
        self._server_name = server_name
        self._default_version = default_room_version
        self._pipeline = pipeline
        self._builder = builder
        self._aliases = aliases
        self._profiles = profiles
        self._clock = clock

    def _room_version(self, requested: str | None) -> RoomVersion:
        ident = requested if requested is not None else self._default_version
        rv = KNOWN_ROOM_VERSIONS.get(ident)
        if rv is None:
            raise MatrixError(
                400,
                "M_UNSUPPORTED_ROOM_VERSION",
                f"Unsupported room version {ident!r}.",
            )
        return rv

    def _check_invitees(self, creator: str, invitees: Sequence[str]) -> list[str]:
        out: list[str] = []
        for user_id in invitees:
            try:
                parse_user_id(user_id)
            except InvalidIdentifierError:
                raise invalid_param(f"Invalid user ID to invite: {user_id!r}") from None
            if domain_of(user_id) != self._server_name and self._remote is None:
                raise MatrixError(403, "M_FORBIDDEN", "This server does not federate.")
            if user_id != creator and user_id not in out:
                out.append(user_id)
        return out

    async def _alias(self, creator: str, room_alias_name: str | None) -> str | None:
        if room_alias_name is None:
            return None
        validate_alias_localpart(room_alias_name)
        alias = f"#{room_alias_name}:{self._server_name}"
        if not self._may_create_alias(creator, alias):
            raise MatrixError(
                400, "M_EXCLUSIVE", "This alias is reserved by an application service."
            )
        if await self._aliases.get_alias(alias) is not None:
            raise _alias_taken()
        return alias

    def reserve_room_id(self, room_version: RoomVersion) -> str | None:
        """A fresh room ID for a room of `room_version` to be created later, or None
        since v12 (the create event's hash names the room)."""
        if room_version.room_id_from_create_event:
            return None
        return self._builder.new_room_id()

    async def create_room(
        self, creator: str, req: CreateRoomRequest
    ) -> tuple[str, str | None]:
        """Create the room; (room_id, canonical alias or None)."""
        rv = self._room_version(req.room_version)
        invitees = self._check_invitees(creator, req.invite)
        alias = await self._alias(creator, req.room_alias_name)
        preset = req.preset or (
            Preset.PUBLIC_CHAT if req.is_public else Preset.PRIVATE_CHAT
        )
        now = self._clock.time_msec()
        create_content = build_create_content(
            room_version=rv,
            creator=creator,
            preset=preset,
            invitees=invitees,
            creation_content=req.creation_content,
        )
        plan = plan_initial_state(
            room_version=rv,
            creator=creator,
            preset=preset,
            invitees=invitees,
            canonical_alias=alias,
            name=req.name,
            topic=req.topic,
            initial_state=req.initial_state,
            power_level_content_override=req.power_level_content_override,
        )
        profiles = await self._profiles.get_member_profiles([creator, *invitees])
        # Since v12 the room ID is the create event's hash: two identical requests in the
        # same millisecond would name the same room, so the later one moves on a tick.
        for tick in range(_MAX_CREATE_ATTEMPTS):
            create = self._builder.build_create_event(
                rv, creator, create_content, now + tick, req.room_id
            )
            room_id = create.room_id
            new_room = NewRoom(room_id, rv.identifier, creator, now, req.is_public)
            async with self._pipeline.room_session(
                room_id, rv, new_room=new_room
            ) as session:
                if await self._known.get_room_version(room_id) is not None:
                    continue
                await self._add_all(
                    session, create, creator, plan, invitees, profiles, req
                )
                if alias is not None:
                    session.add_alias(alias, creator)
                try:
                    await session.commit()
                except AliasTakenError:
                    raise _alias_taken() from None
            await self._invite_remote(creator, room_id, invitees, req)
            return room_id, alias
        raise MatrixError(503, "M_UNKNOWN", "Could not allocate a room ID; try again.")

    async def _invite_remote(
        self, creator: str, room_id: str, invitees: Sequence[str],
        req: CreateRoomRequest,
    ) -> None:  # fmt: skip
        """After the commit (no room lock held: the invite awaits the network)."""
        remote = [u for u in invitees if domain_of(u) != self._server_name]
        if not remote or self._remote is None:
            return
        content = member_content("invite", None, is_direct=req.is_direct or None)
        for user_id in remote:
            try:
                await self._remote.invite(creator, room_id, user_id, dict(content))
            except MatrixError as e:
                logger.warning(
                    "createRoom %s: inviting %s failed: %s", room_id, user_id, e
                )

    async def _add_all(
        self,
        session: RoomSession,
        create: Event,
        creator: str,
        plan: RoomStatePlan,
        invitees: Sequence[str],
        profiles: dict[str, JsonDict],
        req: CreateRoomRequest,
    ) -> None:
        try:
            await session.add_event(create, local=True)
            await self._add(session, creator, "m.room.member", creator,
                            member_content("join", profiles.get(creator)))  # fmt: skip
            for spec in plan.events:
                await self._add(
                    session, creator, spec.type, spec.state_key, spec.content
                )
            for user_id in invitees:
                if domain_of(user_id) != self._server_name:
                    continue  # invited over federation after the commit
                content = member_content(
                    "invite", profiles.get(user_id), is_direct=req.is_direct or None
                )
                await self._add(session, creator, "m.room.member", user_id, content)
        except AuthError as e:
            raise MatrixError(
                400, "M_INVALID_ROOM_STATE", f"Invalid initial room state: {e.reason}"
            ) from None

    async def _add(
        self,
        session: RoomSession,
        sender: str,
        etype: str,
        state_key: str,
        content: JsonDict,
    ) -> Event:
        event = await self._builder.build(
            session,
            event_type=etype,
            sender=sender,
            content=content,
            state_key=state_key,
            now_ms=self._clock.time_msec(),
        )
        await session.add_event(event, local=True)
        return event
