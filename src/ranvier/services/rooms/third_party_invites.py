"""Third-party (e-mail, phone) invites.

Spec: C-S API > Room membership > Third-party invites (`POST /rooms/{roomId}/invite`
with `id_server`, `createRoom`'s `invite_3pid`); S-S API > Third-party invites
(`/3pid/onbind`, `/exchange_third_party_invite/{roomId}`); Identity Service API >
Lookups, Invitation storage, Key management.

Inviting: the address is looked up on the identity server (v2 `hash_details`, then
`lookup`, with the client's `id_access_token`). A bound address is a normal invite of
that user (local or remote). Otherwise the identity server stores the invite
(`store-invite`) and the room gets an `m.room.third_party_invite` state event (the
token as state key, display name, public keys and their validity URLs).

Completing: when the address is bound, the identity server calls `onbind` on the
invitee's server with the `signed` block (mxid, token, signature). That server turns
it into an `m.room.member` invite with `third_party_invite` content, sent by the
inviter, when it can build events for the inviter (the inviter is its user and it is
in the room); otherwise it forwards the event to a server that can
(`exchange_third_party_invite`: the inviter's server first, then the room ID's).
Before issuing, `signed` must verify with a public key of the room's
m.room.third_party_invite (the auth rules check this again) and the identity server
must still vouch for that key (`key_validity_url`), as Synapse does; the auth rules
then check the sender and the target's ban.

Error mapping (the spec defines none for identity-server failures): an identity server
the IP policy refuses is 400 `M_SERVER_NOT_TRUSTED` (the spec's code for "a
third-party server this server does not trust"); no usable answer (down, timeout,
5xx, malformed) is 502 `M_UNKNOWN` — Synapse answers 500 for timeouts, but a 500 here
means our own crash, and the fault is upstream; an identity server's own 4xx (e.g. a
bad `id_access_token`, `M_TERMS_NOT_SIGNED`) is 400 with its errcode, never its
401, which clients would take for their own token being invalid.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ranvier.core.auth import (
    CREATE_KEY,
    POWER_LEVELS_KEY,
    get_named_level,
    get_power_levels_content,
    get_user_power_level,
)
from ranvier.core.errors import MatrixError, bad_json, forbidden, invalid_param
from ranvier.core.ids import InvalidIdentifierError, domain_of, parse_user_id
from ranvier.core.threepid import (
    LOOKUP_NONE,
    LOOKUP_SHA256,
    THREEPID_MEDIA,
    lookup_value,
    public_keys_of,
    verify_third_party_signed,
)
from ranvier.federation.identity import (
    IdentityServerBlockedError,
    IdentityServerError,
    IdentityServerRefusedError,
)
from ranvier.services.events.creation import LocalEventSender
from ranvier.services.rooms.creation import MemberProfiles
from ranvier.services.rooms.membership import MembershipService
from ranvier.services.rooms.state_reader import RoomStateReader
from ranvier.storage.stores.rooms import RoomStore

__all__ = ["ThirdPartyInvite", "ThirdPartyInviteService"]

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]
TPI = "m.room.third_party_invite"
_ROOM_FIELDS = (
    ("m.room.canonical_alias", "alias", "room_alias"),
    ("m.room.avatar", "url", "room_avatar_url"),
    ("m.room.join_rules", "join_rule", "room_join_rules"),
    ("m.room.name", "name", "room_name"),
)


class IdentityServers(Protocol):
    def base_url(self, id_server: str) -> str: ...

    async def get_json(
        self,
        url: str,
        *,
        args: Mapping[str, str] | None = None,
        access_token: str | None = None,
    ) -> Any: ...

    async def post_json(
        self, url: str, body: Any, *, access_token: str | None = None
    ) -> Any: ...


class ThirdPartyInviteForwarder(Protocol):
    async def exchange_third_party_invite(
        self, destination: str, room_id: str, event: JsonDict
    ) -> None:
        """`PUT /_matrix/federation/v1/exchange_third_party_invite/{roomId}`."""
        ...


@dataclass(frozen=True, slots=True)
class ThirdPartyInvite:
    """One `invite_3pid` entry (or the body of a third-party `/invite`)."""

    id_server: str
    id_access_token: str
    medium: str
    address: str


def _identity_error(e: IdentityServerError) -> MatrixError:
    if isinstance(e, IdentityServerBlockedError):
        return MatrixError(
            400, "M_SERVER_NOT_TRUSTED", f"The identity server is not allowed: {e}"
        )
    if isinstance(e, IdentityServerRefusedError) and 400 <= e.status < 500:
        return MatrixError(
            400, e.errcode or "M_UNKNOWN", f"The identity server refused: {e}"
        )
    return MatrixError(502, "M_UNKNOWN", f"The identity server is unavailable: {e}")


class ThirdPartyInviteService:
    def __init__(
        self,
        *,
        server_name: str,
        sender: LocalEventSender,
        membership: MembershipService,
        rooms: RoomStore,
        state: RoomStateReader,
        profiles: MemberProfiles,
        identity: IdentityServers,
    ) -> None:
        self._server_name = server_name
        self._sender = sender
        self._membership = membership
        self._rooms = rooms
        self._state = state
        self._profiles = profiles
        self._identity = identity
        # Bound once outbound federation exists (None: this server does not federate).
        self.forwarder: ThirdPartyInviteForwarder | None = None

    def _is_mine(self, user_id: str) -> bool:
        try:
            return domain_of(user_id) == self._server_name
        except InvalidIdentifierError:
            return False

    # -- inviting ------------------------------------------------------------------------
    async def invite(self, sender: str, room_id: str, invite: ThirdPartyInvite) -> None:
        if invite.medium not in THREEPID_MEDIA:
            raise invalid_param(f"Unknown medium {invite.medium!r}.")
        if await self._rooms.get_room_version(room_id) is None:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown room.")
        # Only members can invite (the auth rules say so too): refuse before telling
        # the identity server anything about this room.
        member = await self._rooms.get_membership(room_id, sender)
        if member is None or member.membership != "join":
            raise forbidden("You are not in this room.")
        state = await self._state.get_current_state_events(
            room_id, [CREATE_KEY, POWER_LEVELS_KEY]
        )
        # m.room.third_party_invite needs the invite level (v11 auth rule 6).
        if get_user_power_level(sender, state) < get_named_level(
            get_power_levels_content(state), "invite"
        ):
            raise forbidden("You may not invite users to this room.")
        try:
            base = self._identity.base_url(invite.id_server)
            mxid = await self._lookup(base, invite)
            if mxid is not None:
                logger.info("3pid invite to %s: bound to %s", room_id, mxid)
                await self._membership.invite(sender, room_id, mxid)
                return
            stored = await self._store_invite(base, sender, room_id, invite)
        except IdentityServerError as e:
            logger.info("3pid invite to %s failed: %s", room_id, e)
            raise _identity_error(e) from None
        await self._sender.send(
            room_id,
            sender=sender,
            event_type=TPI,
            state_key=stored.pop("token"),
            content=stored,
        )

    async def _lookup(self, base: str, invite: ThirdPartyInvite) -> str | None:
        details = await self._identity.get_json(
            base + "/_matrix/identity/v2/hash_details",
            access_token=invite.id_access_token,
        )
        algorithms = details.get("algorithms") if isinstance(details, dict) else None
        pepper = details.get("lookup_pepper") if isinstance(details, dict) else None
        if not isinstance(algorithms, list) or not isinstance(pepper, str):
            raise MatrixError(
                502, "M_UNKNOWN", "The identity server sent invalid hash details."
            )
        if LOOKUP_SHA256 in algorithms:
            algorithm = LOOKUP_SHA256
        elif LOOKUP_NONE in algorithms:
            algorithm = LOOKUP_NONE
        else:
            raise MatrixError(
                400,
                "M_UNKNOWN",
                "The identity server supports no lookup algorithm we know.",
            )
        value = lookup_value(algorithm, invite.address, invite.medium, pepper)
        answer = await self._identity.post_json(
            base + "/_matrix/identity/v2/lookup",
            {"addresses": [value], "algorithm": algorithm, "pepper": pepper},
            access_token=invite.id_access_token,
        )
        mappings = answer.get("mappings") if isinstance(answer, dict) else None
        mxid = mappings.get(value) if isinstance(mappings, dict) else None
        if not isinstance(mxid, str):
            return None
        try:
            parse_user_id(mxid)
        except InvalidIdentifierError:
            logger.warning("identity server mapped an address to %r", mxid)
            return None
        return mxid

    async def _store_invite(
        self, base: str, sender: str, room_id: str, invite: ThirdPartyInvite
    ) -> JsonDict:
        """The m.room.third_party_invite content, plus "token"."""
        body: JsonDict = {
            "medium": invite.medium,
            "address": invite.address,
            "room_id": room_id,
            "sender": sender,
            **await self._invite_context(sender, room_id),
        }
        answer = await self._identity.post_json(
            base + "/_matrix/identity/v2/store-invite",
            body,
            access_token=invite.id_access_token,
        )
        if not isinstance(answer, dict):
            raise MatrixError(502, "M_UNKNOWN", "Invalid store-invite answer.")
        token, display_name = answer.get("token"), answer.get("display_name")
        if not isinstance(token, str) or not token or not isinstance(display_name, str):
            raise MatrixError(502, "M_UNKNOWN", "Invalid store-invite answer.")
        default_url = base + "/_matrix/identity/v2/pubkey/isvalid"
        keys = [
            {"public_key": k, "key_validity_url": url or default_url}
            for k, url in public_keys_of({"public_keys": answer.get("public_keys", [])})
        ]
        single = answer.get("public_key")
        fallback = (
            {"public_key": single, "key_validity_url": default_url}
            if isinstance(single, str)
            else (keys[0] if keys else None)
        )
        if fallback is None:
            raise MatrixError(502, "M_UNKNOWN", "The identity server sent no key.")
        return {
            "token": token,
            "display_name": display_name,
            "public_keys": keys or [fallback],
            # For clients and servers that only know the single key.
            "public_key": fallback["public_key"],
            "key_validity_url": fallback["key_validity_url"],
        }

    async def _invite_context(self, sender: str, room_id: str) -> JsonDict:
        """What the identity server may show in its invitation (e-mail)."""
        out: JsonDict = {}
        state = await self._state.get_current_state_events(
            room_id, [(t, "") for t, _, _ in _ROOM_FIELDS] + [("m.room.create", "")]
        )
        for etype, field, name in _ROOM_FIELDS:
            event = state.get((etype, ""))
            value = event.content.get(field) if event is not None else None
            if isinstance(value, str):
                out[name] = value
        create = state.get(("m.room.create", ""))
        room_type = create.content.get("type") if create is not None else None
        if isinstance(room_type, str):
            out["room_type"] = room_type
        profile = (await self._profiles.get_member_profiles([sender])).get(sender, {})
        out["sender_display_name"] = profile.get("displayname") or sender
        avatar = profile.get("avatar_url")
        if isinstance(avatar, str):
            out["sender_avatar_url"] = avatar
        return out

    # -- completing ------------------------------------------------------------------------
    async def on_bind(self, body: Any) -> None:
        """`PUT /3pid/onbind` from an identity server: issue each pending invite."""
        if not isinstance(body, dict):
            raise bad_json("Expected an object.")
        invites = body.get("invites", [])
        if not isinstance(invites, list):
            raise bad_json("'invites' must be a list.")
        last_error: MatrixError | None = None
        for invite in invites:
            try:
                await self._on_bind_invite(invite)
            except MatrixError as e:
                logger.info("3pid invite from onbind not issued: %s", e.message)
                last_error = e
        if last_error is not None:
            raise last_error

    async def _on_bind_invite(self, invite: Any) -> None:
        if not isinstance(invite, dict):
            raise bad_json("Invites must be objects.")
        signed, room_id = invite.get("signed"), invite.get("room_id")
        sender, mxid = invite.get("sender"), invite.get("mxid")
        if not isinstance(signed, dict) or not isinstance(signed.get("token"), str):
            raise bad_json("Invite without a signed token.")
        if (
            not isinstance(room_id, str)
            or not isinstance(sender, str)
            or not isinstance(mxid, str)
        ):
            raise bad_json("Invite without room_id, sender or mxid.")
        # The identity server tells the invitee's server; any other user's invites are
        # not ours to complete.
        if not self._is_mine(mxid) or signed.get("mxid") != mxid:
            raise forbidden("The invite is not for a user of this server.")
        await self.exchange(sender, mxid, room_id, signed)

    def _member_event(
        self, sender: str, target: str, room_id: str, signed: Mapping[str, Any]
    ) -> JsonDict:
        return {
            "type": "m.room.member",
            "room_id": room_id,
            "sender": sender,
            "state_key": target,
            "content": {
                "membership": "invite",
                "third_party_invite": {"signed": dict(signed)},
            },
        }

    async def exchange(
        self, sender: str, target: str, room_id: str, signed: Mapping[str, Any]
    ) -> None:
        """Turn a signed third-party invite into a membership invite, here or on a
        server that can build events for `sender`."""
        if self._is_mine(sender) and await self._can_build(room_id):
            await self._issue(sender, target, room_id, signed)
            return
        if self.forwarder is None:
            raise forbidden("This server is not in the room and does not federate.")
        event = self._member_event(sender, target, room_id, signed)
        destinations: list[str] = []
        for identifier in (sender, room_id):
            with contextlib.suppress(InvalidIdentifierError):
                server = domain_of(identifier)
                if server != self._server_name and server not in destinations:
                    destinations.append(server)
        if not destinations:
            raise forbidden("No server can issue this invite.")
        last: Exception | None = None
        for destination in destinations:
            try:
                await self.forwarder.exchange_third_party_invite(
                    destination, room_id, event
                )
                return
            except MatrixError as e:
                last = e
            except Exception as e:  # network or remote refusal: try the next one
                logger.info("exchange_third_party_invite via %s: %s", destination, e)
                last = e
        if isinstance(last, MatrixError):
            raise last
        raise MatrixError(502, "M_UNKNOWN", f"No server could issue the invite: {last}")

    async def on_exchange(self, origin: str, room_id: str, body: Any) -> None:
        """`PUT /exchange_third_party_invite/{roomId}` from another server."""
        if not isinstance(body, dict):
            raise bad_json("Expected an object.")
        content = body.get("content")
        tpi = content.get("third_party_invite") if isinstance(content, dict) else None
        signed = tpi.get("signed") if isinstance(tpi, dict) else None
        sender, target = body.get("sender"), body.get("state_key")
        if (
            body.get("type") != "m.room.member"
            or body.get("room_id") != room_id
            or not isinstance(content, dict)
            or content.get("membership") != "invite"
            or not isinstance(signed, dict)
            or not isinstance(sender, str)
            or not isinstance(target, str)
        ):
            raise bad_json("Not a third-party membership invite for this room.")
        try:
            parse_user_id(target)
        except InvalidIdentifierError as e:
            raise bad_json(str(e)) from None
        # We can only build (and sign) events for our own users, in rooms we are in.
        if not self._is_mine(sender):
            raise forbidden("The inviter is not a user of this server.")
        if not await self._can_build(room_id):
            raise forbidden("This server is not in the room.")
        logger.info("exchanging a 3pid invite of %s from %s", target, origin)
        await self._issue(sender, target, room_id, signed)

    async def _can_build(self, room_id: str) -> bool:
        if await self._rooms.get_room_version(room_id) is None:
            return False
        joined = await self._rooms.get_joined_user_ids(room_id)
        return any(self._is_mine(u) for u in joined)

    async def _issue(
        self, sender: str, target: str, room_id: str, signed: Mapping[str, Any]
    ) -> None:
        token = signed.get("token")
        if signed.get("mxid") != target or not isinstance(token, str):
            raise forbidden("The signed invite does not name this user.")
        invite = await self._state.get_current_state_event(room_id, TPI, token)
        if invite is None:
            raise forbidden("No third-party invite with this token in the room.")
        if invite.sender != sender:
            raise forbidden("The third-party invite was sent by someone else.")
        current = await self._rooms.get_membership(room_id, target)
        if current is not None and current.membership in ("invite", "join"):
            # The auth rules would let a replayed onbind (anyone can send one) turn a
            # join back into an invite; an existing invite needs no second one.
            logger.info("3pid invite of %s: already %s", target, current.membership)
            return
        await self._check_signed(signed, invite.content)
        display_name = invite.content.get("display_name")
        third_party: JsonDict = {"signed": dict(signed)}
        if isinstance(display_name, str):
            third_party["display_name"] = display_name
        await self._membership.invite(
            sender, room_id, target, third_party_invite=third_party
        )

    async def _check_signed(
        self, signed: Mapping[str, Any], content: Mapping[str, Any]
    ) -> None:
        """A key of the invite event verifies `signed`, and its identity server still
        vouches for it (spec: Third-party invites > Server behaviour)."""
        last: MatrixError | None = None
        for public_key, url in public_keys_of(content):
            if not verify_third_party_signed(signed, public_key):
                continue
            if url is None:
                return
            try:
                answer = await self._identity.get_json(
                    url, args={"public_key": public_key}
                )
            except IdentityServerBlockedError as e:
                last = forbidden(f"The key validity URL is not allowed: {e}")
                continue
            except IdentityServerError as e:
                last = MatrixError(
                    502, "M_UNKNOWN", f"The invite's key could not be checked: {e}"
                )
                continue
            if isinstance(answer, dict) and answer.get("valid") is True:
                return
            last = forbidden("The identity server no longer vouches for this key.")
        raise last or forbidden("The invite is not signed by the identity server.")


def parse_third_party_invites(entries: Sequence[Any]) -> list[ThirdPartyInvite]:
    """`invite_3pid` entries; each needs all four fields (spec: Invite3pid)."""
    out: list[ThirdPartyInvite] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise bad_json("'invite_3pid' entries must be objects.")
        out.append(third_party_invite_from(entry))
    return out


def third_party_invite_from(body: Mapping[str, Any]) -> ThirdPartyInvite:
    values = []
    for name in ("id_server", "id_access_token", "medium", "address"):
        value = body.get(name)
        if value is None:
            raise MatrixError(400, "M_MISSING_PARAM", f"Missing '{name}'.")
        if not isinstance(value, str):
            raise bad_json(f"'{name}' must be a string.")
        values.append(value)
    return ThirdPartyInvite(*values)
