"""The resident side of remote membership changes (spec: S-S API > Joining rooms,
Leaving rooms, Knocking upon a room, Inviting to a room).

* Every request is first checked against the room's server ACL (before anything else
  about it is looked at), then the user's server. `make_join`/`make_knock` and
  `send_join`/`send_knock` answer 404 once no local user is joined any more (Synapse:
  "not an active room on this server").
* `make_*` answers a template built on the room's current tip (prev events = forward
  extremities, auth events = the auth events selection over the current state), after
  checking that the membership would be allowed now; `make_join` / `make_knock`
  negotiate the room version (`M_INCOMPATIBLE_ROOM_VERSION`). For restricted rooms
  (v8+) `make_join` names a local member who may invite in
  `join_authorised_via_users_server`, when the joiner is in an allowed room.
* `send_*` checks the returned event (format, IDs, sender's server, signatures, content
  hash), countersigns restricted joins, runs it through the room's pipeline (failing
  the auth rules answers 403 and stores nothing), then queues it to the other servers
  in the room. `send_join` answers the state before the join and its auth chain (full
  state, `members_omitted: false`, even when `omit_members` is asked).
* `invite` (v2, and the deprecated v1 carrying the bare event) is an invite of a LOCAL
  user to a room on another server: checked, countersigned and stored as an
  out-of-band membership with its `invite_room_state`, which the user's sync shows in
  `rooms.invite`. An invite of a user who does not exist is countersigned too (as
  Synapse; the spec has no answer for it) but not stored.
* The PDU's format (`PduChecker.parse`: shape, types, canonical JSON of its room
  version) is checked before its signatures, so a malformed event answers 400
  `M_BAD_JSON`, never a signature error.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final, Protocol

from ranvier.core.auth import (
    CREATE_KEY,
    JOIN_RULES_KEY,
    POWER_LEVELS_KEY,
    AuthError,
    auth_events_selection,
    auth_types_for_event,
    check_state_dependent_auth_rules,
    get_named_level,
    get_power_levels_content,
    get_user_power_level,
)
from ranvier.core.crypto.keys import SigningKey
from ranvier.core.errors import MatrixError, bad_json, forbidden, not_found
from ranvier.core.events.event import Event, StateKey
from ranvier.core.events.federation_format import (
    federation_pdu,
    membership_template,
    sign_event,
    stripped_state_event,
)
from ranvier.core.ids import InvalidIdentifierError, domain_of
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from ranvier.services.events.pipeline import EventPipeline
from ranvier.services.events.state import MissingStateError
from ranvier.services.federation.access import RoomAccess
from ranvier.services.federation.pdu_checks import PduChecker, PduRejected
from ranvier.services.federation.serving import HistoryService
from ranvier.storage.stores.events import EventStore
from ranvier.storage.stores.state import StateStore
from ranvier.util.clock import Clock

logger = logging.getLogger(__name__)

__all__ = ["ResidentMembership"]

JsonDict = dict[str, Any]

MAX_TEMPLATE_PREV_EVENTS: Final = 10
AUTHORISER: Final = "join_authorised_via_users_server"
# Stripped state handed to knockers (spec: Stripped state; Synapse's defaults).
PREJOIN_STATE_TYPES: Final = (
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.encryption",
    "m.room.topic",
)


class PduOutbox(Protocol):
    async def enqueue_pdu(
        self, destinations: Collection[str], event: Event
    ) -> None: ...


class MembershipLookup(Protocol):
    async def get_membership(self, room_id: str, user_id: str) -> Any | None: ...

    async def get_joined_user_ids(self, room_id: str) -> list[str]: ...


class LocalUsers(Protocol):
    async def get_user(self, user_id: str) -> object | None: ...


def incompatible(rv: str) -> MatrixError:
    return MatrixError(
        400,
        "M_INCOMPATIBLE_ROOM_VERSION",
        f"Your server does not support room version {rv}.",
        room_version=rv,
    )


def _domain(identifier: str) -> str | None:
    try:
        return domain_of(identifier)
    except InvalidIdentifierError:
        return None


class ResidentMembership:
    def __init__(
        self,
        *,
        server_name: str,
        signing_key: SigningKey,
        access: RoomAccess,
        pipeline: EventPipeline,
        events: EventStore,
        state: StateStore,
        memberships: MembershipLookup,
        users: LocalUsers,
        checker: PduChecker,
        history: HistoryService,
        outbox: PduOutbox,
        clock: Clock,
    ) -> None:
        self._server_name = server_name
        self._key = signing_key
        self._access = access
        self._pipeline = pipeline
        self._events = events
        self._state = state
        self._memberships = memberships
        self._users = users
        self._checker = checker
        self._history = history
        self._outbox = outbox
        self._clock = clock

    # -- make_* ---------------------------------------------------------------------------------
    async def make_join(
        self, origin: str, room_id: str, user_id: str, supported: Sequence[str]
    ) -> JsonDict:
        rv = await self._prepare(origin, room_id, user_id, resident=True)
        if rv.identifier not in supported:
            raise incompatible(rv.identifier)
        extra: JsonDict = {}
        authoriser = await self._restricted_authoriser(room_id, rv, user_id)
        if authoriser is not None:
            extra[AUTHORISER] = authoriser
        return await self._template(room_id, rv, user_id, "join", extra)

    async def make_leave(self, origin: str, room_id: str, user_id: str) -> JsonDict:
        rv = await self._prepare(origin, room_id, user_id, resident=False)
        return await self._template(room_id, rv, user_id, "leave", {})

    async def make_knock(
        self, origin: str, room_id: str, user_id: str, supported: Sequence[str]
    ) -> JsonDict:
        rv = await self._prepare(origin, room_id, user_id, resident=True)
        if rv.identifier not in supported or not rv.knock_join_rule:
            raise incompatible(rv.identifier)
        return await self._template(room_id, rv, user_id, "knock", {})

    async def _prepare(
        self, origin: str, room_id: str, user_id: str, *, resident: bool
    ) -> RoomVersion:
        """The room is known and the origin passes its ACL (checked before anything
        else about the request, spec: Server Access Control Lists); the user is the
        origin's; `resident`: a local user is still joined (else 404, as Synapse: a
        room everyone here left is not one we can let anybody into)."""
        rv = await self._access.room_version(room_id)
        await self._access.check_acl(room_id, origin)
        if _domain(user_id) != origin:
            raise forbidden("The user is not from the requesting server.")
        if resident:
            await self._check_resident(room_id)
        return rv

    async def _check_resident(self, room_id: str) -> None:
        joined = await self._memberships.get_joined_user_ids(room_id)
        if not any(_domain(u) == self._server_name for u in joined):
            raise not_found("This server is no longer in the room.")

    async def _template(
        self, room_id: str, rv: RoomVersion, user_id: str, membership: str,
        extra: JsonDict,
    ) -> JsonDict:  # fmt: skip
        tip = await self._pipeline.get_room_tip(room_id)
        if tip.state is None or not tip.extremities:
            raise not_found("Unknown room.")
        prev_ids = [e for e, _ in tip.extremities[:MAX_TEMPLATE_PREV_EVENTS]]
        prevs = await self._events.get_events(prev_ids)
        args: dict[str, Any] = {
            "room_id": room_id,
            "user_id": user_id,
            "membership": membership,
            "origin": self._server_name,
            "origin_server_ts": self._clock.time_msec(),
            "extra_content": extra,
        }
        draft = Event(
            membership_template(rv, prev_events=[], auth_events=[], **args),
            "$template",
            rv,
        )
        current = tip.state.state
        auth = await self._state_events(current, auth_events_selection(draft))
        template = membership_template(
            rv,
            prev_events=[prevs[e].event for e in prev_ids if e in prevs],
            auth_events=[auth[k] for k in sorted(auth)],
            **args,
        )
        checked = Event(template, "$template", rv)
        try:
            state = await self._state_events(current, auth_types_for_event(checked))
            check_state_dependent_auth_rules(checked, state)
        except AuthError as e:
            raise forbidden(
                f"You are not allowed to {membership}: {e.reason}"
            ) from None
        return {"room_version": rv.identifier, "event": template}

    async def _state_events(
        self, state: Mapping[StateKey, str], keys: Collection[StateKey]
    ) -> dict[StateKey, Event]:
        ids = {k: state[k] for k in keys if k in state}
        stored = await self._events.get_events(ids.values())
        return {k: stored[e].event for k, e in ids.items() if e in stored}

    # -- restricted rooms --------------------------------------------------------------------------
    async def _restricted_authoriser(
        self, room_id: str, rv: RoomVersion, user_id: str
    ) -> str | None:
        """A local member who may invite, when the room is restricted and the joiner is
        not already joined/invited (spec: Restricted rooms)."""
        if not rv.restricted_join_rule:
            return None
        tip = await self._pipeline.get_room_tip(room_id)
        current = tip.state.state if tip.state is not None else {}
        state = await self._state_events(
            current, [CREATE_KEY, POWER_LEVELS_KEY, JOIN_RULES_KEY]
        )
        rules = state.get(JOIN_RULES_KEY)
        rule = rules.content.get("join_rule") if rules is not None else None
        if rule not in ("restricted", "knock_restricted"):
            return None
        row = await self._memberships.get_membership(room_id, user_id)
        if row is not None and row.membership in ("join", "invite"):
            return None
        assert rules is not None
        if not await self._in_allowed_room(rules.content, user_id):
            if rule == "knock_restricted":
                return None  # the auth rules decide (a knock is the way in)
            raise forbidden("You are not in a room that grants access to this room.")
        return await self._pick_authoriser(room_id, state)

    async def _in_allowed_room(self, content: Mapping[str, Any], user_id: str) -> bool:
        allow = content.get("allow")
        rooms = [
            a.get("room_id")
            for a in (allow if isinstance(allow, list) else [])
            if isinstance(a, dict) and a.get("type") == "m.room_membership"
        ]
        resident = False
        for allowed in rooms:
            if not isinstance(allowed, str):
                continue
            joined = await self._memberships.get_joined_user_ids(allowed)
            if any(_domain(u) == self._server_name for u in joined):
                resident = True
            if user_id in joined:
                return True
        if not resident:
            raise MatrixError(
                400,
                "M_UNABLE_TO_GRANT_JOIN",
                "This server is in none of the rooms that grant access.",
            )
        return False

    async def _pick_authoriser(
        self, room_id: str, state: Mapping[StateKey, Event]
    ) -> str:
        invite_level = get_named_level(get_power_levels_content(state), "invite")
        local = [
            u
            for u in await self._memberships.get_joined_user_ids(room_id)
            if _domain(u) == self._server_name
        ]
        ranked = sorted(local, key=lambda u: -get_user_power_level(u, state))
        for user in ranked:
            if get_user_power_level(user, state) >= invite_level:
                return user
        raise MatrixError(
            400, "M_UNABLE_TO_GRANT_JOIN", "No local member can authorise the join."
        )

    # -- send_* ---------------------------------------------------------------------------------------
    async def send_join(
        self, origin: str, room_id: str, event_id: str, pdu: Any
    ) -> JsonDict:
        event = await self._accept(origin, room_id, event_id, pdu, "join")
        state_ids = await self._state.get_state_ids_at_event(
            event.event_id, before=True
        )
        state_list = sorted(set((state_ids or {}).values()))
        servers = await self._access.get_servers_in_room(room_id)
        return {
            "origin": self._server_name,
            "event": federation_pdu(event),
            "state": await self._pdus(state_list),
            "auth_chain": await self._history.get_auth_chain_pdus(
                event.room_version, [*state_list, *event.auth_event_ids]
            ),
            "members_omitted": False,
            "servers_in_room": servers,
        }

    async def send_leave(
        self, origin: str, room_id: str, event_id: str, pdu: Any
    ) -> JsonDict:
        await self._accept(origin, room_id, event_id, pdu, "leave")
        return {}

    async def send_knock(
        self, origin: str, room_id: str, event_id: str, pdu: Any
    ) -> JsonDict:
        await self._accept(origin, room_id, event_id, pdu, "knock")
        tip = await self._pipeline.get_room_tip(room_id)
        current = tip.state.state if tip.state is not None else {}
        state = await self._state_events(
            current, [(t, "") for t in PREJOIN_STATE_TYPES]
        )
        return {
            "knock_room_state": [
                stripped_state_event(state[k].data) for k in sorted(state)
            ]
        }

    async def _pdus(self, event_ids: Sequence[str]) -> list[JsonDict]:
        stored = await self._events.get_events(event_ids)
        return [federation_pdu(stored[e].event) for e in event_ids if e in stored]

    async def _accept(
        self, origin: str, room_id: str, event_id: str, pdu: Any, membership: str
    ) -> Event:
        rv = await self._access.room_version(room_id)
        await self._access.check_acl(room_id, origin)
        if membership in ("join", "knock"):
            await self._check_resident(room_id)
        event = await self._receive(origin, room_id, event_id, pdu, rv, membership)
        known = await self._events.get_event(event.event_id)
        if known is not None:
            if known.rejected_reason is not None or known.soft_failed:
                raise forbidden("Event not allowed.")
            return known.event  # a retried send_*: answer again
        async with self._pipeline.room_session(room_id, rv) as session:
            try:
                await session.add_event(event, local=True)
            except AuthError as e:
                raise forbidden(f"Event not allowed: {e.reason}") from None
            except MissingStateError:
                raise bad_json("The event's prev events are unknown here.") from None
            await session.commit()
        servers = await self._access.get_servers_in_room(room_id)
        others = [s for s in servers if s not in (origin, self._server_name)]
        await self._outbox.enqueue_pdu(others, event)
        return event

    async def _receive(
        self, origin: str, room_id: str, event_id: str, pdu: Any, rv: RoomVersion,
        membership: str,
    ) -> Event:  # fmt: skip
        event = self._parse(pdu, rv, room_id, event_id)
        if (
            event.type != "m.room.member"
            or event.membership != membership
            or event.state_key != event.sender
        ):
            raise bad_json(f"Not a {membership} event for its sender.")
        if _domain(event.sender) != origin:
            raise forbidden("The event is not from the requesting server.")
        authoriser = event.content.get(AUTHORISER)
        if (
            membership == "join"
            and rv.restricted_join_rule
            and isinstance(authoriser, str)
            and _domain(authoriser) == self._server_name
        ):
            event = sign_event(event, self._server_name, self._key)
        return await self._verify(event)

    def _parse(self, pdu: Any, rv: RoomVersion, room_id: str, event_id: str) -> Event:
        parsed = self._checker.parse(pdu, rv)
        if isinstance(parsed, PduRejected):
            raise bad_json(parsed.reason)
        if parsed.event_id != event_id:
            raise bad_json("The event ID does not match the path.")
        if parsed.room_id != room_id:
            raise bad_json("The room ID does not match the path.")
        return parsed

    async def _verify(self, event: Event) -> Event:
        checked = (await self._checker.check_events([event]))[0]
        if isinstance(checked, PduRejected):
            raise forbidden(checked.reason)
        if checked.redacted:
            raise bad_json("The event's content hash does not match.")
        return checked.event

    # -- invites -----------------------------------------------------------------------------------------
    async def invite(
        self, origin: str, room_id: str, event_id: str, body: Any
    ) -> JsonDict:
        """v2: `{room_version, event, invite_room_state}`."""
        known_rv = await self._access.room_version_or_none(room_id)
        if known_rv is not None:
            await self._access.check_acl(room_id, origin)
        if not isinstance(body, dict) or not isinstance(body.get("event"), dict):
            raise bad_json("Missing 'event'.")
        version_id = body.get("room_version")
        rv = (
            KNOWN_ROOM_VERSIONS.get(version_id) if isinstance(version_id, str) else None
        )
        if rv is None:
            raise incompatible(str(version_id))
        if known_rv is not None and known_rv.identifier != rv.identifier:
            raise bad_json("Wrong room version for this room.")
        return await self._invite(
            origin, room_id, event_id, body["event"], rv, body.get("invite_room_state")
        )

    async def invite_v1(
        self, origin: str, room_id: str, event_id: str, pdu: Any
    ) -> JsonDict:
        """v1 (deprecated): the bare invite event, its stripped state in `unsigned`.
        Without a room version in the request, the room's own (when known here) or v1
        is assumed: v1 invites only exist for the v1/v2 event format, and the two
        versions differ only in state resolution, which an invite does not use."""
        known_rv = await self._access.room_version_or_none(room_id)
        if known_rv is not None:
            await self._access.check_acl(room_id, origin)
        if not isinstance(pdu, dict):
            raise bad_json("The invite is not an event.")
        rv = known_rv or KNOWN_ROOM_VERSIONS["1"]
        unsigned = pdu.get("unsigned")
        room_state = (
            unsigned.get("invite_room_state") if isinstance(unsigned, dict) else None
        )
        return await self._invite(origin, room_id, event_id, pdu, rv, room_state)

    async def _invite(
        self, origin: str, room_id: str, event_id: str, pdu: Any, rv: RoomVersion,
        room_state: Any,
    ) -> JsonDict:  # fmt: skip
        event = self._parse(pdu, rv, room_id, event_id)
        await self._check_invite(origin, room_id, event)
        signed = sign_event(await self._verify(event), self._server_name, self._key)
        if await self._users.get_user(event.state_key or "") is None:
            # Accepted as Synapse does (the spec has no "unknown user" answer), but
            # nothing is stored for a user who does not exist.
            logger.info(
                "invite of unknown %s to %s not stored", event.state_key, room_id
            )
        else:
            await self._store_invite(room_id, rv, signed, room_state)
        return {"event": federation_pdu(signed)}

    async def _check_invite(self, origin: str, room_id: str, event: Event) -> None:
        target = event.state_key
        if event.type != "m.room.member" or event.membership != "invite":
            raise bad_json("Not an invite event.")
        if target is None or _domain(target) != self._server_name:
            raise bad_json("The invite is not for a user of this server.")
        if _domain(event.sender) != origin:
            raise forbidden("The invite is not from the requesting server.")
        row = await self._memberships.get_membership(room_id, target)
        if row is not None and row.membership in ("join", "ban"):
            raise forbidden(f"The user's membership is {row.membership}.")

    async def _store_invite(
        self, room_id: str, rv: RoomVersion, event: Event, room_state: Any
    ) -> None:
        if not isinstance(room_state, list):
            room_state = event.unsigned.get("invite_room_state")
        stripped = [
            stripped_state_event(e)
            for e in (room_state if isinstance(room_state, list) else [])
            if isinstance(e, dict)
        ]
        data = {**event.data, "unsigned": {"invite_room_state": stripped}}
        stored = Event(data, event.event_id, rv)
        async with self._pipeline.room_session(room_id, rv) as session:
            if await self._events.get_event(event.event_id) is not None:
                return
            session.add_out_of_band_membership(stored)
            await session.commit()
        logger.info("stored invite of %s to %s", event.state_key, room_id)
