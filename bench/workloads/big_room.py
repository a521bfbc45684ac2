"""Many users join one room; then one member's initial sync (with/without lazy-loading)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from bench.matrix import (
    User,
    VerificationError,
    joined_rooms_of,
    state_events,
    timeline_events,
)
from bench.sizes import Sizes
from bench.workloads.base import Context, PhaseResult, PhaseSpec, gather_limited
from bench.workloads.initial_sync import (
    FILTER_FULL,
    FILTER_LAZY,
    check_initial_sync,
    fill_room,
)

JOIN = PhaseSpec(
    "big_room_join", "join", "POST /join/{room} by J users into one public room"
)
SYNC = PhaseSpec(
    "big_room_initial_sync",
    "sync",
    "initial sync of one member of the big room (all member events in state)",
)
SYNC_LAZY = PhaseSpec(
    "big_room_initial_sync_lazy",
    "sync",
    "the same initial sync with lazy_load_members=true",
)


class BigRoom:
    name = "big_room"

    def phases(self, sizes: Sizes) -> Sequence[PhaseSpec]:
        return (JOIN, SYNC, SYNC_LAZY)

    async def run(self, ctx: Context) -> None:
        client, sizes = ctx.client, ctx.sizes
        creator = await ctx.pool.fresh("bigcreator")
        room_id = await client.create_room(creator, name="big room")
        joiners = await ctx.pool.get(sizes.big_room_joins)

        async def join(phase: PhaseResult, user: User) -> str:
            return await phase.timed(client.join(user, room_id))

        async with ctx.phase(JOIN) as phase:
            await gather_limited(
                [partial(join, phase, u) for u in joiners], sizes.concurrency
            )
        joined = await client.joined_members(creator, room_id)
        expected_members = {creator.user_id, *(u.user_id for u in joiners)}
        if set(joined) != expected_members:
            raise VerificationError(
                f"joined_members has {len(joined)} users, expected {len(expected_members)}"
            )

        member = await ctx.pool.fresh("bigmember")
        await client.join(member, room_id)
        expected_members.add(member.user_id)
        last = await fill_room(ctx, joiners, room_id, sizes.big_room_messages)
        for spec, sync_filter, lazy in (
            (SYNC, FILTER_FULL, False),
            (SYNC_LAZY, FILTER_LAZY, True),
        ):
            async with ctx.phase(spec) as phase:
                for _ in range(sizes.big_room_sync_repeats):
                    resp = await phase.timed(
                        client.sync(member, filter_json=sync_filter)
                    )
                    check_initial_sync(resp, {room_id: last})
                    if not lazy:
                        _check_all_members(resp, room_id, expected_members)


def _check_all_members(
    resp: dict[str, object], room_id: str, expected: set[str]
) -> None:
    room = joined_rooms_of(resp)[room_id]
    members = {
        e.get("state_key")
        for e in state_events(room) + timeline_events(room)
        if e.get("type") == "m.room.member"
    }
    if not expected <= members:
        raise VerificationError(
            f"non-lazy initial sync shows {len(members)} of {len(expected)} members"
        )
