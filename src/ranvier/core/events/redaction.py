"""Redaction algorithm for every room version (spec: Rooms > vN > Redactions).

Redaction keeps a fixed set of top-level keys and, for a few event types, a fixed set of
content keys; everything else is removed. The redacted form is what event signatures and
reference hashes (hence event IDs) cover, so these tables must match the spec exactly:

* v1 (rooms v1-v5): the original lists.
* v6 (rooms v6, v7): `m.room.aliases` no longer keeps `aliases` (MSC2432).
* v8 (room v8): `m.room.join_rules` also keeps `allow` (MSC3083).
* v9 (rooms v9, v10): `m.room.member` also keeps `join_authorised_via_users_server`.
* v11 (rooms v11, v12; MSC2176, MSC3821, MSC2174): top level no longer keeps `origin`,
  `membership`, `prev_state`; `m.room.create` keeps all content; `m.room.power_levels`
  also keeps `invite`; `m.room.member` keeps `third_party_invite.signed`;
  `m.room.redaction` keeps `redacts` (now in content).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ranvier.core.room_versions import RedactionRules, RoomVersion

__all__ = ["redact_content", "redact_pdu"]

# Sentinel for "keep every content key".
_ALL: Final[frozenset[str]] = frozenset({"*"})


@dataclass(frozen=True, slots=True)
class _Rules:
    top_level: frozenset[str]
    content: Mapping[str, frozenset[str]]
    # v11+: m.room.member keeps `third_party_invite.signed` (MSC3821).
    keep_member_third_party_invite_signed: bool


_V1_TOP_LEVEL: Final = frozenset(
    {
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "prev_state",
        "auth_events",
        "origin",
        "origin_server_ts",
        "membership",
    }
)
_V1_POWER_LEVELS: Final = frozenset(
    {
        "ban",
        "events",
        "events_default",
        "kick",
        "redact",
        "state_default",
        "users",
        "users_default",
    }
)
_V1_CONTENT: Final[dict[str, frozenset[str]]] = {
    "m.room.member": frozenset({"membership"}),
    "m.room.create": frozenset({"creator"}),
    "m.room.join_rules": frozenset({"join_rule"}),
    "m.room.power_levels": _V1_POWER_LEVELS,
    "m.room.aliases": frozenset({"aliases"}),
    "m.room.history_visibility": frozenset({"history_visibility"}),
}
# v6: MSC2432 stops protecting m.room.aliases content.
_V6_CONTENT: Final = {k: v for k, v in _V1_CONTENT.items() if k != "m.room.aliases"}
# v8: MSC3083 restricted rooms; `allow` survives redaction.
_V8_CONTENT: Final = {
    **_V6_CONTENT,
    "m.room.join_rules": frozenset({"join_rule", "allow"}),
}
# v9: the authorising user of a restricted join survives redaction.
_V9_CONTENT: Final = {
    **_V8_CONTENT,
    "m.room.member": frozenset({"membership", "join_authorised_via_users_server"}),
}
# v11: MSC2176 (create: all; power_levels: invite; redaction: redacts), MSC2174.
_V11_CONTENT: Final = {
    **_V9_CONTENT,
    "m.room.create": _ALL,
    "m.room.power_levels": _V1_POWER_LEVELS | {"invite"},
    "m.room.redaction": frozenset({"redacts"}),
}
_V11_TOP_LEVEL: Final = _V1_TOP_LEVEL - {"origin", "membership", "prev_state"}

_RULES: Final[dict[RedactionRules, _Rules]] = {
    RedactionRules.V1: _Rules(_V1_TOP_LEVEL, _V1_CONTENT, False),
    RedactionRules.V6: _Rules(_V1_TOP_LEVEL, _V6_CONTENT, False),
    RedactionRules.V8: _Rules(_V1_TOP_LEVEL, _V8_CONTENT, False),
    RedactionRules.V9: _Rules(_V1_TOP_LEVEL, _V9_CONTENT, False),
    RedactionRules.V11: _Rules(_V11_TOP_LEVEL, _V11_CONTENT, True),
}


def redact_content(
    event_type: Any, content: Any, room_version: RoomVersion
) -> dict[str, Any]:
    """The content that survives redaction of an event of `event_type`.

    Returns a new dict; the kept values are shared with `content`, not copied.
    """
    if not isinstance(content, Mapping):
        return {}
    rules = _RULES[room_version.redaction_rules]
    keep = rules.content.get(event_type) if isinstance(event_type, str) else None
    if keep is None:
        return {}
    if keep is _ALL:
        return dict(content)
    out = {k: v for k, v in content.items() if k in keep}
    if rules.keep_member_third_party_invite_signed and event_type == "m.room.member":
        tpi = content.get("third_party_invite")
        if isinstance(tpi, Mapping) and "signed" in tpi:
            out["third_party_invite"] = {"signed": tpi["signed"]}
    return out


def redact_pdu(pdu: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """The redacted form of `pdu` under `room_version`'s rules.

    Keeps `signatures` and `hashes` (they are top-level keys the algorithm preserves) and
    drops `unsigned`. The result always has a `content` object. Returns a new top-level
    dict; nested values are shared with `pdu`, so treat both as read-only.
    """
    rules = _RULES[room_version.redaction_rules]
    out = {k: v for k, v in pdu.items() if k in rules.top_level}
    out["content"] = redact_content(pdu.get("type"), pdu.get("content"), room_version)
    return out
