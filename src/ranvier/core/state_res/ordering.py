"""The two orderings of state resolution v2: reverse topological power and mainline."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet

from ranvier.core.state_res.graph import AuthGraph

PowerKey = tuple[int | float, int, str]
_KeyFunc = Callable[[str], PowerKey]


def reverse_topological_power_sort(
    graph: AuthGraph, power_event_ids: Iterable[str], full_conflicted: AbstractSet[str]
) -> list[str]:
    """Step 1 of v2: the power events and their auth ancestors in the full conflicted set,
    in *reverse topological power ordering*.

    Kahn's algorithm over the auth-event DAG restricted to the full conflicted set, always
    taking the smallest ready event by: sender's power level descending, then
    origin_server_ts ascending, then event_id ascending.
    """
    edges: dict[str, set[str]] = {}
    todo = list(power_event_ids)
    while todo:
        event_id = todo.pop()
        if event_id in edges:
            continue
        parents = {a for a in graph.auth_ids(event_id) if a in full_conflicted}
        edges[event_id] = parents
        todo.extend(p for p in parents if p not in edges)

    def key(event_id: str) -> PowerKey:
        event = graph.get(event_id)
        ts = event.origin_server_ts if event is not None else 0
        return (-graph.sender_power(event_id), ts, event_id)

    return lexicographical_topological_sort(edges, key)


def lexicographical_topological_sort(
    edges: Mapping[str, set[str]], key: _KeyFunc
) -> list[str]:
    """Kahn's algorithm from the roots (nodes with no auth parents), smallest key first.

    `edges` maps each node to the nodes it depends on (its auth events); every such node
    must itself be a key of `edges`. Nodes on a cycle (impossible in a valid DAG) are
    left out.
    """
    remaining = {node: len(parents) for node, parents in edges.items()}
    children: dict[str, list[str]] = {node: [] for node in edges}
    for node, parents in edges.items():
        for parent in parents:
            children[parent].append(node)
    heap = [(key(node), node) for node, count in remaining.items() if count == 0]
    heapq.heapify(heap)
    ordered: list[str] = []
    while heap:
        _, node = heapq.heappop(heap)
        ordered.append(node)
        for child in children[node]:
            remaining[child] -= 1
            if remaining[child] == 0:
                heapq.heappush(heap, (key(child), child))
    return ordered


def mainline_sort(
    graph: AuthGraph, event_ids: Iterable[str], resolved_power_levels: str | None
) -> list[str]:
    """Step 3 of v2: order events by their *mainline position* relative to the resolved
    power-levels event, then origin_server_ts, then event_id.

    Positions are numbered from the oldest mainline event (1) to the resolved one; an
    event whose power-levels ancestry never meets the mainline gets 0, so ascending order
    here is the spec's "greater position first". Every power-levels event walked is
    memoised with the position it leads to, so shared ancestry is walked once.
    """
    mainline: list[str] = []
    seen: set[str] = set()
    current = resolved_power_levels
    while current is not None and current not in seen:
        seen.add(current)
        mainline.append(current)
        current = graph.power_levels_parent(current)
    position: dict[str, int] = {
        event_id: len(mainline) - i for i, event_id in enumerate(mainline)
    }

    def mainline_position(event_id: str) -> int:
        path: list[str] = []
        walked: set[str] = set()
        node = graph.power_levels_parent(event_id)
        while node is not None and node not in position and node not in walked:
            walked.add(node)
            path.append(node)
            node = graph.power_levels_parent(node)
        found = position.get(node, 0) if node is not None else 0
        for pl_id in path:
            position[pl_id] = found
        return found

    def key(event_id: str) -> tuple[int, int, str]:
        event = graph.get(event_id)
        ts = event.origin_server_ts if event is not None else 0
        return (mainline_position(event_id), ts, event_id)

    return sorted(event_ids, key=key)
