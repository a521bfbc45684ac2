"""Room membership: join, knock, invite, leave, kick, ban, unban, forget.

Spec: C-S API > Room membership. The auth rules (inside the pipeline) decide what is
allowed; this service adds what the server decides on its own:

* aliases are resolved (other servers' through federation);
* rooms this server is not in are joined, knocked on and left (rejecting an invite)
  through a resident server (`RemoteRoomOps`): the alias's servers, the client's
  `via`/`server_name`, the inviter's server; remote users are invited over federation;
* guests may only join rooms whose `m.room.guest_access` is `can_join` (their join
  carries `kind: guest`, as Synapse's; for rooms on other servers the resident's
  `send_join` state is checked, see `RemoteMembershipService`); when guest access
  ends, local guests in the room leave (`remove_guests`);
* `restricted` / `knock_restricted` joins (room v8+ / v10+): a user who is joined to one
  of the rooms in the join rule's `allow` list is admitted through
  `join_authorised_via_users_server`, naming a local joined member who may invite;
* re-joining with an unchanged profile and leaving twice are no-ops;
* kicks and unbans need a target that is in the room / banned;
* member events carry the user's current `displayname` and `avatar_url`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Sequence
from typing import Any, Protocol

from ranvier.core.auth import (
    CREATE_KEY,
    JOIN_RULES_KEY,
    POWER_LEVELS_KEY,
    get_named_level,
    get_power_levels_content,
    get_user_power_level,
)
from ranvier.core.errors import MatrixError, forbidden, invalid_param, not_found
from ranvier.core.ids import (
    InvalidIdentifierError,
    domain_of,
    parse_room_id,
    parse_user_id,
)
from ranvier.services.events.creation import LocalEventSender
from ranvier.services.events.pipeline import RoomSession
from ranvier.services.rooms.aliases import DirectoryService
from ranvier.services.rooms.creation import MemberProfiles, member_content
from ranvier.services.rooms.remote import RemoteRoomOps
from ranvier.services.rooms.state_reader import RoomStateReader
from ranvier.storage.stores.rooms import RoomStore

logger = logging.getLogger(__name__)

__all__ = ["MembershipService"]

JsonDict = dict[str, Any]
MEMBER = "m.room.member"


class BlockedRooms(Protocol):
    async def is_room_blocked(self, room_id: str) -> bool: ...


class MembershipService:
    def __init__(
        self,
        *,
        server_name: str,
        sender: LocalEventSender,
        rooms: RoomStore,
        state: RoomStateReader,
        directory: DirectoryService,
        profiles: MemberProfiles,
        remote: RemoteRoomOps | None = None,
    ) -> None:
        self._server_name = server_name
        self._remote = remote
        self._sender = sender
        self._rooms = rooms
        self._state = state
        self._directory = directory
        self._profiles = profiles
        # Bound by the admin API (app/admin.py): refuses joins to blocked rooms.
        self.blocked_rooms: BlockedRooms | None = None

    # -- helpers -------------------------------------------------------------------------
    async def resolve_room(self, room_id_or_alias: str) -> str:
        room_id, servers = await self._resolve(room_id_or_alias, ())
        if not servers and await self._rooms.get_room_version(room_id) is None:
            raise not_found("No known servers for this room.")
        return room_id

    async def _resolve(
        self, room_id_or_alias: str, via: Sequence[str]
    ) -> tuple[str, list[str]]:
        """(room_id, servers that may let us in) for a room ID or alias."""
        if room_id_or_alias.startswith("#"):
            try:
                local = domain_of(room_id_or_alias) == self._server_name
            except InvalidIdentifierError as e:
                raise invalid_param(str(e)) from None
            if local or self._remote is None:
                room_id, servers = await self._directory.resolve_alias(room_id_or_alias)
            else:
                room_id, servers = await self._remote.query_directory(room_id_or_alias)
            return room_id, [*servers, *via]
        try:
            parse_room_id(room_id_or_alias)
        except InvalidIdentifierError as e:
            raise invalid_param(str(e)) from None
        servers = list(via)
        with contextlib.suppress(InvalidIdentifierError):
            # Pre-v12 room IDs name the server that created the room.
            servers.append(domain_of(room_id_or_alias))
        return room_id_or_alias, servers

    async def _is_host_in_room(self, room_id: str) -> bool:
        """Whether a local user is joined: only then can we build events ourselves."""
        if await self._rooms.get_room_version(room_id) is None:
            return False
        joined = await self._rooms.get_joined_user_ids(room_id)
        return any(domain_of(u) == self._server_name for u in joined)

    async def _remote_servers(self, room_id: str, user_id: str) -> list[str]:
        """For leaving a room we are not in: the inviter's (or knock's) server."""
        membership = await self._rooms.get_membership(room_id, user_id)
        change = (
            await self._rooms.get_membership_at(
                room_id, user_id, membership.stream_ordering
            )
            if membership is not None
            else None
        )
        servers: list[str] = []
        if change is not None:
            with contextlib.suppress(InvalidIdentifierError):
                servers.append(domain_of(change.sender))
        with contextlib.suppress(InvalidIdentifierError):
            servers.append(domain_of(room_id))
        return servers

    def _need_remote(self) -> RemoteRoomOps:
        if self._remote is None:
            raise not_found("No known servers for this room.")
        return self._remote

    def _check_user_id(self, user_id: str) -> None:
        try:
            parse_user_id(user_id)
        except InvalidIdentifierError as e:
            raise invalid_param(str(e)) from None

    async def _profile(self, user_id: str) -> JsonDict | None:
        if domain_of(user_id) != self._server_name:
            return None
        return (await self._profiles.get_member_profiles([user_id])).get(user_id)

    async def _send_member(
        self,
        room_id: str,
        sender: str,
        target: str,
        content: JsonDict,
        precheck: Any = None,
    ) -> str:
        sent = await self._sender.send(
            room_id,
            sender=sender,
            event_type=MEMBER,
            state_key=target,
            content=content,
            precheck=precheck,
        )
        return sent.event_id

    @staticmethod
    async def _current_member(session: RoomSession, user_id: str) -> JsonDict | None:
        event = (await session.get_current_state([(MEMBER, user_id)])).get(
            (MEMBER, user_id)
        )
        return dict(event.content) if event is not None else None

    # -- join / knock --------------------------------------------------------------------
    async def join(
        self, user_id: str, room_id_or_alias: str, *, is_guest: bool = False,
        reason: str | None = None, via: Sequence[str] = (),
    ) -> str:  # fmt: skip
        """Join a room (by ID or alias); returns the room ID. `via`: servers the
        client suggests for rooms this server is not in."""
        room_id, servers = await self._resolve(room_id_or_alias, via)
        if self.blocked_rooms is not None and await self.blocked_rooms.is_room_blocked(
            room_id
        ):
            raise MatrixError(
                403, "M_FORBIDDEN", "This room has been blocked on this server"
            )
        kind = "guest" if is_guest else None
        if not await self._is_host_in_room(room_id):
            content = member_content(
                "join", await self._profile(user_id), reason=reason, kind=kind
            )
            membership = await self._rooms.get_membership(room_id, user_id)
            if membership is not None and membership.membership == "invite":
                servers = [*await self._remote_servers(room_id, user_id), *servers]
            await self._need_remote().join(user_id, room_id, servers, content)
            return room_id
        if is_guest:
            access = await self._state.get_current_content(
                room_id, "m.room.guest_access"
            )
            if access is None or access.get("guest_access") != "can_join":
                raise MatrixError(
                    403, "M_FORBIDDEN", "Guest access is not allowed in this room."
                )
        content = member_content(
            "join", await self._profile(user_id), reason=reason, kind=kind
        )
        membership = await self._rooms.get_membership(room_id, user_id)
        if membership is None or membership.membership not in ("join", "invite"):
            authoriser = await self._restricted_authoriser(room_id, user_id)
            if authoriser is not None:
                content["join_authorised_via_users_server"] = authoriser

        async def needed(session: RoomSession) -> bool:
            # Re-joining with the same profile changes nothing: do not send an event.
            return await self._current_member(session, user_id) != content

        await self._send_member(room_id, user_id, user_id, content, needed)
        return room_id

    async def _restricted_authoriser(self, room_id: str, user_id: str) -> str | None:
        """For restricted rooms: a local member who may invite, if `user_id` belongs to a
        room the join rule allows (None when the room is not restricted)."""
        rules = await self._state.get_current_content(room_id, "m.room.join_rules")
        if rules is None or rules.get("join_rule") not in (
            "restricted",
            "knock_restricted",
        ):
            return None
        allow = rules.get("allow")
        allowed_rooms = [
            a.get("room_id")
            for a in (allow if isinstance(allow, list) else [])
            if isinstance(a, dict) and a.get("type") == "m.room_membership"
        ]
        for allowed in allowed_rooms:
            if not isinstance(allowed, str):
                continue
            m = await self._rooms.get_membership(allowed, user_id)
            if m is not None and m.membership == "join":
                return await self._pick_authoriser(room_id)
        if rules.get("join_rule") == "knock_restricted":
            return None  # the auth rules refuse; a knock is the way in
        raise forbidden(
            "You are not a member of any room that grants access to this room."
        )

    async def _pick_authoriser(self, room_id: str) -> str:
        state = await self._state.get_current_state_events(
            room_id, [CREATE_KEY, POWER_LEVELS_KEY, JOIN_RULES_KEY]
        )
        invite_level = get_named_level(get_power_levels_content(state), "invite")
        members = [
            u
            for u in await self._rooms.get_joined_user_ids(room_id)
            if domain_of(u) == self._server_name
        ]
        ranked = sorted(
            members, key=lambda u: get_user_power_level(u, state), reverse=True
        )
        for user in ranked:
            if get_user_power_level(user, state) >= invite_level:
                return user
        raise MatrixError(
            400,
            "M_UNABLE_TO_AUTHORISE_JOIN",
            "No member of this room can authorise joins.",
        )

    async def knock(
        self, user_id: str, room_id_or_alias: str, reason: str | None,
        via: Sequence[str] = (),
    ) -> str:  # fmt: skip
        room_id, servers = await self._resolve(room_id_or_alias, via)
        content = member_content("knock", await self._profile(user_id), reason=reason)
        if not await self._is_host_in_room(room_id):
            await self._need_remote().knock(user_id, room_id, servers, content)
            return room_id
        await self._send_member(room_id, user_id, user_id, content)
        return room_id

    # -- leave / forget --------------------------------------------------------------------
    async def leave(
        self, user_id: str, room_id: str, reason: str | None = None
    ) -> None:
        content = member_content("leave", None, reason=reason)
        if not await self._is_host_in_room(room_id) and await self._leave_remotely(
            user_id, room_id, content
        ):
            return
        if await self._rooms.get_room_version(room_id) is None:
            raise not_found("Unknown room.")

        async def needed(session: RoomSession) -> bool:
            current = await self._current_member(session, user_id)
            return current is not None and current.get("membership") != "leave"

        await self._send_member(room_id, user_id, user_id, content, needed)

    async def _leave_remotely(
        self, user_id: str, room_id: str, content: JsonDict
    ) -> bool:
        """Reject an invite / rescind a knock in a room no local user is joined to.

        When the invite (or knock) is part of the room state we hold - a local inviter,
        a knock on a local room, everyone here having left since - the rejection is an
        ordinary event on our DAG, sent to whoever is still in the room (False: the
        caller does that; Synapse does the same for local inviters). Otherwise it was
        received out of band and goes through a resident server
        (`make_leave`/`send_leave`); when none answers, `RemoteRoomOps.leave` stores a
        local out-of-band leave so the invite disappears anyway (as Synapse does)."""
        membership = await self._rooms.get_membership(room_id, user_id)
        if membership is None or membership.membership not in ("invite", "knock"):
            return False
        in_state = await self._state.get_current_state_event(room_id, MEMBER, user_id)
        if in_state is not None and in_state.event_id == membership.event_id:
            return False
        servers = await self._remote_servers(room_id, user_id)
        await self._need_remote().leave(user_id, room_id, servers, content)
        return True

    async def forget(self, user_id: str, room_id: str) -> None:
        membership = await self._rooms.get_membership(room_id, user_id)
        if membership is None:
            return
        if membership.membership in ("join", "invite", "knock"):
            raise MatrixError(
                400, "M_UNKNOWN", "You must leave the room before forgetting it."
            )
        await self._rooms.forget_room(room_id, user_id)

    # -- acting on others ----------------------------------------------------------------------
    async def invite(
        self,
        sender: str,
        room_id: str,
        target: str,
        reason: str | None = None,
        *,
        third_party_invite: JsonDict | None = None,
    ) -> None:
        """`third_party_invite`: the content completing a third-party invite (the
        auth rules then check its signature instead of the sender's power)."""
        self._check_user_id(target)
        if await self._rooms.get_room_version(room_id) is None:
            raise not_found("Unknown room.")
        content = member_content("invite", await self._profile(target), reason=reason)
        if third_party_invite is not None:
            content["third_party_invite"] = third_party_invite
        if domain_of(target) != self._server_name:
            if self._remote is None:
                raise forbidden("This server does not federate.")
            await self._remote.invite(sender, room_id, target, content)
            return
        await self._send_member(room_id, sender, target, content)

    async def kick(
        self, sender: str, room_id: str, target: str, reason: str | None
    ) -> None:
        await self._act_on(
            sender, room_id, target, "leave", reason, ("join", "invite", "knock")
        )

    async def ban(
        self, sender: str, room_id: str, target: str, reason: str | None
    ) -> None:
        await self._act_on(sender, room_id, target, "ban", reason, None)

    async def unban(
        self, sender: str, room_id: str, target: str, reason: str | None
    ) -> None:
        await self._act_on(sender, room_id, target, "leave", reason, ("ban",))

    async def _act_on(
        self,
        sender: str,
        room_id: str,
        target: str,
        membership: str,
        reason: str | None,
        required: Collection[str] | None,
    ) -> None:
        self._check_user_id(target)
        if await self._rooms.get_room_version(room_id) is None:
            raise not_found("Unknown room.")
        content = member_content(membership, None, reason=reason)

        async def check(session: RoomSession) -> bool:
            if required is None:
                return True
            current = await self._current_member(session, target)
            if current is None or current.get("membership") not in required:
                raise forbidden(
                    f"{target} is not {' or '.join(required)} in this room."
                )
            return True

        await self._send_member(room_id, sender, target, content, check)

    async def remove_guests(self, room_id: str) -> None:
        """`m.room.guest_access` stopped being `can_join` (a local or a federated
        change; checked again on the current state): local guests joined or invited
        leave. As Synapse does, each guest leaves by itself rather than being
        kicked by the sender (no power levels involved; guests are a local notion)."""
        access = await self._state.get_current_content(room_id, "m.room.guest_access")
        if access is not None and access.get("guest_access") == "can_join":
            return  # e.g. a remote change that lost to a concurrent one
        members = await self._rooms.get_members(room_id, ("join", "invite"))
        local = [
            m.user_id for m in members if domain_of(m.user_id) == self._server_name
        ]
        if not local:
            return
        events = await self._state.get_current_state_events(
            room_id, [(MEMBER, u) for u in local]
        )
        for (_, user_id), event in events.items():
            if event.content.get("kind") != "guest":
                continue
            try:
                await self.leave(user_id, room_id)
            except MatrixError as e:
                logger.warning("guest %s could not leave %s: %s", user_id, room_id, e)

    # -- lists and account hooks -------------------------------------------------------
    async def get_joined_rooms(self, user_id: str) -> list[str]:
        return [
            m.room_id for m in await self._rooms.get_rooms_for_user(user_id, ("join",))
        ]

    async def on_profile_change(self, user_id: str) -> None:
        """New `displayname`/`avatar_url`: refresh the user's join events."""
        profile = await self._profile(user_id)
        for room_id in await self.get_joined_rooms(user_id):
            current = await self._state.get_current_content(room_id, MEMBER, user_id)
            # A guest stays marked as one (guest access may end later).
            kind = current.get("kind") if current is not None else None
            content = member_content(
                "join", profile, kind=kind if kind == "guest" else None
            )

            async def needed(session: RoomSession, content: JsonDict = content) -> bool:
                current = await self._current_member(session, user_id)
                return (
                    current is not None
                    and current.get("membership") == "join"
                    and (current != content)
                )

            try:
                await self._send_member(room_id, user_id, user_id, content, needed)
            except MatrixError as e:
                # Power levels may forbid member changes; the profile itself changed.
                if e.status != 403:
                    raise

    async def on_deactivate(self, user_id: str, erase: bool) -> None:
        """A deactivated account leaves every room (and withdraws invites and knocks)."""
        rows = await self._rooms.get_rooms_for_user(
            user_id, ("join", "invite", "knock"), include_forgotten=True
        )
        for row in rows:
            try:
                await self.leave(user_id, row.room_id)
            except MatrixError as e:
                if e.status != 403:
                    raise
