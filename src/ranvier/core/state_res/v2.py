"""State resolution v2 (room v2-v11) and v2.1 (room v12, MSC4297).

Steps follow the spec's "Algorithm" list. v2.1 differs in two places only: the full
conflicted set also holds the *conflicted state subgraph*, and the first iterative auth
checks start from an empty state map instead of the unconflicted state map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ranvier.core.auth import POWER_LEVELS_KEY, ThirdPartyInviteVerifier
from ranvier.core.events.event import Event, StateKey
from ranvier.core.state_res.graph import AuthChain, AuthGraph
from ranvier.core.state_res.iterative import iterative_auth_checks
from ranvier.core.state_res.ordering import (
    mainline_sort,
    reverse_topological_power_sort,
)
from ranvier.core.state_res.separate import separate


def resolve_v2(
    state_sets: Sequence[Mapping[StateKey, str]],
    graph: AuthGraph,
    auth_chain: AuthChain | None,
    verify_third_party_invite: ThirdPartyInviteVerifier | None,
    *,
    v2_1: bool,
) -> dict[StateKey, str]:
    unconflicted, conflicted = separate(state_sets, missing_is_conflict=True)
    if not conflicted:
        return unconflicted
    conflicted_ids: set[str] = set().union(*conflicted.values())
    full = auth_difference(graph, state_sets, unconflicted, conflicted, auth_chain)
    full |= conflicted_ids
    if v2_1:
        # v2.1: the full conflicted set also holds the conflicted state subgraph.
        full |= graph.conflicted_subgraph(conflicted_ids)
    # Unknown events cannot be ordered or checked; servers drop them (as Synapse does).
    full = {eid for eid in full if _is_state_event(graph.get(eid))}

    # Step 1: the power events of the full conflicted set plus their auth ancestors
    # in it, in reverse topological power ordering.
    power_events = [eid for eid in full if is_power_event(graph.get(eid))]
    sorted_power = reverse_topological_power_sort(graph, power_events, full)
    # Step 2: iterative auth checks from the unconflicted state map (v2) or from an
    # empty state map (v2.1).
    base: Mapping[StateKey, str] = {} if v2_1 else unconflicted
    partial = iterative_auth_checks(
        graph, sorted_power, base, verify_third_party_invite
    )
    # Step 3: the other events, in mainline order of the resolved power levels.
    in_power = set(sorted_power)
    leftover = mainline_sort(
        graph,
        (eid for eid in full if eid not in in_power),
        partial.get(POWER_LEVELS_KEY),
    )
    # Step 4: iterative auth checks on top of the partially resolved state.
    resolved = iterative_auth_checks(
        graph, leftover, partial, verify_third_party_invite
    )
    # Step 5: the unconflicted state map wins over anything replayed.
    resolved.update(unconflicted)
    return resolved


def auth_difference(
    graph: AuthGraph,
    state_sets: Sequence[Mapping[StateKey, str]],
    unconflicted: Mapping[StateKey, str],
    conflicted: Mapping[StateKey, set[str]],
    auth_chain: AuthChain | None,
) -> set[str]:
    """The *auth difference*: union minus intersection of the state sets' full auth chains.

    A state set's full auth chain is its events and their auth chains. The unconflicted
    events are in every set, so their closure is in every chain and never in the
    difference: it is computed once and each set is walked only from its conflicted
    events, stopping at that closure.
    """
    common = graph.closure(unconflicted.values(), frozenset(), auth_chain)
    chains = [
        graph.closure(
            [eid for key in conflicted if (eid := s.get(key)) is not None],
            common,
            auth_chain,
        )
        for s in state_sets
    ]
    union: set[str] = set().union(*chains)
    common_to_all = chains[0].intersection(*chains[1:])
    return union - common_to_all


def is_power_event(event: Event | None) -> bool:
    """A *power event*: power levels, join rules, or a kick/ban of someone else.

    The create event counts as one too, as in Synapse and ruma.
    """
    if event is None:
        return False
    state_key = event.state_key
    if state_key is None:
        return False
    event_type = event.type
    if event_type in ("m.room.power_levels", "m.room.join_rules", "m.room.create"):
        return state_key == ""
    if event_type == "m.room.member":
        return event.membership in ("leave", "ban") and event.sender != state_key
    return False


def _is_state_event(event: Event | None) -> bool:
    return event is not None and event.is_state() and event.state_key is not None
