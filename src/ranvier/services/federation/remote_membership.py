"""Membership in rooms this server is not (yet) in, done through a resident server -
the joining / originating side of the spec's membership handshakes (S-S API > Joining
Rooms, Knocking, Inviting, Leaving).

* join: `GET /make_join` (offering every room version we support) on each candidate
  server in turn until one answers; complete, sign and `PUT /v2/send_join` the template;
  check every returned state and auth chain event (format, signatures, hashes, then auth
  rules against its own auth events, in auth order) and persist them as outliers; then
  persist the join through the ingest pipeline with the returned state as the state
  before it. A restricted join comes back countersigned by the authorising server: that
  version (its signature checked) is the one kept.
* `send_join`, `send_leave` and `invite` fall back to their deprecated v1 endpoints
  (answer `[200, {...}]`) when the server does not know v2 (404 / 400 `M_UNRECOGNIZED`,
  or a bare 404, as Synapse); v1 `invite` only for room versions 1-2. `send_knock`
  only ever had v1.
* leave / knock: `make_leave`+`v2/send_leave`, `make_knock`+`v1/send_knock`; when we are
  not in the room (rejecting a remote invite, knocking) the result is stored as an
  out-of-band membership, so the user's sync shows it.
* invite of a remote user into a room we are in: the event is built locally, sent with
  stripped room state to the invitee's server (`PUT /v2/invite`), and the copy it
  returns - carrying its signature, which is checked - is what gets persisted.

No room lock or database transaction is held while a request is in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from ranvier.core.auth import AuthError
from ranvier.core.errors import MatrixError, forbidden
from ranvier.core.events.event import Event, StateKey
from ranvier.core.events.federation_format import stripped_state_event
from ranvier.core.ids import InvalidIdentifierError, domain_of
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS, EventFormat, RoomVersion
from ranvier.federation.client import QueryArgs, federation_path
from ranvier.federation.errors import FederationError
from ranvier.services.events.pipeline import EventPipeline, RoomSession
from ranvier.services.federation.pdu_checks import CheckedPdu, PduChecker
from ranvier.services.federation.remote_events import order_by_auth
from ranvier.storage.stores.event_rows import NewRoom
from ranvier.util.clock import Clock

logger = logging.getLogger(__name__)

__all__ = [
    "FederationRequests",
    "PipelineOutlierSink",
    "RemoteMembershipService",
    "RemoteProtocolError",
]

JsonDict = dict[str, Any]
MEMBER: Final = "m.room.member"
SUPPORTED_VERSIONS: Final = tuple(KNOWN_ROOM_VERSIONS)
# Stripped state sent with invites (Synapse's `room_prejoin_state` defaults).
INVITE_STATE_KEYS: Final = (
    ("m.room.create", ""),
    ("m.room.join_rules", ""),
    ("m.room.canonical_alias", ""),
    ("m.room.avatar", ""),
    ("m.room.encryption", ""),
    ("m.room.name", ""),
    ("m.room.topic", ""),
)


class RemoteProtocolError(Exception):
    """A resident server's answer we cannot use (malformed, or failing checks)."""


class FederationRequests(Protocol):
    async def get_json(
        self, destination: str, path: str, *, args: QueryArgs | None = None, **kw: Any
    ) -> Any: ...

    async def put_json(
        self, destination: str, path: str, content: Any, **kw: Any
    ) -> Any: ...


class EventSigner(Protocol):
    def finalize(self, pdu: Mapping[str, Any], room_version: RoomVersion) -> Event: ...

    async def build(
        self,
        session: RoomSession,
        *,
        event_type: str,
        sender: str,
        content: Mapping[str, Any],
        state_key: str | None = None,
        redacts: str | None = None,
        now_ms: int,
    ) -> Event: ...


class CurrentMembership(Protocol):
    @property
    def membership(self) -> str: ...

    @property
    def event_id(self) -> str: ...


class KnownRooms(Protocol):
    async def get_room_version(self, room_id: str) -> RoomVersion | None: ...

    async def get_membership(
        self, room_id: str, user_id: str
    ) -> CurrentMembership | None: ...


