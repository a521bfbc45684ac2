"""Splitting state sets into unconflicted state and conflicted state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ranvier.core.events.event import StateKey


def separate(
    state_sets: Sequence[Mapping[StateKey, str]], *, missing_is_conflict: bool
) -> tuple[dict[StateKey, str], dict[StateKey, set[str]]]:
    """Return (unconflicted state map, conflicted event IDs per key).

    v2 (`missing_is_conflict=True`): a key is unconflicted only when every state set holds
    it with the same event. v1: a key held by only some sets is unconflicted as long as
    they agree.
    """
    unconflicted: dict[StateKey, str] = {}
    conflicted: dict[StateKey, set[str]] = {}
    if not state_sets:
        return unconflicted, conflicted
    first = state_sets[0]
    rest = state_sets[1:]
    keys: set[StateKey] = set(first)
    for state_set in rest:
        keys.update(state_set)
    for key in keys:
        value = first.get(key)
        for state_set in rest:
            if state_set.get(key) != value:
                break
        else:
            if value is not None:
                unconflicted[key] = value
                continue
        values = {v for s in state_sets if (v := s.get(key)) is not None}
        if len(values) == 1 and not missing_is_conflict:
            unconflicted[key] = values.pop()
        else:
            conflicted[key] = values
    return unconflicted, conflicted
