"""Workload sizes for the three modes: smoke (tests), quick (minutes) and full."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Sizes:
    mode: str
    repetitions: int
    concurrency: int
    settle_s: float
    """Wait after readiness before sampling idle RSS."""
    workload_timeout_s: float
    registrations: int
    logins: int
    send_one_room: int
    send_one_room_senders: int
    send_many_rooms: int
    send_many_rooms_rooms: int
    fanout_users: tuple[int, ...]
    fanout_messages: int
    initial_sync_rooms: int
    initial_sync_messages: int
    initial_sync_members: int
    """Other users joined to each of the syncing user's rooms."""
    initial_sync_repeats: int
    big_room_joins: int
    big_room_messages: int
    big_room_sync_repeats: int
    pagination_events: int
    pagination_limit: int
    pagination_passes: int
    sliding_rooms: tuple[int, ...]
    """Rooms of the syncing user, one sliding-sync workload per size (20-room range)."""
    sliding_repeats: int

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FULL = Sizes(
    mode="full",
    repetitions=3,
    concurrency=8,
    settle_s=10.0,
    workload_timeout_s=1800.0,
    registrations=200,
    logins=100,
    send_one_room=1000,
    send_one_room_senders=8,
    send_many_rooms=1000,
    send_many_rooms_rooms=50,
    fanout_users=(50, 200),
    fanout_messages=20,
    initial_sync_rooms=100,
    initial_sync_messages=20,
    initial_sync_members=10,
    initial_sync_repeats=10,
    big_room_joins=1000,
    big_room_messages=20,
    big_room_sync_repeats=10,
    pagination_events=1000,
    pagination_limit=20,
    pagination_passes=3,
    sliding_rooms=(10, 100, 1000),
    sliding_repeats=10,
)

# Quick mode keeps both servers on one engine under ~3 minutes on a 2-core machine.
# Synapse's bcrypt (cost 12) makes every registration/login cost ~0.3 s of CPU there,
# so the user counts are what is scaled down most.
QUICK = dataclasses.replace(
    FULL,
    mode="quick",
    repetitions=1,
    settle_s=3.0,
    workload_timeout_s=300.0,
    registrations=10,
    logins=10,
    send_one_room=100,
    send_many_rooms=100,
    send_many_rooms_rooms=10,
    fanout_users=(20,),
    fanout_messages=10,
    initial_sync_rooms=15,
    initial_sync_messages=8,
    initial_sync_members=3,
    initial_sync_repeats=5,
    big_room_joins=50,
    big_room_messages=10,
    big_room_sync_repeats=5,
    pagination_events=150,
    pagination_passes=2,
    sliding_rooms=(10, 100),
    sliding_repeats=5,
)

SMOKE = dataclasses.replace(
    FULL,
    mode="smoke",
    repetitions=1,
    concurrency=4,
    settle_s=0.5,
    workload_timeout_s=60.0,
    registrations=3,
    logins=3,
    send_one_room=10,
    send_one_room_senders=2,
    send_many_rooms=10,
    send_many_rooms_rooms=3,
    fanout_users=(3,),
    fanout_messages=3,
    initial_sync_rooms=3,
    initial_sync_messages=3,
    initial_sync_members=2,
    initial_sync_repeats=2,
    big_room_joins=5,
    big_room_messages=3,
    big_room_sync_repeats=2,
    pagination_events=30,
    pagination_limit=10,
    pagination_passes=1,
    sliding_rooms=(3,),
    sliding_repeats=2,
)

MODES = {s.mode: s for s in (SMOKE, QUICK, FULL)}


def scaled_down_note(sizes: Sizes) -> str | None:
    """Say how a reduced mode differs from the full sizes, or None for full."""
    if sizes.mode == FULL.mode:
        return None
    changed = [
        f"{f.name}={getattr(sizes, f.name)} (full: {getattr(FULL, f.name)})"
        for f in dataclasses.fields(Sizes)
        if f.name != "mode" and getattr(sizes, f.name) != getattr(FULL, f.name)
    ]
    return f"{sizes.mode} mode: sizes scaled down from full: " + ", ".join(changed)
