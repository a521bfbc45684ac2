"""History visibility: may a user see an event? (spec: C-S API > Room History Visibility).

Pure decision over what the caller looked up: the room's `m.room.history_visibility`
and the user's membership in the state *at* the event. The spec's algorithm:

1. If the history visibility was `world_readable`, allow.
2. If the user's membership was `join`, allow.
3. If the visibility was `shared`, and the user joined the room at any point after the
   event was sent, allow.
4. If the user's membership was `invite`, and the visibility was `invited`, allow.
5. Otherwise, deny.

Boundary events get the more permissive of their before/after values, as Synapse does:
a history-visibility change is visible under the old or the new setting, and a user's
own membership event is judged with the "most joined" of their old and new membership
(so a user sees their own leave, and the join that made them a member).

Rule 3 is decided by the caller through `is_peeking`: a reader who is not, and has never
been, joined to the room is peeking and does not get `shared` history.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

WORLD_READABLE: Final = "world_readable"
SHARED: Final = "shared"
INVITED: Final = "invited"
JOINED: Final = "joined"

# Most to least permissive.
_VISIBILITY_ORDER: Final = (WORLD_READABLE, SHARED, INVITED, JOINED)
# Most to least joined.
_MEMBERSHIP_ORDER: Final = ("join", "invite", "knock", "leave", "ban")


def history_visibility_of(content: Mapping[str, Any] | None) -> str:
    """The visibility an `m.room.history_visibility` content sets; `shared` if absent or
    unknown (spec: "if no history_visibility is set, or if it is not understood, assume
    shared")."""
    if content is None:
        return SHARED
    value = content.get("history_visibility")
    return value if value in _VISIBILITY_ORDER else SHARED


def _membership_of(content: Mapping[str, Any] | None) -> str | None:
    if content is None:
        return None
    value = content.get("membership")
    return value if value in _MEMBERSHIP_ORDER else "leave"


def _more_permissive(a: str, b: str) -> str:
    return a if _VISIBILITY_ORDER.index(a) <= _VISIBILITY_ORDER.index(b) else b


def _more_joined(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return a if _MEMBERSHIP_ORDER.index(a) <= _MEMBERSHIP_ORDER.index(b) else b


def is_event_visible(
    *,
    user_id: str,
    event_type: str,
    state_key: str | None,
    content: Mapping[str, Any],
    prev_content: Mapping[str, Any] | None,
    history_visibility: str,
    membership: str | None,
    is_peeking: bool,
) -> bool:
    """Whether `user_id` may see an event.

    `history_visibility` and `membership` are read from the room state at the event
    (`membership` None: the user had no membership event then). `prev_content` is the
    content of the state event this one replaced, for boundary events.
    """
    visibility = history_visibility
    if event_type == "m.room.history_visibility" and state_key == "":
        visibility = _more_permissive(
            history_visibility_of(content), history_visibility_of(prev_content)
        )
    if event_type == "m.room.member" and state_key == user_id:
        membership = _more_joined(_membership_of(content), _membership_of(prev_content))
    if visibility == WORLD_READABLE or membership == "join":
        return True
    if visibility == INVITED:
        return membership == "invite"
    if visibility == SHARED:
        return not is_peeking
    return False
