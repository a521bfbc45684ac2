"""Initial sync of a user in many rooms with a history, with and without lazy-loading."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from bench.matrix import (
    User,
    VerificationError,
    joined_rooms_of,
    state_events,
    timeline_events,
)
from bench.sizes import Sizes
from bench.workloads.base import Context, PhaseSpec, gather_limited

TIMELINE_LIMIT = 10
FILTER_FULL: dict[str, Any] = {"room": {"timeline": {"limit": TIMELINE_LIMIT}}}
FILTER_LAZY: dict[str, Any] = {
    "room": {
        "timeline": {"limit": TIMELINE_LIMIT},
        "state": {"lazy_load_members": True},
    }
}

PLAIN = PhaseSpec(
    "initial_sync",
    "sync",
    "GET /sync without since; user in R rooms x M messages, K other members each",
)
LAZY = PhaseSpec(
    "initial_sync_lazy",
    "sync",
    "same initial sync with filter room.state.lazy_load_members=true",
)


class InitialSync:
    name = "initial_sync"

    def phases(self, sizes: Sizes) -> Sequence[PhaseSpec]:
        return (PLAIN, LAZY)

    async def run(self, ctx: Context) -> None:
        client, sizes = ctx.client, ctx.sizes
        owner = await ctx.pool.fresh("syncer")
        members = await ctx.pool.get(sizes.initial_sync_members)
        rooms = await gather_limited(
            [
                partial(client.create_room, owner, name=f"history {i}")
                for i in range(sizes.initial_sync_rooms)
            ],
            sizes.concurrency,
        )
        await gather_limited(
            [partial(client.join, m, r) for r in rooms for m in members],
            sizes.concurrency,
        )
        senders = [owner, *members]
        last_events = await gather_limited(
            [
                partial(fill_room, ctx, senders, r, sizes.initial_sync_messages)
                for r in rooms
            ],
            sizes.concurrency,
        )
        expected = dict(zip(rooms, last_events, strict=True))
        for spec, sync_filter in ((PLAIN, FILTER_FULL), (LAZY, FILTER_LAZY)):
            async with ctx.phase(spec) as phase:
                for _ in range(sizes.initial_sync_repeats):
                    resp = await phase.timed(
                        client.sync(owner, filter_json=sync_filter)
                    )
                    check_initial_sync(resp, expected)


async def fill_room(
    ctx: Context, senders: Sequence[User], room_id: str, count: int
) -> str:
    """Send ``count`` messages in turn by ``senders``; return the last event ID."""
    last = ""
    for index in range(count):
        sender = senders[index % len(senders)]
        last = await ctx.client.send_message(sender, room_id, f"history {index}")
    return last


def check_initial_sync(resp: dict[str, Any], last_events: dict[str, str]) -> None:
    """Every expected room is joined, ends with its last message, and its senders'
    membership is known (in state or in the timeline)."""
    joined = joined_rooms_of(resp)
    missing = set(last_events) - set(joined)
    if missing:
        raise VerificationError(f"initial sync lacks {len(missing)} joined rooms")
    for room_id, last_event in last_events.items():
        timeline = timeline_events(joined[room_id])
        if not timeline or timeline[-1].get("event_id") != last_event:
            raise VerificationError(
                f"{room_id}: timeline does not end with {last_event}"
            )
        members = {
            e.get("state_key")
            for e in state_events(joined[room_id]) + timeline
            if e.get("type") == "m.room.member"
        }
        senders = {e.get("sender") for e in timeline}
        if not senders <= members:
            raise VerificationError(
                f"{room_id}: no membership for senders {sorted(map(str, senders - members))}"
            )
