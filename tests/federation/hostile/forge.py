"""Events exactly as a hostile server wants them: any prev/auth events (also unknown
ones), any depth, timestamp or content, signed with the forger's key - or deliberately
broken afterwards (`break_signature`, `break_hash`)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from ranvier.core.crypto.keys import SigningKey
from ranvier.core.events.builder import finalize_local_event
from ranvier.core.events.event import Event
from ranvier.core.events.format import event_from_pdu
from ranvier.core.events.local_builder import build_unsigned_pdu
from ranvier.core.room_versions import EventFormat, RoomVersion

JsonDict = dict[str, Any]

_ids = itertools.count(1)


def ref(rv: RoomVersion, event_id: str, events: Mapping[str, Event]) -> Any:
    """How a PDU of `rv` cites `event_id` (an unknown ID is cited without hashes)."""
    if rv.event_format is not EventFormat.V1:
        return event_id
    known = events.get(event_id)
    hashes = known.get("hashes") if known is not None else None
    sha = hashes.get("sha256") if isinstance(hashes, dict) else None
    return [event_id, {"sha256": sha} if isinstance(sha, str) else {}]


def forge(
    rv: RoomVersion,
    *,
    server: str,
    key: SigningKey,
    room_id: str | None,
    sender: str,
    etype: str,
    content: Mapping[str, Any],
    prev: Sequence[str],
    auth: Sequence[str],
    depth: int,
    ts: int,
    state_key: str | None = None,
    events: Mapping[str, Event] | None = None,
    suffix: str = "",
    redacts: str | None = None,
) -> Event:
    """A correctly hashed and signed event with exactly these fields."""
    known = events or {}
    pdu = build_unsigned_pdu(
        rv,
        event_type=etype,
        sender=sender,
        content=dict(content),
        room_id=room_id,
        origin_server_ts=ts,
        prev_events=[],
        auth_events=[],
        state_key=state_key,
        redacts=redacts,
        v1_event_id=(
            f"$forged{next(_ids)}{suffix}:{server}" if rv.is_v1_event_format else None
        ),
    )
    pdu["prev_events"] = [ref(rv, p, known) for p in prev]
    pdu["auth_events"] = [ref(rv, a, known) for a in auth]
    pdu["depth"] = depth
    return finalize_local_event(pdu, rv, server, key)


def break_signature(event: Event, server: str) -> JsonDict:
    """`event`'s PDU with `server`'s signature replaced by garbage of the right size."""
    pdu = dict(event.data)
    sigs = {k: dict(v) for k, v in pdu["signatures"].items()}
    sigs[server] = dict.fromkeys(sigs.get(server, {"ed25519:x": ""}), "A" * 86)
    pdu["signatures"] = sigs
    return pdu


def strip_signature(event: Event, server: str) -> JsonDict:
    pdu = dict(event.data)
    pdu["signatures"] = {k: v for k, v in pdu["signatures"].items() if k != server}
    return pdu


def with_content(event: Event, content: Mapping[str, Any]) -> JsonDict:
    """The same event ID (v1: the same `event_id` field; v3+: the same hashes and
    signatures) with other content: the content hash no longer matches."""
    pdu = dict(event.data)
    pdu["content"] = dict(content)
    return pdu


def parsed(pdu: JsonDict, rv: RoomVersion) -> Event:
    return event_from_pdu(dict(pdu), rv)
