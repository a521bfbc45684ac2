"""State resolution: v1 (room v1), v2 (room v2-v11) and v2.1 (room v12, MSC4297).

`resolve_state` is pure and synchronous. The caller (a service) prefetches every event
the algorithm may touch (the state sets' events and their auth chains; since v12 also
the create event, named by the room ID) and passes a lookup over them.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence

from ranvier.core.auth import ThirdPartyInviteVerifier
from ranvier.core.events.event import StateKey
from ranvier.core.room_versions import RoomVersion, StateResolution
from ranvier.core.state_res.graph import AuthChain, AuthGraph, Lookup
from ranvier.core.state_res.ordering import (
    lexicographical_topological_sort,
    mainline_sort,
    reverse_topological_power_sort,
)
from ranvier.core.state_res.v1 import resolve_v1
from ranvier.core.state_res.v2 import auth_difference, is_power_event, resolve_v2

__all__ = [
    "AuthChain",
    "AuthGraph",
    "Lookup",
    "auth_difference",
    "is_power_event",
    "lexicographical_topological_sort",
    "mainline_sort",
    "resolve_state",
    "reverse_topological_power_sort",
]


def resolve_state(
    room_version: RoomVersion,
    state_sets: Sequence[Mapping[StateKey, str]],
    lookup: Lookup,
    auth_chain: AuthChain | None = None,
    *,
    rejected: Container[str] = frozenset(),
    verify_third_party_invite: ThirdPartyInviteVerifier | None = None,
) -> dict[StateKey, str]:
    """Resolve `state_sets` (maps of (type, state_key) -> event ID) into one state map.

    `lookup` returns a prefetched event or None (unknown events are left out, as Synapse
    does). `auth_chain`, when given, returns an event's auth chain (its auth ancestors) from
    an index, sparing the walk over `auth_events`. `rejected` holds events rejected on
    receipt (against their auth events): they are never used as auth events nor admitted
    to state; events rejected only against the state before them are not "rejected"
    here (spec: they are handled as usual). `verify_third_party_invite` re-checks
    third-party invite signatures during the iterative auth checks.
    """
    if not state_sets:
        return {}
    # A rejected event is never state, even where every set agrees on it (such a set
    # was poisoned upstream, e.g. by a peer's `/state_ids`): dropped before anything.
    state_sets = [
        {key: eid for key, eid in s.items() if eid not in rejected} for s in state_sets
    ]
    graph = AuthGraph(lookup, rejected)
    if room_version.state_res is StateResolution.V1:
        return resolve_v1(state_sets, graph, verify_third_party_invite)
    return resolve_v2(
        state_sets,
        graph,
        auth_chain,
        verify_third_party_invite,
        v2_1=room_version.state_res is StateResolution.V2_1,
    )
