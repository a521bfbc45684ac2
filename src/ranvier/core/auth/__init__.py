"""The Matrix authorization rules for room versions 1-12, as pure functions.

An event is authorised in two parts, matching how servers run them:

* `check_state_independent_auth_rules(event, auth_events_by_id, create_event)` once, on
  receipt: create-event rules, the v12 room-ID rule, the shape of `auth_events`;
* `check_state_dependent_auth_rules(event, auth_state)` against each state the event must
  fit (its auth events, the state before it, the current state).

Both raise `AuthError`. Rules branch on `RoomVersion` flags only; comments cite the spec's
rule numbers of room v11 unless they name another version.
"""

from ranvier.core.auth.dependent import check_state_dependent_auth_rules
from ranvier.core.auth.errors import AuthError
from ranvier.core.auth.independent import (
    check_create_event,
    check_state_independent_auth_rules,
)
from ranvier.core.auth.levels import (
    CREATE_KEY,
    INFINITE_POWER,
    JOIN_RULES_KEY,
    POWER_LEVELS_KEY,
    NamedLevel,
    get_creators,
    get_named_level,
    get_power_levels_content,
    get_send_level,
    get_user_power_level,
    get_user_power_level_from,
)
from ranvier.core.auth.membership import ThirdPartyInviteVerifier
from ranvier.core.auth.selection import auth_events_selection, auth_types_for_event

__all__ = [
    "CREATE_KEY",
    "INFINITE_POWER",
    "JOIN_RULES_KEY",
    "POWER_LEVELS_KEY",
    "AuthError",
    "NamedLevel",
    "ThirdPartyInviteVerifier",
    "auth_events_selection",
    "auth_types_for_event",
    "check_create_event",
    "check_state_dependent_auth_rules",
    "check_state_independent_auth_rules",
    "get_creators",
    "get_named_level",
    "get_power_levels_content",
    "get_send_level",
    "get_user_power_level",
    "get_user_power_level_from",
]
