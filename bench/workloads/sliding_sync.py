"""Simplified sliding sync (MSC4186) the way Element X opens its room list: the first
page (a 20-room range, timeline_limit 1, Element X's required_state) of a user in R
rooms, and an incremental response after one new message, for each R.

The incremental phase is what a phone does all day: its cost should follow what
changed (one room), not how many rooms the user is in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from bench.matrix import VerificationError
from bench.procstats import cpu_seconds
from bench.sizes import Sizes
from bench.workloads.base import Context, PhaseSpec, gather_limited

RANGE_END = 19
# What matrix-rust-sdk's room list service asks for (its "all_rooms" list).
REQUIRED_STATE = [
    ["m.room.encryption", ""],
    ["m.room.member", "$LAZY"],
    ["m.room.member", "$ME"],
    ["m.room.name", ""],
    ["m.room.canonical_alias", ""],
    ["m.room.power_levels", ""],
    ["m.room.join_rules", ""],
    ["m.room.tombstone", ""],
    ["m.room.create", ""],
    ["m.room.history_visibility", ""],
    ["m.space.parent", "*"],
    ["m.space.child", "*"],
]


def room_list_request(conn_id: str) -> dict[str, Any]:
    return {
        "conn_id": conn_id,
        "lists": {
            "all_rooms": {
                "ranges": [[0, RANGE_END]],
                "timeline_limit": 1,
                "required_state": REQUIRED_STATE,
                "filters": {"not_room_types": ["m.space"]},
            }
        },
        "extensions": {
            "account_data": {"enabled": True},
            "receipts": {"enabled": True, "rooms": ["*"]},
            "typing": {"enabled": True},
        },
    }


def first_page(rooms: int) -> PhaseSpec:
    return PhaseSpec(
        f"sliding_first_page_{rooms}",
        "sync",
        f"POST simplified sliding sync without pos; user in {rooms} rooms, range [0,19]",
    )


def incremental(rooms: int) -> PhaseSpec:
    return PhaseSpec(
        f"sliding_incremental_{rooms}",
        "sync",
        f"POST simplified sliding sync with pos after one new message; {rooms} rooms",
    )


class SlidingSync:
    name = "sliding_sync"

    def phases(self, sizes: Sizes) -> Sequence[PhaseSpec]:
        return tuple(
            spec
            for r in sizes.sliding_rooms
            for spec in (first_page(r), incremental(r))
        )

    async def run(self, ctx: Context) -> None:
        for rooms in ctx.sizes.sliding_rooms:
            await self._run_size(ctx, rooms)

    async def _run_size(self, ctx: Context, count: int) -> None:
        client, sizes = ctx.client, ctx.sizes
        user = await ctx.pool.fresh(f"sliding{count}_")
        rooms = await gather_limited(
            [
                partial(client.create_room, user, name=f"sliding {i}")
                for i in range(count)
            ],
            sizes.concurrency,
        )
        last = await client.send_message(user, rooms[0], "newest")
        await wait_until_idle(ctx)
        body = room_list_request("room-list")
        resp: dict[str, Any] = {}
        async with ctx.phase(first_page(count)) as phase:
            for _ in range(sizes.sliding_repeats):
                # No pos: every repeat starts the connection over.
                resp = await phase.timed(client.sliding_sync(user, body))
        check_first_page(resp, count, rooms[0], last)
        pos = resp["pos"]
        async with ctx.phase(incremental(count)) as phase:
            for i in range(sizes.sliding_repeats):
                # The oldest rooms first, so each message bumps a room into the range.
                room = rooms[(len(rooms) - 1 - i) % len(rooms)]
                event_id = await client.send_message(user, room, f"live {i}")
                resp = await phase.timed(client.sliding_sync(user, body, pos=pos))
                check_incremental(resp, room, event_id)
                pos = resp["pos"]


async def wait_until_idle(ctx: Context, *, limit_s: float = 180.0) -> None:
    """Let the server finish the background work the setup caused before measuring.

    Creating hundreds of rooms back to back leaves work queued behind the responses
    (Ranvier evaluates push rules after persisting, and a sync waits for that to
    catch up before it reports notification counts; Synapse does it before it
    answers). Without this, the first phase would measure that backlog, not the
    sync. Idle = under 5 % of one core over half a second."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = cpu_seconds(ctx.server_pid)
        await asyncio.sleep(0.5)
        if cpu_seconds(ctx.server_pid) - before < 0.025:
            return


def check_first_page(resp: dict[str, Any], count: int, top: str, last: str) -> None:
    lists = resp.get("lists") or {}
    got = (lists.get("all_rooms") or {}).get("count")
    if got != count:
        raise VerificationError(f"list count {got}, expected {count}")
    rooms = resp.get("rooms") or {}
    if len(rooms) != min(count, RANGE_END + 1):
        raise VerificationError(f"{len(rooms)} rooms in the first page")
    timeline = (rooms.get(top) or {}).get("timeline") or []
    if not timeline or timeline[-1].get("event_id") != last:
        raise VerificationError("the most recent room does not end with its message")


def check_incremental(resp: dict[str, Any], room: str, event_id: str) -> None:
    timeline = ((resp.get("rooms") or {}).get(room) or {}).get("timeline") or []
    if event_id not in {e.get("event_id") for e in timeline}:
        raise VerificationError(f"{room}: the new message is not in the response")