class StoredEvents(Protocol):
    async def get_events(self, event_ids: Iterable[str]) -> Mapping[str, Any]: ...


class ForwardingSkip(Protocol):
    def skip_once(self, event_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _Template:
    server: str
    room_version: RoomVersion
    pdu: JsonDict


def candidate_servers(servers: Iterable[str], own: str) -> list[str]:
    """Servers to try, in order, without duplicates or ourselves."""
    return [s for s in dict.fromkeys(servers) if s and s != own]


def _remote_error(errors: Sequence[Exception], what: str) -> MatrixError:
    """The error a client sees once every candidate server failed: a remote's 4xx
    Matrix error passes through (its own words); anything else is a plain 502 - the
    details (addresses, exception names, backoff times) are logged, never answered."""
    for e in reversed(errors):
        if isinstance(e, FederationError) and e.status and 400 <= e.status < 500:
            message = e.remote_message or f"The remote server refused to {what}."
            return MatrixError(e.status, e.errcode or "M_UNKNOWN", message)
    if not errors:
        return MatrixError(404, "M_NOT_FOUND", f"No known servers to {what} through.")
    return MatrixError(
        502, "M_UNKNOWN", f"Failed to {what} over federation: no server could be used."
    )


def _unwrap_v1(answer: Any) -> Any:
    """v1 `send_join`/`send_leave`/`invite` answer `[200, {...}]` (a historical Synapse
    bug the spec kept for these endpoints); the body is the second element."""
    if isinstance(answer, list) and len(answer) == 2 and answer[0] == 200:
        return answer[1]
    return answer


class RemoteMembershipService:
    def __init__(
        self,
        *,
        server_name: str,
        client: FederationRequests,
        checker: PduChecker,
        signer: EventSigner,
        pipeline: EventPipeline,
        rooms: KnownRooms,
        events: StoredEvents,
        forwarding: ForwardingSkip,
        clock: Clock,
        random_id: Callable[[], str],
    ) -> None:
        self._server_name = server_name
        self._client = client
        self._checker = checker
        self._signer = signer
        self._pipeline = pipeline
        self._rooms = rooms
        self._events = events
        self._forwarding = forwarding
        self._clock = clock
        self._random_id = random_id

    # -- templates -----------------------------------------------------------------------
    async def _make(
        self, kind: str, server: str, room_id: str, user_id: str
    ) -> _Template:
        path = federation_path(
            f"/_matrix/federation/v1/make_{kind}/{{}}/{{}}", room_id, user_id
        )
        args: QueryArgs | None = (
            {"ver": SUPPORTED_VERSIONS} if kind != "leave" else None
        )
        answer = await self._client.get_json(server, path, args=args)
        if not isinstance(answer, dict) or not isinstance(answer.get("event"), dict):
            raise RemoteProtocolError(f"{server}: make_{kind} answer has no event")
        version = answer.get("room_version", "1")
        rv = KNOWN_ROOM_VERSIONS.get(version) if isinstance(version, str) else None
        if rv is None:
            raise RemoteProtocolError(f"{server}: unsupported room version {version!r}")
        return _Template(server, rv, answer["event"])

    async def _put_membership(
        self, server: str, kind: str, room_id: str, event: Event,
        body_v2: Any, body_v1: Any | None = None,
    ) -> Any:  # fmt: skip
        """`PUT /v2/{kind}/…`, falling back to the deprecated `/v1/{kind}/…` when the
        server does not know the v2 endpoint (as Synapse: `is_unknown_endpoint_answer`).
        `body_v1`: the v1 body when it differs (invites); the answer is unwrapped."""
        v2 = federation_path(
            f"/_matrix/federation/v2/{kind}/{{}}/{{}}", room_id, event.event_id
        )
        try:
            return await self._client.put_json(server, v2, body_v2)
        except FederationError as e:
            if not e.unknown_endpoint:
                raise
            logger.info("%s does not serve v2 %s: trying v1", server, kind)
        v1 = federation_path(
            f"/_matrix/federation/v1/{kind}/{{}}/{{}}", room_id, event.event_id
        )
        body = body_v2 if body_v1 is None else body_v1
        return _unwrap_v1(await self._client.put_json(server, v1, body))

    def _complete(
        self, template: _Template, room_id: str, user_id: str, membership: str,
        content: Mapping[str, Any],
    ) -> Event:  # fmt: skip
        """Our member event from a resident's template: the DAG position (prev/auth
        events, depth) and authorising content are the resident's; the rest is ours."""
        t = template.pdu
        t_content = t.get("content")
        if (
            t.get("type") != MEMBER
            or t.get("room_id") != room_id
            or t.get("sender") != user_id
            or t.get("state_key") != user_id
            or not isinstance(t_content, dict)
            or t_content.get("membership") != membership
        ):
            raise RemoteProtocolError(
                f"{template.server}: make_{membership} template is not our {membership}"
            )
        rv = template.room_version
        pdu: JsonDict = {
            "type": MEMBER,
            "room_id": room_id,
            "sender": user_id,
            "state_key": user_id,
            "content": {**t_content, **content, "membership": membership},
            "depth": t.get("depth"),
            "prev_events": t.get("prev_events"),
            "auth_events": t.get("auth_events"),
            "origin_server_ts": self._clock.time_msec(),
        }
        if rv.event_format is EventFormat.V1:
            pdu["event_id"] = f"${self._random_id()}:{self._server_name}"
            pdu["origin"] = self._server_name
        try:
            return self._signer.finalize(pdu, rv)
        except MatrixError as e:
            raise RemoteProtocolError(f"{template.server}: bad template: {e}") from None

    # -- join ----------------------------------------------------------------------------
    async def join(
        self, user_id: str, room_id: str, servers: Sequence[str], content: JsonDict
    ) -> str:
        """Join `room_id` through the first of `servers` that lets us; returns the join
        event's ID. Raises `MatrixError` when none does."""
        errors: list[Exception] = []
        for server in candidate_servers(servers, self._server_name):
            try:
                return await self._join_via(server, user_id, room_id, content)
            except (FederationError, RemoteProtocolError) as e:
                logger.info("joining %s via %s failed: %s", room_id, server, e)
                errors.append(e)
                if isinstance(e, FederationError) and e.status == 403:
                    break  # refused by the room's rules, not by a broken server
        raise _remote_error(errors, "join the room")

    async def _join_via(
        self, server: str, user_id: str, room_id: str, content: JsonDict
    ) -> str:
        template = await self._make("join", server, room_id, user_id)
        rv = template.room_version
        event = self._complete(template, room_id, user_id, "join", content)
        answer = await self._put_membership(
            server, "send_join", room_id, event, event.data
        )
        if not isinstance(answer, dict):
            raise RemoteProtocolError(f"{server}: send_join answer is not an object")
        event = await self._countersigned(server, event, answer.get("event"))
        state = self._parse_batch(room_id, _pdu_list(answer, "state", server), rv)
        chain = self._parse_batch(room_id, _pdu_list(answer, "auth_chain", server), rv)
        checked = await self._check_batch([*state, *chain])
        state_ids = {
            e.state_tuple: e.event_id
            for e in state
            if e.event_id in checked and e.is_state()
        }
        if ("m.room.create", "") not in state_ids:
            raise RemoteProtocolError(f"{server}: send_join state has no create event")
        if content.get("kind") == "guest":
            await self._check_guest_access(server, room_id, user_id, checked, state_ids)
        await self._persist_join(room_id, rv, event, checked, state_ids)
        logger.info("%s joined %s via %s", user_id, room_id, server)
        return event.event_id

    async def _check_guest_access(
        self,
        server: str,
        room_id: str,
        user_id: str,
        checked: Mapping[str, Event],
        state_ids: Mapping[StateKey, str],
    ) -> None:
        """Guests are a local notion the resident does not check: the room's
        `m.room.guest_access` is only known from the `send_join` state. If it is not
        `can_join`, our join is withdrawn again (best effort) and refused."""
        access_id = state_ids.get(("m.room.guest_access", ""))
        access = checked.get(access_id) if access_id is not None else None
        if access is not None and access.content.get("guest_access") == "can_join":
            return
        try:
            template = await self._make("leave", server, room_id, user_id)
            leave = self._complete(template, room_id, user_id, "leave", {})
            path = federation_path(
                "/_matrix/federation/v2/send_leave/{}/{}", room_id, leave.event_id
            )
            await self._client.put_json(server, path, leave.data)
        except (FederationError, RemoteProtocolError) as e:
            logger.info("withdrawing guest join to %s failed: %s", room_id, e)
        raise MatrixError(
            403, "M_FORBIDDEN", "Guest access is not allowed in this room."
        )

    async def _countersigned(self, server: str, ours: Event, returned: Any) -> Event:
        """The resident's copy of our join (restricted rooms: it adds the authorising
        server's signature). It must be the same event with valid signatures."""
        if not isinstance(returned, dict):
            return ours
        parsed = self._checker.parse(returned, ours.room_version)
        if not isinstance(parsed, Event) or parsed.event_id != ours.event_id:
            raise RemoteProtocolError(f"{server}: send_join returned another event")
        [result] = await self._checker.check_events([parsed])
        if not isinstance(result, CheckedPdu) or result.redacted:
            raise RemoteProtocolError(f"{server}: countersigned join does not verify")
        return result.event

    def _parse_batch(
        self, room_id: str, pdus: Sequence[Any], rv: RoomVersion
    ) -> list[Event]:
        out = []
        for pdu in pdus:
            parsed = self._checker.parse(pdu, rv)
            if isinstance(parsed, Event) and parsed.room_id == room_id:
                out.append(parsed)
            else:
                logger.info("dropping a bad event from %s: %s", room_id, parsed)
        return out

    async def _check_batch(self, events: Sequence[Event]) -> dict[str, Event]:
        """Signatures and hashes of a batch: events that fail are dropped (and anything
        citing them then fails its auth check). Redacted ones (hash mismatch) stay."""
        unique = list({e.event_id: e for e in events}.values())
        out: dict[str, Event] = {}
        for result in await self._checker.check_events(unique):
            if isinstance(result, CheckedPdu):
                out[result.event.event_id] = result.event
        return out

    async def _persist_join(
        self,
        room_id: str,
        rv: RoomVersion,
        join: Event,
        checked: Mapping[str, Event],
        state_ids: Mapping[StateKey, str],
    ) -> None:
        stored = await self._events.get_events(list(checked))
        new_room = None
        if await self._rooms.get_room_version(room_id) is None:
            create = checked[state_ids[("m.room.create", "")]]
            new_room = NewRoom(
                room_id, rv.identifier, create.sender, self._clock.time_msec()
            )
        async with self._pipeline.room_session(
            room_id, rv, new_room=new_room
        ) as session:
            rejected = await _add_outliers(session, checked, stored.keys())
            state = {k: v for k, v in state_ids.items() if v not in rejected}
            self._forwarding.skip_once(join.event_id)
            try:
                await session.add_event(join, local=True, state_before=state)
            except AuthError as e:
                raise RemoteProtocolError(
                    f"our join does not pass the room's auth rules: {e.reason}"
                ) from None
            await session.commit()

    # -- leave / knock -----------------------------------------------------------------------
    async def leave(
        self, user_id: str, room_id: str, servers: Sequence[str], content: JsonDict
    ) -> str:
        """Leave (reject an invite to / retract a knock on) a room we are not in."""
        errors: list[Exception] = []
        for server in candidate_servers(servers, self._server_name):
            try:
                template = await self._make("leave", server, room_id, user_id)
                event = self._complete(template, room_id, user_id, "leave", content)
                await self._put_membership(
                    server, "send_leave", room_id, event, event.data
                )
            except (FederationError, RemoteProtocolError) as e:
                logger.info("leaving %s via %s failed: %s", room_id, server, e)
                errors.append(e)
                continue
            await self._persist_out_of_band(event)
            return event.event_id
        local = await self._local_out_of_band_leave(user_id, room_id, content)
        if local is not None:
            return local
        raise _remote_error(errors, "leave the room")

    async def _local_out_of_band_leave(
        self, user_id: str, room_id: str, content: JsonDict
    ) -> str | None:
        """No resident server took the rejection (down, gone, refusing): like Synapse,
        store a leave of our own on top of the invite (or knock), so it disappears
        for the user. Nobody else learns of it; None without such a membership."""
        membership = await self._rooms.get_membership(room_id, user_id)
        if membership is None or membership.membership not in ("invite", "knock"):
            return None
        stored = (await self._events.get_events([membership.event_id])).get(
            membership.event_id
        )
        if stored is None:
            return None
        invite: Event = stored.event
        rv = invite.room_version
        pdu: JsonDict = {
            "type": MEMBER,
            "room_id": room_id,
            "sender": user_id,
            "state_key": user_id,
            "content": {**content, "membership": "leave"},
            "depth": invite.depth + 1,
            "prev_events": [invite.event_id],
            "auth_events": [invite.event_id],
            "origin_server_ts": self._clock.time_msec(),
        }
        if rv.event_format is EventFormat.V1:
            pdu["event_id"] = f"${self._random_id()}:{self._server_name}"
            pdu["origin"] = self._server_name
            pdu["prev_events"] = [[invite.event_id, {}]]
            pdu["auth_events"] = [[invite.event_id, {}]]
        event = self._signer.finalize(pdu, rv)
        await self._persist_out_of_band(event)
        logger.info("%s left %s out of band (no server reachable)", user_id, room_id)
        return event.event_id

    async def knock(
        self, user_id: str, room_id: str, servers: Sequence[str], content: JsonDict
    ) -> str:
        """Knock on a room we are not in; returns the knock's event ID. The resident's
        `knock_room_state` is kept in the knock's `unsigned` for the user's sync."""
        errors: list[Exception] = []
        for server in candidate_servers(servers, self._server_name):
            try:
                template = await self._make("knock", server, room_id, user_id)
                event = self._complete(template, room_id, user_id, "knock", content)
                path = federation_path(
                    "/_matrix/federation/v1/send_knock/{}/{}", room_id, event.event_id
                )
                answer = await self._client.put_json(server, path, event.data)
            except (FederationError, RemoteProtocolError) as e:
                logger.info("knocking on %s via %s failed: %s", room_id, server, e)
                errors.append(e)
                continue
            state = answer.get("knock_room_state") if isinstance(answer, dict) else None
            room_state = (
                [s for s in state if isinstance(s, dict)]
                if isinstance(state, list)
                else []
            )
            await self._persist_out_of_band(event, {"knock_room_state": room_state})
            return event.event_id
        raise _remote_error(errors, "knock on the room")

    async def _persist_out_of_band(
        self, event: Event, unsigned: JsonDict | None = None
    ) -> None:
        if unsigned:
            data = {**event.data, "unsigned": {**event.unsigned, **unsigned}}
            event = Event(data, event.event_id, event.room_version)
        rv = event.room_version
        new_room = None
        if await self._rooms.get_room_version(event.room_id) is None:
            new_room = NewRoom(
                event.room_id, rv.identifier, "", self._clock.time_msec()
            )
        self._forwarding.skip_once(event.event_id)
        async with self._pipeline.room_session(
            event.room_id, rv, new_room=new_room
        ) as session:
            if event.event_id in await self._events.get_events([event.event_id]):
                return
            session.add_out_of_band_membership(event)
            await session.commit()

    # -- invite ------------------------------------------------------------------------------
    async def invite(
        self, sender: str, room_id: str, target: str, content: JsonDict
    ) -> str:
        """Invite a user of another server into a room we are in."""
        rv = await self._rooms.get_room_version(room_id)
        if rv is None:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown room.")
        async with self._pipeline.room_session(room_id, rv) as session:
            event = await self._signer.build(
                session, event_type=MEMBER, sender=sender, content=content,
                state_key=target, now_ms=self._clock.time_msec(),
            )  # fmt: skip
            try:
                # Checked now, so a refused invite never reaches the other server.
                await session.add_event(event, local=True)
            except AuthError as e:
                raise forbidden(e.reason) from None
            stripped = await self._invite_room_state(session, sender)
        signed = await self._send_invite(event, stripped)
        async with self._pipeline.room_session(room_id, rv) as session:
            try:
                await session.add_event(signed, local=True)
            except AuthError as e:
                raise forbidden(e.reason) from None
            await session.commit()
        return signed.event_id

    async def _invite_room_state(
        self, session: RoomSession, sender: str
    ) -> list[JsonDict]:
        keys = [*INVITE_STATE_KEYS, (MEMBER, sender)]
        state = await session.get_current_state(keys)
        return [stripped_state_event(state[k].data) for k in keys if k in state]

    async def _send_invite(self, event: Event, stripped: list[JsonDict]) -> Event:
        target = event.state_key or ""
        try:
            server = domain_of(target)
        except InvalidIdentifierError:
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid user ID.") from None
        body = {
            "room_version": event.room_version.identifier,
            "event": event.data,
            "invite_room_state": stripped,
        }
        # v1 carries the bare event, its stripped state in `unsigned`; it only
        # exists for room versions 1 and 2 (their event format), as in Synapse.
        body_v1 = None
        if event.room_version.event_format is EventFormat.V1:
            body_v1 = {
                **event.data,
                "unsigned": {**event.unsigned, "invite_room_state": stripped},
            }
        try:
            if body_v1 is None:
                path = federation_path(
                    "/_matrix/federation/v2/invite/{}/{}", event.room_id, event.event_id
                )
                answer = await self._client.put_json(server, path, body)
            else:
                answer = await self._put_membership(
                    server, "invite", event.room_id, event, body, body_v1
                )
        except FederationError as e:
            logger.info("inviting %s via %s failed: %s", target, server, e)
            raise _remote_error([e], "invite the user") from None
        returned = answer.get("event") if isinstance(answer, dict) else None
        parsed = (
            self._checker.parse(returned, event.room_version)
            if isinstance(returned, dict)
            else None
        )
        if not isinstance(parsed, Event) or parsed.event_id != event.event_id:
            raise MatrixError(
                502, "M_UNKNOWN", f"{server} answered the invite wrongly."
            )
        [result] = await self._checker.check_events([parsed])
        if (
            not isinstance(result, CheckedPdu)
            or result.redacted
            or server not in result.event.get("signatures", {})
        ):
            raise MatrixError(502, "M_UNKNOWN", f"{server} did not sign the invite.")
        return result.event


def _pdu_list(answer: Mapping[str, Any], key: str, server: str) -> list[Any]:
    value = answer.get(key, [])
    if not isinstance(value, list):
        raise RemoteProtocolError(f"{server}: '{key}' is not a list")
    return value


async def _add_outliers(
    session: RoomSession, checked: Mapping[str, Event], stored: Iterable[str]
) -> set[str]:
    """Queue the not yet stored events as outliers, auth events first; returns the IDs
    of those that failed their auth check (stored as rejected)."""
    skip = set(stored)
    rejected: set[str] = set()
    for event in order_by_auth(checked.values()):
        if event.event_id in skip:
            continue
        if not await session.add_outlier(event):
            rejected.add(event.event_id)
    return rejected


class PipelineOutlierSink:
    """Stores checked remote events as outliers through the room's pipeline session
    (each checked against its own auth events there)."""

    def __init__(self, pipeline: EventPipeline, events: StoredEvents) -> None:
        self._pipeline = pipeline
        self._events = events

    async def add_outliers(
        self, room_id: str, room_version: RoomVersion, events: Sequence[Event]
    ) -> set[str]:
        """Returns the IDs of those that failed their auth check."""
        by_id = {e.event_id: e for e in events}
        async with self._pipeline.room_session(room_id, room_version) as session:
            stored = await self._events.get_events(list(by_id))
            rejected = await _add_outliers(session, by_id, stored.keys())
            await session.commit()
        return rejected
