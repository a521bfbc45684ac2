"""Assemble the unsigned PDU of a locally created event (pure).

The caller chooses the prev events (the room's forward extremities) and the auth events
(the auth events selection over the state before the event); this module lays them out in
the room version's event format. `finalize_local_event` then hashes, signs and identifies.

Spec: S-S API > PDUs; Rooms > vN > Event format. Since room v12 (MSC4291) the create event
has no `room_id` and the create event is not cited in `auth_events`; since v11 (MSC2174)
`redacts` is a content key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from ranvier.core.events.event import Event
from ranvier.core.room_versions import EventFormat, RoomVersion

__all__ = ["MAX_LOCAL_PREV_EVENTS", "build_unsigned_pdu", "reference"]

# A local event cites at most this many forward extremities (the PDU allows 20).
MAX_LOCAL_PREV_EVENTS: Final = 10
# Canonical JSON integers stop at 2**53 - 1 (room v6+); depth must stay below it.
MAX_DEPTH: Final = 2**53 - 1


def reference(event: Event) -> Any:
    """How a PDU of `event`'s room version cites `event` in prev/auth events."""
    if event.room_version.event_format is EventFormat.V1:
        hashes = event.get("hashes")
        sha = hashes.get("sha256") if isinstance(hashes, dict) else None
        return [event.event_id, {"sha256": sha} if isinstance(sha, str) else {}]
    return event.event_id


def build_unsigned_pdu(
    room_version: RoomVersion,
    *,
    event_type: str,
    sender: str,
    content: Mapping[str, Any],
    room_id: str | None,
    origin_server_ts: int,
    prev_events: Sequence[Event],
    auth_events: Sequence[Event],
    state_key: str | None = None,
    redacts: str | None = None,
    v1_event_id: str | None = None,
) -> dict[str, Any]:
    """The PDU without hashes and signatures.

    `room_id` is None only for a v12 create event. `v1_event_id` is required for room
    v1/v2, where the server picks the event ID (`$opaque:server`).
    """
    body = dict(content)
    depth = min(MAX_DEPTH, max((e.depth for e in prev_events), default=0) + 1)
    pdu: dict[str, Any] = {
        "type": event_type,
        "sender": sender,
        "content": body,
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
    if room_id is not None:
        pdu["room_id"] = room_id
    if state_key is not None:
        pdu["state_key"] = state_key
    if redacts is not None:
        if room_version.redacts_in_content:
            body["redacts"] = redacts
        else:
            pdu["redacts"] = redacts
    if room_version.event_format is EventFormat.V1:
        if v1_event_id is None:
            raise ValueError("room versions 1 and 2 need a server-chosen event ID")
        pdu["event_id"] = v1_event_id
        # Rooms v1/v2 also carry the origin server name (Synapse requires it).
        pdu["origin"] = sender.split(":", 1)[1]
    return pdu
