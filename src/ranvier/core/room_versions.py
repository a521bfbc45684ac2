"""Room versions 1-12 as rule objects.

Code branches on these flags, never on version strings (house rule 2). Each flag names the
room version that introduced it; the spec's per-version pages are the source
(matrix-spec v1.19, "Room versions" and each version's page).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class EventFormat(enum.Enum):
    """How PDUs are laid out and how their IDs are made."""

    # v1, v2: `event_id` is carried in the event as `$opaque:origin`; prev/auth events are
    # `[event_id, {hashes}]` pairs.
    V1 = 1
    # v3: no `event_id` key; the ID is `$` + standard unpadded base64 of the reference hash;
    # prev/auth events are plain ID lists.
    V2 = 2
    # v4+: as V2, but URL-safe unpadded base64 (`+` -> `-`, `/` -> `_`).
    V3 = 3


class StateResolution(enum.Enum):
    V1 = 1  # room v1
    V2 = 2  # room v2 .. v11
    V2_1 = 3  # room v12 (MSC4297): empty initial state for iterative auth, conflicted subgraph


class RedactionRules(enum.Enum):
    V1 = 1  # v1 .. v5
    V6 = 6  # v6, v7: m.room.aliases content is no longer kept
    V8 = 8  # v8: join_rules keeps `allow`
    V9 = 9  # v9, v10: member keeps `join_authorised_via_users_server`
    V11 = 11  # v11, v12: MSC2176/MSC3821/MSC3989 (create keeps all content, etc.)


@dataclass(frozen=True, slots=True)
class RoomVersion:
    identifier: str
    event_format: EventFormat
    state_res: StateResolution
    redaction_rules: RedactionRules
    # v5+: event signatures must be checked against keys valid at origin_server_ts.
    enforce_key_validity: bool
    # v1-v5: m.room.aliases events are allowed when state_key == sender's domain.
    special_case_aliases_auth: bool
    # v6+: canonical JSON forbids floats and integers outside [-(2**53)+1, (2**53)-1].
    strict_canonicaljson: bool
    # v6+: `notifications` power levels are enforced by the power-levels auth rule.
    limit_notifications_power_levels: bool
    # v7+: `knock` join rule and membership.
    knock_join_rule: bool
    # v8+: `restricted` join rule with `join_authorised_via_users_server`.
    restricted_join_rule: bool
    # v10+: `knock_restricted` join rule.
    knock_restricted_join_rule: bool
    # v10+: power level values must be integers (no stringy numbers).
    enforce_int_power_levels: bool
    # v11+ (MSC2175): create event has no `creator`; the sender is the creator.
    implicit_room_creator: bool
    # v11+ (MSC2174): `redacts` moved from the top level into `content`.
    redacts_in_content: bool
    # v12+ (MSC4291): room ID is `!` + reference hash of the create event; create event has
    # no `room_id`, and the create event is not listed in `auth_events`.
    room_id_from_create_event: bool
    # v12+ (MSC4289): the creator and `additional_creators` have infinite power level and
    # do not appear in m.room.power_levels `users`.
    privileged_creators: bool
    # v11+: the 255-byte limits on sender/room_id/type/state_key/event_id are enforced in
    # bytes. Synapse counted code points before v11, so events within the code-point limit
    # but over the byte limit exist in older rooms and are persisted as rejected there.
    strict_event_byte_limits: bool = False

    @property
    def is_v1_event_format(self) -> bool:
        return self.event_format is EventFormat.V1


def _v(
    ident: str,
    *,
    fmt: EventFormat,
    state_res: StateResolution,
    redaction: RedactionRules,
    n: int,
) -> RoomVersion:
    """Build version `n`'s rules; every flag is a function of the version that introduced it."""
    return RoomVersion(
        identifier=ident,
        event_format=fmt,
        state_res=state_res,
        redaction_rules=redaction,
        enforce_key_validity=n >= 5,
        special_case_aliases_auth=n <= 5,
        strict_canonicaljson=n >= 6,
        limit_notifications_power_levels=n >= 6,
        knock_join_rule=n >= 7,
        restricted_join_rule=n >= 8,
        knock_restricted_join_rule=n >= 10,
        enforce_int_power_levels=n >= 10,
        implicit_room_creator=n >= 11,
        redacts_in_content=n >= 11,
        room_id_from_create_event=n >= 12,
        privileged_creators=n >= 12,
        strict_event_byte_limits=n >= 11,
    )


_F, _S, _R = EventFormat, StateResolution, RedactionRules

KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {
    v.identifier: v
    for v in (
        _v("1", fmt=_F.V1, state_res=_S.V1, redaction=_R.V1, n=1),
        _v("2", fmt=_F.V1, state_res=_S.V2, redaction=_R.V1, n=2),
        _v("3", fmt=_F.V2, state_res=_S.V2, redaction=_R.V1, n=3),
        _v("4", fmt=_F.V3, state_res=_S.V2, redaction=_R.V1, n=4),
        _v("5", fmt=_F.V3, state_res=_S.V2, redaction=_R.V1, n=5),
        _v("6", fmt=_F.V3, state_res=_S.V2, redaction=_R.V6, n=6),
        _v("7", fmt=_F.V3, state_res=_S.V2, redaction=_R.V6, n=7),
        _v("8", fmt=_F.V3, state_res=_S.V2, redaction=_R.V8, n=8),
        _v("9", fmt=_F.V3, state_res=_S.V2, redaction=_R.V9, n=9),
        _v("10", fmt=_F.V3, state_res=_S.V2, redaction=_R.V9, n=10),
        _v("11", fmt=_F.V3, state_res=_S.V2, redaction=_R.V11, n=11),
        _v("12", fmt=_F.V3, state_res=_S.V2_1, redaction=_R.V11, n=12),
    )
}

DEFAULT_ROOM_VERSION = KNOWN_ROOM_VERSIONS["12"]


def get_room_version(identifier: str) -> RoomVersion | None:
    return KNOWN_ROOM_VERSIONS.get(identifier)
