"""Benchmark: state resolution v2 and v2.1 on a big room with two long forks.

A synthetic room of MEMBERS joined users forks in two: on one side the admin changes the
topic, kicks members and re-issues power levels; on the other a moderator (level 50)
changes the name and topic and kicks other members. Each fork adds FORK_EVENTS state
events, so the two state sets differ in well over 100 conflicted events. The script
resolves the two forks' states under room v11 (state res v2) and v12 (v2.1) and prints
the best and median time of REPEATS runs.

    .venv/bin/python bench/state_res.py [--members 10000] [--fork-events 80]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from ranvier.core.events.event import Event, StateKey
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from ranvier.core.state_res import resolve_state

ADMIN = "@admin:example.com"
MOD = "@mod:example.com"
PL_KEY: StateKey = ("m.room.power_levels", "")


class BenchRoom:
    def __init__(self, rv: RoomVersion) -> None:
        self.rv = rv
        self.events: dict[str, Event] = {}
        self.ts = 0
        create = self._make(
            "create",
            "m.room.create",
            ADMIN,
            {"room_version": rv.identifier},
            "",
            [],
            None,
        )
        if not rv.implicit_room_creator:
            create.data["content"]["creator"] = ADMIN
        self.room_id = create.room_id
        self.create_id = create.event_id
        self.state: dict[StateKey, str] = {("m.room.create", ""): create.event_id}
        self.last = [create.event_id]

    def _make(
        self,
        name: str,
        event_type: str,
        sender: str,
        content: dict[str, Any],
        state_key: str | None,
        auth: list[str],
        room_id: str | None,
    ) -> Event:
        self.ts += 1
        event_id = f"${name}:example.com" if self.rv.is_v1_event_format else f"${name}"
        data: dict[str, Any] = {
            "type": event_type,
            "sender": sender,
            "content": content,
            "origin_server_ts": self.ts,
            "depth": self.ts,
            "prev_events": [],
            "auth_events": auth,
        }
        if state_key is not None:
            data["state_key"] = state_key
        if room_id is not None:
            data["room_id"] = room_id
        elif not self.rv.room_id_from_create_event:
            data["room_id"] = "!bench:example.com"
        event = Event(data, event_id, self.rv)
        self.events[event_id] = event
        return event

    def send(
        self,
        name: str,
        event_type: str,
        sender: str,
        content: dict[str, Any],
        state_key: str | None = None,
        target: str | None = None,
    ) -> Event:
        keys = [PL_KEY, ("m.room.member", sender)]
        if not self.rv.room_id_from_create_event:
            keys.append(("m.room.create", ""))
        if event_type == "m.room.member":
            keys.append(("m.room.member", target or sender))
            if content.get("membership") in ("join", "invite"):
                keys.append(("m.room.join_rules", ""))
        auth = sorted({self.state[k] for k in keys if k in self.state})
        event = self._make(
            name, event_type, sender, content, state_key, auth, self.room_id
        )
        event.data["prev_events"] = list(self.last)
        self.last = [event.event_id]
        if state_key is not None:
            self.state[(event_type, state_key)] = event.event_id
        return event


def build(
    rv: RoomVersion, members: int, fork_events: int
) -> tuple[BenchRoom, list[dict[StateKey, str]]]:
    room = BenchRoom(rv)
    room.send("join-admin", "m.room.member", ADMIN, {"membership": "join"}, ADMIN)
    users = {MOD: 50} if rv.privileged_creators else {ADMIN: 100, MOD: 50}
    room.send("pl0", "m.room.power_levels", ADMIN, {"users": users}, "")
    room.send("jr", "m.room.join_rules", ADMIN, {"join_rule": "public"}, "")
    room.send("join-mod", "m.room.member", MOD, {"membership": "join"}, MOD)
    names = [f"@user{i}:example.com" for i in range(members)]
    for i, user in enumerate(names):
        room.send(f"join{i}", "m.room.member", user, {"membership": "join"}, user)
    base_state, base_last = dict(room.state), list(room.last)

    # Fork A: the admin.
    for i in range(fork_events):
        kind = i % 4
        if kind == 0:
            room.send(f"a-topic{i}", "m.room.topic", ADMIN, {"topic": f"a{i}"}, "")
        elif kind == 1:
            user = names[i]
            room.send(
                f"a-kick{i}",
                "m.room.member",
                ADMIN,
                {"membership": "leave"},
                user,
                user,
            )
        elif kind == 2:
            new_users = {**users, names[i]: 10}
            room.send(
                f"a-pl{i}", "m.room.power_levels", ADMIN, {"users": new_users}, ""
            )
        else:
            user = names[i]
            room.send(
                f"a-ban{i}", "m.room.member", ADMIN, {"membership": "ban"}, user, user
            )
    fork_a = dict(room.state)

    # Fork B: the moderator, from the same base.
    room.state, room.last = dict(base_state), list(base_last)
    for i in range(fork_events):
        kind = i % 3
        if kind == 0:
            room.send(f"b-name{i}", "m.room.name", MOD, {"name": f"b{i}"}, "")
        elif kind == 1:
            room.send(f"b-topic{i}", "m.room.topic", MOD, {"topic": f"b{i}"}, "")
        else:
            user = names[fork_events + i]
            room.send(
                f"b-kick{i}", "m.room.member", MOD, {"membership": "leave"}, user, user
            )
    fork_b = dict(room.state)
    return room, [fork_a, fork_b]


def bench(version: str, members: int, fork_events: int, repeats: int) -> None:
    rv = KNOWN_ROOM_VERSIONS[version]
    room, sets = build(rv, members, fork_events)
    conflicted = {
        k for k in set(sets[0]) | set(sets[1]) if sets[0].get(k) != sets[1].get(k)
    }
    conflicted_events = {s[k] for s in sets for k in conflicted if k in s}
    times: list[float] = []
    result: dict[StateKey, str] = {}
    for _ in range(repeats):
        start = time.perf_counter()
        result = resolve_state(rv, sets, room.events.get)
        times.append(time.perf_counter() - start)
    best, median = min(times), statistics.median(times)
    state_events = len(sets[0]) + len(sets[1])
    print(
        f"room v{version} ({rv.state_res.name}): {len(room.events)} events, "
        f"{len(sets[0])}/{len(sets[1])} state entries, {len(conflicted)} conflicted keys, "
        f"{len(conflicted_events)} conflicted events -> {len(result)} resolved entries\n"
        f"  best {best * 1000:.1f} ms, median {median * 1000:.1f} ms; "
        f"{state_events / best:,.0f} state entries/s, "
        f"{len(conflicted_events) / best:,.0f} conflicted events/s"
    )
    assert result[PL_KEY] == sets[0][PL_KEY]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--fork-events", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for version in ("11", "12"):
        bench(version, args.members, args.fork_events, args.repeats)


if __name__ == "__main__":
    main()
