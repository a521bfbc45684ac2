"""Finishing locally created events (spec: S-S API > Signing Events; Rooms > vN > Event IDs).

The services layer assembles the unsigned PDU (type, content, sender, room_id,
prev_events, auth_events, depth, origin_server_ts, and for rooms v1/v2 an `event_id` it
chose); `finalize_local_event` adds the content hash, signs the redacted form and
computes the event ID. One canonical encoding of the redacted event serves both the
signature and the reference hash: both cover "redacted PDU minus `signatures` and
`unsigned`".
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from ranvier.core.crypto.base64 import encode_base64
from ranvier.core.crypto.hashes import compute_content_hash, reference_hash_bytes
from ranvier.core.crypto.keys import SigningKey
from ranvier.core.crypto.signing import add_signature
from ranvier.core.events.errors import EventFormatError
from ranvier.core.events.event import Event
from ranvier.core.events.format import validate_pdu
from ranvier.core.events.ids import event_id_from_reference_hash
from ranvier.core.events.redaction import redact_pdu
from ranvier.core.json import CanonicalJsonError
from ranvier.core.room_versions import EventFormat, RoomVersion

__all__ = ["finalize_local_event"]


def finalize_local_event(
    unsigned_pdu: Mapping[str, Any],
    room_version: RoomVersion,
    server_name: str,
    signing_key: SigningKey,
) -> Event:
    """Hash, sign and identify a locally built PDU; return the finished `Event`.

    `unsigned_pdu` is not modified. Any `hashes` it has are replaced; existing
    signatures from other servers are kept. For room v1/v2 the caller must include
    `event_id`; for v3+ it must not (the ID is derived from the hash).
    Raises `EventFormatError` if the result is not a valid PDU.
    """
    has_event_id = "event_id" in unsigned_pdu
    if room_version.event_format is EventFormat.V1:
        if not has_event_id:
            raise EventFormatError(
                "room versions 1 and 2 need a caller-chosen 'event_id'"
            )
    elif has_event_id:
        raise EventFormatError(
            f"'event_id' must not be set in room version {room_version.identifier}"
        )
    pdu = dict(unsigned_pdu)
    pdu.setdefault("signatures", {})
    try:
        pdu["hashes"] = {"sha256": compute_content_hash(pdu, room_version)}
        signed_bytes = reference_hash_bytes(redact_pdu(pdu, room_version), room_version)
    except CanonicalJsonError as e:
        raise EventFormatError(str(e)) from None
    signature = encode_base64(signing_key.sign(signed_bytes))
    pdu = add_signature(pdu, server_name, signing_key.key_id, signature)
    validate_pdu(pdu, room_version)
    if room_version.event_format is EventFormat.V1:
        event_id = str(pdu["event_id"])
    else:
        digest = hashlib.sha256(signed_bytes).digest()
        event_id = event_id_from_reference_hash(digest, room_version)
    return Event(pdu, event_id, room_version)
