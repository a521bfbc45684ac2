"""State resolution v1 (room v1 only).

The spec's prose leaves details open; this follows Synapse's implementation, the one
rooms of version 1 were resolved with: conflicts are resolved key by key against the
unconflicted state, power levels first, then join rules, then memberships, then the rest.
Events are ordered by depth and by sha1 of the event ID.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence

from ranvier.core.auth import (
    POWER_LEVELS_KEY,
    AuthError,
    ThirdPartyInviteVerifier,
    auth_types_for_event,
    check_state_dependent_auth_rules,
)
from ranvier.core.events.event import Event, StateKey
from ranvier.core.state_res.graph import AuthGraph
from ranvier.core.state_res.separate import separate

Check = Callable[[Event, Mapping[StateKey, Event]], bool]


def resolve_v1(
    state_sets: Sequence[Mapping[StateKey, str]],
    graph: AuthGraph,
    verify_third_party_invite: ThirdPartyInviteVerifier | None,
) -> dict[StateKey, str]:
    unconflicted, conflicted_ids = separate(state_sets, missing_is_conflict=False)
    if not conflicted_ids:
        return unconflicted

    def allowed(event: Event, state: Mapping[StateKey, Event]) -> bool:
        try:
            check_state_dependent_auth_rules(
                event, state, verify_third_party_invite=verify_third_party_invite
            )
        except AuthError:
            return False
        return True

    conflicted: dict[StateKey, list[Event]] = {}
    for key, ids in conflicted_ids.items():
        # Rejected events are not candidates: in v1 the lowest-depth candidate is
        # taken first, so a rejected power-levels event of depth 0 would otherwise win.
        events = [
            e for eid in sorted(ids) if (e := graph.get_accepted(eid)) is not None
        ]
        if len(events) > 1:
            conflicted[key] = events
        elif events:
            # Only one of the conflicting events is known: nothing to resolve.
            unconflicted[key] = events[0].event_id
    auth_state = _auth_state_from_unconflicted(graph, unconflicted, conflicted)
    resolved: dict[StateKey, Event] = {}
    # Power levels, then join rules, then memberships: each pass sees the previous ones.
    passes: list[Callable[[StateKey], bool]] = [
        lambda k: k == POWER_LEVELS_KEY,
        lambda k: k[0] == "m.room.join_rules",
        lambda k: k[0] == "m.room.member",
    ]
    for wanted in passes:
        for key, events in conflicted.items():
            if wanted(key):
                resolved[key] = _resolve_auth_events(events, auth_state, allowed)
        auth_state.update(resolved)
    for key, events in conflicted.items():
        if key not in resolved:
            resolved[key] = _resolve_normal_events(events, auth_state, allowed)
    result = dict(unconflicted)
    result.update({key: event.event_id for key, event in resolved.items()})
    return result


def _auth_state_from_unconflicted(
    graph: AuthGraph,
    unconflicted: Mapping[StateKey, str],
    conflicted: Mapping[StateKey, list[Event]],
) -> dict[StateKey, Event]:
    """The unconflicted events any conflicted event's auth needs."""
    auth_state: dict[StateKey, Event] = {}
    for events in conflicted.values():
        for event in events:
            for key in auth_types_for_event(event):
                if key in auth_state or key not in unconflicted:
                    continue
                auth_event = graph.get_accepted(unconflicted[key])
                if auth_event is not None:
                    auth_state[key] = auth_event
    return auth_state


def _order_key(event: Event) -> tuple[int, str]:
    # Highest depth first, then lowest sha1(event_id). usedforsecurity=False: this is an
    # ordering, not a security decision.
    digest = hashlib.sha1(event.event_id.encode("utf-8"), usedforsecurity=False)
    return (-event.depth, digest.hexdigest())


def _resolve_auth_events(
    events: list[Event], auth_state: Mapping[StateKey, Event], allowed: Check
) -> Event:
    """Ascending depth (descending sha1): take the first, then each next one while the
    auth rules allow it on top of the previous one."""
    ordered = sorted(events, key=_order_key, reverse=True)
    keys: set[StateKey] = set()
    for event in events:
        keys.update(auth_types_for_event(event))
    state = {key: auth_state[key] for key in keys if key in auth_state}
    chosen = ordered[0]
    for event in ordered[1:]:
        state[chosen.state_tuple] = chosen
        if not allowed(event, state):
            break
        chosen = event
    return chosen


def _resolve_normal_events(
    events: list[Event], auth_state: Mapping[StateKey, Event], allowed: Check
) -> Event:
    """The highest-depth (lowest sha1) event the auth rules allow, else the lowest."""
    ordered = sorted(events, key=_order_key)
    for event in ordered:
        if allowed(event, auth_state):
            return event
    return ordered[-1]
