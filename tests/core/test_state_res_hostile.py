"""State resolution under attack (property): random forks of honest history, into which a
hostile server slips unauthorised events by lying about a fork's state (the lie of a
`/state_ids` answer), some of them known to be rejected.

Properties, for every room-version family:

* the result does not depend on the order of the state sets, nor of their entries;
* no event rejected on receipt is ever in the result;
* since v2 (and in v1 once they are marked rejected) no hostile event is: each fails
  auth against any honest state, and the iterative auth checks re-run it there -
  unless every state set agrees on one, which is then not conflicted at all (and may
  authorise the others).
  Room v1's resolution keeps a key only one set holds without checking it (a known
  weakness of v1), which is why the ingest pipeline must never let such an event into
  a state set in the first place (tests/federation/hostile).
"""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from ranvier.core.events.event import Event, StateKey
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS, StateResolution
from ranvier.core.state_res import resolve_state
from tests.core.auth_builders import ALICE, BOB, CHARLIE, EVE, Room, standard_room

V = KNOWN_ROOM_VERSIONS
PL: StateKey = ("m.room.power_levels", "")

_HONEST = st.tuples(
    st.integers(0, 2),  # fork
    st.sampled_from(["topic", "promote", "demote", "kick", "ban", "rules"]),
    st.sampled_from([BOB, CHARLIE]),
)
_HOSTILE = st.tuples(
    st.integers(0, 2),  # fork whose state set carries the lie
    st.sampled_from(["take_power", "topic", "ban_alice", "kick_bob", "rules"]),
    st.booleans(),  # known to be rejected on receipt
    st.booleans(),  # named in every state set (the single-`/state_ids` case)
    st.booleans(),  # depth 1: v1 tries the shallowest power-levels event first
)


def _honest(room: Room, i: int, action: str, target: str) -> None:
    name = f"H{i}"
    if action == "topic":
        room.send(name, "m.room.topic", ALICE, {"topic": name}, state_key="")
    elif action in ("promote", "demote"):
        current = room.events[room.state[PL]].content
        users = dict(current.get("users", {}))
        users[target] = 50 if action == "promote" else 0
        room.power_levels(name, ALICE, {**current, "users": users})
    elif action in ("kick", "ban"):
        room.member(name, ALICE, target, "leave" if action == "kick" else "ban")
    else:
        room.join_rules(name, ALICE, "invite" if i % 2 else "public")


def _hostile(
    room: Room, i: int, action: str, state: Mapping[StateKey, str], shallow: bool
) -> Event:
    """Eve's event on `state` (not added to any history: only named in a state set)."""
    event = _hostile_event(room, i, action, state)
    if shallow:
        event.data["depth"] = 1
    return event


def _hostile_event(
    room: Room, i: int, action: str, state: Mapping[StateKey, str]
) -> Event:
    name = f"X{i}"
    if action == "take_power":
        current = room.events[state[PL]].content
        users = {**current.get("users", {}), EVE: 100}
        if not room.rv.privileged_creators:
            users[ALICE] = 0
        return room.build(name, "m.room.power_levels", EVE, {"users": users},
                          state_key="", state=state)  # fmt: skip
    if action == "topic":
        return room.build(name, "m.room.topic", EVE, {"topic": "pwned"},
                          state_key="", state=state)  # fmt: skip
    if action in ("ban_alice", "kick_bob"):
        target, membership = (ALICE, "ban") if action == "ban_alice" else (BOB, "leave")
        return room.build(name, "m.room.member", EVE, {"membership": membership},
                          state_key=target, state=state)  # fmt: skip
    return room.build(name, "m.room.join_rules", EVE, {"join_rule": "public"},
                      state_key="", state=state)  # fmt: skip


def _shuffled(state: Mapping[StateKey, str], order: list[int]) -> dict[StateKey, str]:
    items = sorted(state.items())
    out: list[tuple[StateKey, str]] = []
    for n in order:
        if items:
            out.append(items.pop(n % len(items)))
    out.extend(items)
    return dict(out)


@settings(max_examples=150, deadline=None)
@given(
    version=st.sampled_from(["1", "3", "10", "11", "12"]),
    honest=st.lists(_HONEST, max_size=10),
    hostile=st.lists(_HOSTILE, min_size=1, max_size=6),
    perm=st.permutations([0, 1, 2]),
    order=st.lists(st.integers(0, 50), max_size=20),
)
def test_hostile_state_sets_never_win(
    version: str,
    honest: list[tuple[int, str, str]],
    hostile: list[tuple[int, str, bool, bool, bool]],
    perm: list[int],
    order: list[int],
) -> None:
    rv = V[version]
    room = standard_room(rv)
    room.member("IME", EVE, EVE, "join")  # eve: a member with power 0
    base = (dict(room.state), list(room.last))
    forks = [(dict(base[0]), list(base[1])) for _ in range(3)]
    for i, (fork, action, target) in enumerate(honest):
        room.state, room.last = forks[fork]
        _honest(room, i, action, target)
        forks[fork] = (room.state, room.last)
    sets = [dict(state) for state, _ in forks]
    planted: set[str] = set()
    rejected: set[str] = set()
    agreed: set[str] = set()  # unmarked and in every set: no algorithm can refuse it
    for i, (fork, action, known_rejected, everywhere, shallow) in enumerate(hostile):
        # Built on the honest state: a hostile event citing another one would be
        # rejected on receipt for citing it (the pipeline's job, not resolution's).
        event = _hostile(room, i, action, forks[fork][0], shallow)
        room.events[event.event_id] = event
        for state_set in sets if everywhere else [sets[fork]]:
            state_set[event.state_tuple] = event.event_id
        planted.add(event.event_id)
        if known_rejected:
            rejected.add(event.event_id)
        elif everywhere:
            agreed.add(event.event_id)

    result = resolve_state(rv, sets, room.lookup, rejected=rejected)

    permuted = [_shuffled(sets[i], order) for i in perm]
    assert resolve_state(rv, permuted, room.lookup, rejected=rejected) == result
    assert not rejected & set(result.values())
    if rv.state_res is not StateResolution.V1 and not agreed:
        # (An agreed-on hostile event is state, and may then authorise others.)
        assert not planted & set(result.values())
    everything_rejected = resolve_state(rv, sets, room.lookup, rejected=planted)
    assert not planted & set(everything_rejected.values())
