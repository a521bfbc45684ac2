"""Ordering of received event batches (services/federation/remote_events.py)."""

from __future__ import annotations

from typing import Any

from ranvier.core.events.event import Event
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.services.federation.remote_events import order_by_auth, order_by_prev

RV = KNOWN_ROOM_VERSIONS["10"]


def ev(event_id: str, depth: int, *, auth: list[str], prev: list[str]) -> Event:
    data: dict[str, Any] = {
        "type": "m.room.message",
        "room_id": "!r:hs",
        "sender": "@a:hs",
        "content": {},
        "depth": depth,
        "origin_server_ts": 0,
        "auth_events": auth,
        "prev_events": prev,
    }
    return Event(data, event_id, RV)


def test_auth_events_come_first_whatever_the_input_order() -> None:
    create = ev("$create", 1, auth=[], prev=[])
    member = ev("$member", 2, auth=["$create"], prev=["$create"])
    levels = ev("$levels", 3, auth=["$create", "$member"], prev=["$member"])
    # An auth event that sits deeper than its dependant still goes first.
    odd = ev("$odd", 9, auth=["$create"], prev=["$levels"])
    late = ev("$late", 4, auth=["$odd", "$levels"], prev=["$levels"])
    outside = ev("$outside", 5, auth=["$not-in-batch"], prev=[])
    for batch in (
        [late, odd, levels, member, create, outside],
        [outside, create, member, levels, odd, late],
    ):
        ids = [e.event_id for e in order_by_auth(batch)]
        assert ids.index("$create") < ids.index("$member") < ids.index("$levels")
        assert ids.index("$odd") < ids.index("$late")
        assert set(ids) == {e.event_id for e in batch}


def test_prev_order_is_oldest_first_and_deterministic() -> None:
    a = ev("$a", 1, auth=[], prev=[])
    b = ev("$b", 2, auth=[], prev=["$a"])
    c = ev("$c", 2, auth=[], prev=["$a"])
    d = ev("$d", 3, auth=[], prev=["$b", "$c"])
    assert [e.event_id for e in order_by_prev([d, c, b, a])] == ["$a", "$b", "$c", "$d"]


def test_cycles_do_not_lose_events() -> None:
    x = ev("$x", 1, auth=["$y"], prev=[])
    y = ev("$y", 1, auth=["$x"], prev=[])
    assert [e.event_id for e in order_by_auth([y, x])] == ["$x", "$y"]
