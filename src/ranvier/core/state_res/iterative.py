"""The *iterative auth checks* of state resolution v2 (also used by v2.1)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ranvier.core.auth import (
    AuthError,
    ThirdPartyInviteVerifier,
    auth_types_for_event,
    check_state_dependent_auth_rules,
)
from ranvier.core.events.event import Event, StateKey
from ranvier.core.state_res.graph import AuthGraph


def iterative_auth_checks(
    graph: AuthGraph,
    event_ids: Iterable[str],
    base_state: Mapping[StateKey, str],
    verify_third_party_invite: ThirdPartyInviteVerifier | None,
) -> dict[StateKey, str]:
    """Apply each event, in order, to the state when the auth rules allow it there.

    The state an event is checked against is the partially resolved state for the keys
    its auth needs, falling back to its own (not rejected) auth events for keys the
    partial state lacks. Events rejected on receipt never enter the state.
    """
    resolved = dict(base_state)
    for event_id in event_ids:
        event = graph.get_accepted(event_id)
        if event is None or not event.is_state():
            continue
        auth_state = _auth_state_for(graph, event, resolved)
        try:
            check_state_dependent_auth_rules(
                event, auth_state, verify_third_party_invite=verify_third_party_invite
            )
        except AuthError:
            continue
        resolved[event.state_tuple] = event_id
    return resolved


def _auth_state_for(
    graph: AuthGraph, event: Event, resolved: Mapping[StateKey, str]
) -> dict[StateKey, Event]:
    auth_state: dict[StateKey, Event] = {}
    for auth_id in graph.auth_ids(event.event_id):
        auth_event = graph.get_accepted(auth_id)
        if auth_event is not None and auth_event.is_state():
            auth_state[auth_event.state_tuple] = auth_event
    for key in auth_types_for_event(event):
        state_id = resolved.get(key)
        if state_id is not None:
            state_event = graph.get_accepted(state_id)
            if state_event is not None:
                auth_state[key] = state_event
    return auth_state
