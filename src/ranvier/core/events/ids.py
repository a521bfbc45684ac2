"""Event IDs and v12 room IDs (spec: Rooms > vN > Event IDs; MSC4291).

* Event format v1 (rooms v1, v2): the ID is chosen by the origin server and carried in
  the PDU as `event_id` (`$opaque:server`).
* Event format v2 (room v3): `$` + standard unpadded base64 of the reference hash.
* Event format v3 (rooms v4+): `$` + URL-safe unpadded base64 of the reference hash.
* Room v12 (MSC4291): the room ID is `!` + URL-safe unpadded base64 of the create event's
  reference hash, i.e. the create event's ID with `!` for `$`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ranvier.core.crypto.base64 import encode_base64, encode_urlsafe_base64
from ranvier.core.crypto.hashes import compute_reference_hash
from ranvier.core.events.errors import EventFormatError
from ranvier.core.room_versions import EventFormat, RoomVersion

__all__ = [
    "compute_event_id",
    "event_id_from_reference_hash",
    "room_id_for_create_event",
]


def event_id_from_reference_hash(
    reference_hash: bytes, room_version: RoomVersion
) -> str:
    """`$` + the reference hash in the room version's base64 alphabet (v3+ formats)."""
    if room_version.event_format is EventFormat.V2:
        return "$" + encode_base64(reference_hash)
    if room_version.event_format is EventFormat.V3:
        return "$" + encode_urlsafe_base64(reference_hash)
    raise EventFormatError(
        f"room version {room_version.identifier} does not derive event IDs from hashes"
    )


def compute_event_id(pdu: Mapping[str, Any], room_version: RoomVersion) -> str:
    """The event ID of `pdu` in `room_version` (read from the PDU for v1/v2)."""
    if room_version.event_format is EventFormat.V1:
        event_id = pdu.get("event_id")
        if not isinstance(event_id, str):
            raise EventFormatError(
                "'event_id' must be a string in room versions 1 and 2"
            )
        return event_id
    return event_id_from_reference_hash(
        compute_reference_hash(pdu, room_version), room_version
    )


def room_id_for_create_event(
    create_pdu: Mapping[str, Any], room_version: RoomVersion
) -> str:
    """The room ID a v12+ room gets from its `m.room.create` event (MSC4291)."""
    if not room_version.room_id_from_create_event:
        raise EventFormatError(
            f"room version {room_version.identifier} does not derive room IDs from the "
            "create event"
        )
    if create_pdu.get("type") != "m.room.create":
        raise EventFormatError("room IDs are derived from m.room.create events only")
    digest = compute_reference_hash(create_pdu, room_version)
    return "!" + encode_urlsafe_base64(digest)
