"""PDU structure checks per event format (spec: S-S API > PDUs; Rooms > vN > Event format).

`validate_pdu` is the first step of the ingest pipeline (S-S API > Checks performed on
receipt of a PDU, step 1: "Is a valid event, otherwise it is dropped"): required keys and
their JSON types, the `prev_events`/`auth_events` shape of the room version's event
format, size limits and canonical-JSON compatibility. It does not check hashes,
signatures or auth rules.

Event formats (`RoomVersion.event_format`):
* V1 (rooms v1, v2): `event_id` in the PDU; `prev_events`/`auth_events` are
  `[event_id, {"sha256": ...}]` pairs.
* V2/V3 (rooms v3+): no `event_id`; `prev_events`/`auth_events` are event-ID strings.
* Room v12 (MSC4291): the `m.room.create` event has no `room_id`.

A v3+ PDU that nevertheless carries `event_id` is accepted (the key is then covered by
the reference hash like any other kept key); `finalize_local_event` never writes one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ranvier.core.events.errors import EventFormatError, EventSizeError
from ranvier.core.events.event import Event
from ranvier.core.events.ids import compute_event_id
from ranvier.core.ids import InvalidIdentifierError, parse_event_id, parse_user_id
from ranvier.core.json import (
    MAX_JSON_NESTING,
    CanonicalJsonError,
    encode_canonical_json,
    exceeds_nesting,
)
from ranvier.core.room_versions import EventFormat, RoomVersion

__all__ = [
    "MAX_AUTH_EVENTS",
    "MAX_DEPTH",
    "MAX_KEY_BYTES",
    "MAX_PDU_BYTES",
    "MAX_PREV_EVENTS",
    "EventFormatError",
    "EventSizeError",
    "event_from_pdu",
    "validate_pdu",
]

# Spec: Client-Server API > Size limits; S-S API > PDUs.
MAX_PDU_BYTES: Final = 65536
MAX_KEY_BYTES: Final = 255
# Spec: PDU definitions ("Must contain less than or equal to 20 / 10 events").
MAX_PREV_EVENTS: Final = 20
MAX_AUTH_EVENTS: Final = 10
# Spec: PDU `depth` ("less than the maximum value for an integer (2^63 - 1)"); from room
# v6 canonical JSON caps every integer at 2^53 - 1 anyway.
MAX_DEPTH: Final = 2**63 - 1

_SIZED_KEYS: Final = ("sender", "room_id", "type", "state_key", "event_id")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _require_str(pdu: Mapping[str, Any], key: str) -> str:
    if key not in pdu:
        raise EventFormatError(f"missing required key '{key}'")
    value = pdu[key]
    if not isinstance(value, str):
        raise EventFormatError(f"'{key}' must be a string, got {_type_name(value)}")
    return value


def _require_int(pdu: Mapping[str, Any], key: str) -> int:
    if key not in pdu:
        raise EventFormatError(f"missing required key '{key}'")
    value = pdu[key]
    if type(value) is not int:
        raise EventFormatError(f"'{key}' must be an integer, got {_type_name(value)}")
    return value


def _require_object(pdu: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    if key not in pdu:
        raise EventFormatError(f"missing required key '{key}'")
    value = pdu[key]
    if not isinstance(value, Mapping):
        raise EventFormatError(f"'{key}' must be an object, got {_type_name(value)}")
    return value


def _check_hashes_and_signatures(pdu: Mapping[str, Any]) -> None:
    hashes = _require_object(pdu, "hashes")
    if not isinstance(hashes.get("sha256"), str):
        raise EventFormatError("'hashes.sha256' must be a string")
    signatures = _require_object(pdu, "signatures")
    for server, sigs in signatures.items():
        if not isinstance(sigs, Mapping):
            raise EventFormatError(f"'signatures.{server}' must be an object")
        for key_id, sig in sigs.items():
            if not isinstance(sig, str):
                raise EventFormatError(
                    f"'signatures.{server}.{key_id}' must be a string"
                )


def _check_reference_list(
    pdu: Mapping[str, Any], key: str, fmt: EventFormat, limit: int
) -> None:
    if key not in pdu:
        raise EventFormatError(f"missing required key '{key}'")
    refs = pdu[key]
    if not isinstance(refs, list):
        raise EventFormatError(f"'{key}' must be an array, got {_type_name(refs)}")
    if len(refs) > limit:
        raise EventFormatError(
            f"'{key}' has {len(refs)} entries; at most {limit} allowed"
        )
    for i, ref in enumerate(refs):
        if fmt is EventFormat.V1:
            # v1/v2: [event_id, {"sha256": ...}] (PDU v1 schema: minItems 2, maxItems 2).
            if not (
                isinstance(ref, list)
                and len(ref) == 2
                and isinstance(ref[0], str)
                and ref[0].startswith("$")
                and isinstance(ref[1], Mapping)
            ):
                raise EventFormatError(
                    f"'{key}[{i}]' must be an [event_id, hashes] pair"
                )
        elif not (isinstance(ref, str) and ref.startswith("$")):
            raise EventFormatError(f"'{key}[{i}]' must be an event ID string")


def _check_ids(pdu: Mapping[str, Any], room_version: RoomVersion) -> None:
    sender = _require_str(pdu, "sender")
    try:
        parse_user_id(sender)
    except InvalidIdentifierError as e:
        raise EventFormatError(f"'sender' is not a user ID: {e}") from None
    is_create = pdu.get("type") == "m.room.create"
    if room_version.room_id_from_create_event and is_create:
        # MSC4291: the create event's room ID is derived from its own hash.
        if "room_id" in pdu:
            raise EventFormatError(
                f"m.room.create must not have 'room_id' in room version {room_version.identifier}"
            )
    elif not _require_str(pdu, "room_id").startswith("!"):
        raise EventFormatError("'room_id' must start with '!'")
    if room_version.event_format is EventFormat.V1:
        try:
            parse_event_id(_require_str(pdu, "event_id"))
        except InvalidIdentifierError as e:
            raise EventFormatError(f"'event_id' is not an event ID: {e}") from None


def _check_fields(pdu: Mapping[str, Any], room_version: RoomVersion) -> None:
    _require_str(pdu, "type")
    _require_object(pdu, "content")
    _check_ids(pdu, room_version)
    depth = _require_int(pdu, "depth")
    if not 0 <= depth <= MAX_DEPTH:
        raise EventFormatError(f"'depth' must be in [0, 2**63 - 1], got {depth}")
    _require_int(pdu, "origin_server_ts")
    if "state_key" in pdu and not isinstance(pdu["state_key"], str):
        raise EventFormatError(
            f"'state_key' must be a string, got {_type_name(pdu['state_key'])}"
        )
    if "unsigned" in pdu and not isinstance(pdu["unsigned"], Mapping):
        raise EventFormatError("'unsigned' must be an object")
    # Before v11 (MSC2174) redactions name their target at the top level.
    if (
        not room_version.redacts_in_content
        and "redacts" in pdu
        and not isinstance(pdu["redacts"], str)
    ):
        raise EventFormatError("'redacts' must be a string")
    fmt = room_version.event_format
    _check_reference_list(pdu, "prev_events", fmt, MAX_PREV_EVENTS)
    _check_reference_list(pdu, "auth_events", fmt, MAX_AUTH_EVENTS)
    _check_hashes_and_signatures(pdu)


def _check_key_sizes(pdu: Mapping[str, Any], room_version: RoomVersion) -> None:
    """Spec: S-S API > Size limits (255 bytes per key). Code-point violations are always
    fatal (Synapse always enforced them); byte-only violations are stored as rejected
    before room v11. Runs before the identifier grammar checks so that this distinction
    is not lost to a generic "not a user ID" error."""
    for key in _SIZED_KEYS:
        value = pdu.get(key)
        if not isinstance(value, str):
            continue
        # These keys become database index columns; U+0000 cannot be stored there
        # (PostgreSQL text) and no legitimate identifier or type contains it.
        if "\x00" in value:
            raise EventFormatError(f"'{key}' contains a NUL character")
        if len(value) > MAX_KEY_BYTES:
            raise EventSizeError(f"'{key}' is longer than {MAX_KEY_BYTES} characters")
        if len(value.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
            raise EventSizeError(
                f"'{key}' is longer than {MAX_KEY_BYTES} bytes",
                persist_as_rejected=not room_version.strict_event_byte_limits,
            )


def _check_pdu_size(pdu: Mapping[str, Any], room_version: RoomVersion) -> None:
    """The whole PDU, as canonical JSON, is at most 65536 bytes; encoding it also checks
    that every value is canonical-JSON compatible (strictly from room v6)."""
    try:
        encoded = encode_canonical_json(pdu, strict=room_version.strict_canonicaljson)
    except CanonicalJsonError as e:
        raise EventFormatError(str(e)) from None
    size = len(encoded)
    if size > MAX_PDU_BYTES:
        raise EventSizeError(f"event is {size} bytes; at most {MAX_PDU_BYTES} allowed")
    # Counting brackets (C speed) bounds the depth from above: only walk when it could
    # be too deep.
    brackets = encoded.count(b"{") + encoded.count(b"[")
    if brackets > MAX_JSON_NESTING and exceeds_nesting(pdu):
        raise EventFormatError(
            f"event nests objects/arrays more than {MAX_JSON_NESTING} levels deep"
        )


def validate_pdu(pdu: Any, room_version: RoomVersion) -> None:
    """Raise `EventFormatError` (or `EventSizeError`) with a precise reason unless `pdu`
    is a structurally valid PDU for `room_version`."""
    if not isinstance(pdu, Mapping):
        raise EventFormatError(f"PDU must be an object, got {_type_name(pdu)}")
    _check_key_sizes(pdu, room_version)
    _check_fields(pdu, room_version)
    _check_pdu_size(pdu, room_version)


def event_from_pdu(pdu: dict[str, Any], room_version: RoomVersion) -> Event:
    """Validate `pdu` and wrap it as an `Event` with its (computed or carried) ID.

    The dict is not copied: the `Event` owns it from now on.
    """
    validate_pdu(pdu, room_version)
    return Event(pdu, compute_event_id(pdu, room_version), room_version)
