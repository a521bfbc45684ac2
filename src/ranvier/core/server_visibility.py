"""History visibility for servers (spec: S-S API > Retrieving events; C-S API > History
visibility): may a remote server see an event?

A server sees an event when the room's history visibility at the event is
`world_readable` or `shared`, or when one of its users was joined then (or invited, if
the visibility is `invited`). Events a server may not see are still served, redacted, so
that its copy of the DAG has no holes (as Synapse does).
"""

from __future__ import annotations

from collections.abc import Iterable

from ranvier.core.visibility import INVITED, SHARED, WORLD_READABLE

__all__ = ["is_event_visible_to_server"]


def is_event_visible_to_server(
    history_visibility: str, memberships: Iterable[str]
) -> bool:
    """`memberships`: those of the server's users in the state at the event."""
    if history_visibility in (WORLD_READABLE, SHARED):
        return True
    for membership in memberships:
        if membership == "join":
            return True
        if membership == "invite" and history_visibility == INVITED:
            return True
    return False
