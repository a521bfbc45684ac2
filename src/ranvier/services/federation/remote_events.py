"""Ordering batches of events received from another server (pure, no I/O).

* `order_by_auth`: every event after the events it cites in `auth_events`, so each can
  be checked against already-checked auth events (spec: S-S API > Checks performed on
  receipt of a PDU, step 4: "passes authorization rules based on the event's auth
  events") - e.g. a `send_join` response's state and auth chain.
* `order_by_prev`: every event after its `prev_events` (oldest first) - e.g. a
  `/backfill` response, which arrives newest first.

Edges to events outside the batch are ignored (those are stored already, or missing,
which the checks then report). Ties break on depth, then event ID (deterministic). A
cycle cannot come from valid events (IDs are hashes); should one appear, its events
go last.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable

from ranvier.core.events.event import Event

__all__ = ["order_by_auth", "order_by_prev"]


def _topological(
    events: Iterable[Event], edges: Callable[[Event], list[str]]
) -> list[Event]:
    by_id = {e.event_id: e for e in events}
    waiting_on: dict[str, int] = {}
    dependants: dict[str, list[str]] = {}
    for event in by_id.values():
        inside = {x for x in edges(event) if x in by_id and x != event.event_id}
        waiting_on[event.event_id] = len(inside)
        for parent in inside:
            dependants.setdefault(parent, []).append(event.event_id)
    ready = [
        (e.depth, e.event_id) for e in by_id.values() if not waiting_on[e.event_id]
    ]
    heapq.heapify(ready)
    out: list[Event] = []
    while ready:
        _, event_id = heapq.heappop(ready)
        out.append(by_id[event_id])
        for child in dependants.get(event_id, ()):
            waiting_on[child] -= 1
            if waiting_on[child] == 0:
                heapq.heappush(ready, (by_id[child].depth, child))
    if len(out) < len(by_id):
        placed = {e.event_id for e in out}
        rest = [e for e in by_id.values() if e.event_id not in placed]
        out.extend(sorted(rest, key=lambda e: (e.depth, e.event_id)))
    return out


def order_by_auth(events: Iterable[Event]) -> list[Event]:
    return _topological(events, lambda e: e.auth_event_ids)


def order_by_prev(events: Iterable[Event]) -> list[Event]:
    return _topological(events, lambda e: e.prev_event_ids)
