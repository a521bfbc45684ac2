"""PDUs as exchanged between servers (spec: S-S API > PDUs; Stripped state; Joining
rooms), pure helpers shared by the inbound and the serving side.

* `clean_received_pdu`: `unsigned` is not covered by hashes or signatures, so nothing in
  it is trusted: only `age` is kept, plus `invite_room_state` / `knock_room_state` on
  invite / knock member events (which the spec carries there).
* `federation_pdu`: a stored event as served to other servers, with this server's
  private `unsigned` keys removed and, when the reader may not see it, redacted.
* `stripped_state_event`: the stripped form of a state event (type, state_key, sender,
  content) used in invite and knock room state.
* `membership_template`: the unsigned event answered to `make_join` / `make_leave` /
  `make_knock`, which the joining server completes, signs and sends back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from ranvier.core.crypto.keys import SigningKey
from ranvier.core.crypto.signing import add_signature, compute_json_signature
from ranvier.core.events.event import Event
from ranvier.core.events.local_builder import MAX_DEPTH, reference
from ranvier.core.events.redaction import redact_pdu
from ranvier.core.room_versions import EventFormat, RoomVersion

__all__ = [
    "clean_received_pdu",
    "federation_pdu",
    "membership_template",
    "sign_event",
    "stripped_state_event",
]

JsonDict = dict[str, Any]

_ROOM_STATE_KEYS: Final = {"invite": "invite_room_state", "knock": "knock_room_state"}
_SERVED_UNSIGNED: Final = frozenset({"age", "invite_room_state", "knock_room_state"})


def clean_received_pdu(pdu: JsonDict) -> JsonDict:
    """A shallow copy of a received PDU whose `unsigned` holds only trusted-shape keys."""
    unsigned = pdu.get("unsigned")
    if not isinstance(unsigned, dict):
        return {k: v for k, v in pdu.items() if k != "unsigned"}
    kept: JsonDict = {}
    age = unsigned.get("age")
    if type(age) is int:
        kept["age"] = age
    content = pdu.get("content")
    membership = content.get("membership") if isinstance(content, dict) else None
    room_state_key = (
        _ROOM_STATE_KEYS.get(membership) if isinstance(membership, str) else None
    )
    if pdu.get("type") == "m.room.member" and room_state_key is not None:
        state = unsigned.get(room_state_key)
        if isinstance(state, list):
            kept[room_state_key] = [e for e in state if isinstance(e, dict)]
    out = dict(pdu)
    if kept:
        out["unsigned"] = kept
    else:
        out.pop("unsigned", None)
    return out


def federation_pdu(event: Event, *, redact: bool = False) -> JsonDict:
    """`event` as served to another server (redacted when `redact`)."""
    data = event.data
    if redact:
        return redact_pdu(data, event.room_version)
    unsigned = data.get("unsigned")
    if not isinstance(unsigned, dict) or unsigned.keys() <= _SERVED_UNSIGNED:
        return dict(data)
    out = dict(data)
    kept = {k: v for k, v in unsigned.items() if k in _SERVED_UNSIGNED}
    if kept:
        out["unsigned"] = kept
    else:
        del out["unsigned"]
    return out


def stripped_state_event(pdu: Mapping[str, Any]) -> JsonDict:
    return {
        "type": pdu.get("type"),
        "state_key": pdu.get("state_key"),
        "sender": pdu.get("sender"),
        "content": pdu.get("content", {}),
    }


def membership_template(
    room_version: RoomVersion,
    *,
    room_id: str,
    user_id: str,
    membership: str,
    origin: str,
    origin_server_ts: int,
    prev_events: Sequence[Event],
    auth_events: Sequence[Event],
    extra_content: Mapping[str, Any] | None = None,
) -> JsonDict:
    """The partial member event for `make_join` / `make_leave` / `make_knock`.

    No hashes, signatures or (rooms v1/v2) `event_id`: the requesting server adds those.
    Since room v12 the create event is not cited in `auth_events`.
    """
    content: JsonDict = {"membership": membership, **(extra_content or {})}
    depth = min(MAX_DEPTH, max((e.depth for e in prev_events), default=0) + 1)
    template: JsonDict = {
        "type": "m.room.member",
        "room_id": room_id,
        "sender": user_id,
        "state_key": user_id,
        "content": content,
        "origin": origin,
        "origin_server_ts": origin_server_ts,
        "depth": depth,
        "prev_events": [reference(e) for e in prev_events],
        "auth_events": [
            reference(e)
            for e in auth_events
            if not (
                room_version.room_id_from_create_event and e.type == "m.room.create"
            )
        ],
    }
    if room_version.event_format is not EventFormat.V1:
        # `origin` is only meaningful (and only kept by redaction) in old formats.
        template.pop("origin")
    return template


def sign_event(event: Event, server_name: str, signing_key: SigningKey) -> Event:
    """`event` with this server's signature added (over its redacted form, as every
    event signature): resident servers countersign restricted joins and invites."""
    rv = event.room_version
    redacted = redact_pdu(event.data, rv)
    signature = compute_json_signature(
        redacted, signing_key, strict=rv.strict_canonicaljson
    )
    signed = add_signature(event.data, server_name, signing_key.key_id, signature)
    return Event(signed, event.event_id, rv)
