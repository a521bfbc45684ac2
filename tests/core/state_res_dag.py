"""Runs the JSON DAG fixtures of tests/core/fixtures/state_res (format: README.md there)."""

from __future__ import annotations

import heapq
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ranvier.core.events.event import Event, StateKey
from ranvier.core.room_versions import RoomVersion
from ranvier.core.state_res import resolve_state
from tests.core.auth_builders import ALICE, Room, event_id_for

FIXTURES = Path(__file__).parent / "fixtures" / "state_res"
DEFAULT_VERSIONS = ["2", "10", "11", "12"]

_INITIAL: list[dict[str, Any]] = [
    {
        "id": "IMA",
        "type": "m.room.member",
        "sender": "@alice",
        "state_key": "@alice",
        "content": {"membership": "join"},
    },
    {
        "id": "IPOWER",
        "type": "m.room.power_levels",
        "sender": "@alice",
        "state_key": "",
        "content": {"users": {"@alice": 100}},
    },
    {
        "id": "IJR",
        "type": "m.room.join_rules",
        "sender": "@alice",
        "state_key": "",
        "content": {"join_rule": "public"},
    },
    {
        "id": "IMB",
        "type": "m.room.member",
        "sender": "@bob",
        "state_key": "@bob",
        "content": {"membership": "join"},
    },
    {
        "id": "IMC",
        "type": "m.room.member",
        "sender": "@charlie",
        "state_key": "@charlie",
        "content": {"membership": "join"},
    },
    {
        "id": "IMZ",
        "type": "m.room.member",
        "sender": "@zara",
        "state_key": "@zara",
        "content": {"membership": "join"},
    },
    {"id": "START", "type": "m.room.message", "sender": "@zara", "content": {}},
    {"id": "END", "type": "m.room.message", "sender": "@zara", "content": {}},
]
_INITIAL_EDGES = ["START", "IMZ", "IMC", "IMB", "IJR", "IPOWER", "IMA", "CREATE"]


def expand(value: Any) -> Any:
    """`@name` (no colon) -> `@name:example.com`, recursively (keys included)."""
    if isinstance(value, str):
        return (
            f"{value}:example.com"
            if value.startswith("@") and ":" not in value
            else value
        )
    if isinstance(value, list):
        return [expand(v) for v in value]
    if isinstance(value, dict):
        return {expand(k): expand(v) for k, v in value.items()}
    return value


def _drop_creator(content: dict[str, Any]) -> dict[str, Any]:
    users = content.get("users")
    if isinstance(users, dict):
        return {**content, "users": {u: v for u, v in users.items() if u != ALICE}}
    return content


@dataclass
class DagResult:
    room: Room
    ids: dict[str, str]  # node name -> event ID
    state_after: dict[str, dict[StateKey, str]]
    resolved: dict[StateKey, str]


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def fixture_names() -> list[str]:
    return sorted(p.name for p in FIXTURES.glob("*.json"))


def _topological(prevs: Mapping[str, set[str]]) -> list[str]:
    children: dict[str, list[str]] = {n: [] for n in prevs}
    remaining = {n: len(p) for n, p in prevs.items()}
    for node, parents in prevs.items():
        for parent in parents:
            children[parent].append(node)
    ready = [n for n, c in remaining.items() if c == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for child in children[node]:
            remaining[child] -= 1
            if remaining[child] == 0:
                heapq.heappush(ready, child)
    assert len(order) == len(prevs), "the edges have a cycle"
    return order


def run_dag(fixture: Mapping[str, Any], rv: RoomVersion) -> DagResult:
    """Build the fixture's DAG in room version `rv` and resolve the state it asks for."""
    room = Room(rv)
    specs = {e["id"]: expand(e) for e in [*_INITIAL, *fixture["events"]]}
    prevs: dict[str, set[str]] = {name: set() for name in specs}
    prevs["CREATE"] = set()
    for chain in [_INITIAL_EDGES, *fixture["edges"]]:
        for child, parent in itertools.pairwise(chain):
            prevs[child].add(parent)
    ids = {name: event_id_for(name, rv) for name in prevs}
    state_after: dict[str, dict[StateKey, str]] = {"CREATE": dict(room.state)}
    for name in _topological(prevs):
        if name == "CREATE":
            continue
        parents = sorted(prevs[name])
        before = _state_before(room, rv, [state_after[p] for p in parents])
        spec = specs[name]
        content = spec["content"]
        if rv.privileged_creators and spec["type"] == "m.room.power_levels":
            content = _drop_creator(content)
        auth = [ids[a] for a in spec["auth"]] if "auth" in spec else None
        event = room.build(
            name,
            spec["type"],
            spec["sender"],
            content,
            state_key=spec.get("state_key"),
            prev=[ids[p] for p in parents],
            auth=auth,
            state=before,
        )
        room.events[event.event_id] = event
        after = dict(before)
        if event.is_state():
            after[event.state_tuple] = event.event_id
        state_after[name] = after
    resolve = fixture.get("resolve")
    if resolve is None:
        resolved = state_after["END"]
    else:
        sets = [
            _named_state(room, [ids[n] for n in names])
            for names in resolve["state_sets"]
        ]
        resolved = resolve_state(rv, sets, room.lookup)
    return DagResult(room, ids, state_after, resolved)


def _state_before(
    room: Room, rv: RoomVersion, states: Sequence[dict[StateKey, str]]
) -> dict[StateKey, str]:
    if len(states) == 1:
        return dict(states[0])
    return resolve_state(rv, states, room.lookup)


def _named_state(room: Room, event_ids: list[str]) -> dict[StateKey, str]:
    state: dict[StateKey, str] = {}
    for event_id in event_ids:
        event: Event = room.events[event_id]
        state[event.state_tuple] = event_id
    return state


def compare(fixture: Mapping[str, Any], rv: RoomVersion, result: DagResult) -> None:
    expected_names: list[str] = fixture.get("expected_by_version", {}).get(
        rv.identifier, fixture["expected"]
    )
    expected: dict[StateKey, str | None] = {}
    for name in expected_names:
        if name.startswith("-"):
            event_type, _, state_key = name[1:].partition("|")
            expected[(event_type, state_key)] = None
        else:
            event = result.room.events[result.ids[name]]
            expected[event.state_tuple] = event.event_id
    start = result.state_after["START"]
    keys = set(expected) | {
        k
        for k in set(start) | set(result.resolved)
        if start.get(k) != result.resolved.get(k)
    }
    actual = {k: result.resolved.get(k) for k in keys}
    wanted = {k: expected.get(k, start.get(k)) for k in keys}
    assert actual == wanted, f"{fixture['description']}\n got {actual}\nwant {wanted}"
