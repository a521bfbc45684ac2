"""Message send throughput and latency: into one room, and spread over many rooms."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from bench.matrix import User
from bench.sizes import Sizes
from bench.workloads.base import (
    Context,
    PhaseResult,
    PhaseSpec,
    check_all_present,
    gather_limited,
    room_message_ids,
)

ONE_ROOM = PhaseSpec(
    "send_one_room",
    "message",
    "PUT /rooms/{id}/send/m.room.message by several members of one room, concurrently",
)
MANY_ROOMS = PhaseSpec(
    "send_many_rooms",
    "message",
    "PUT /rooms/{id}/send/m.room.message round-robin over many rooms, one sender each",
)


class MessageSend:
    name = "messages"

    def phases(self, sizes: Sizes) -> Sequence[PhaseSpec]:
        return (ONE_ROOM, MANY_ROOMS)

    async def run(self, ctx: Context) -> None:
        await self._one_room(ctx)
        await self._many_rooms(ctx)

    async def _one_room(self, ctx: Context) -> None:
        client, sizes = ctx.client, ctx.sizes
        senders = await ctx.pool.get(sizes.send_one_room_senders)
        room_id = await client.create_room(senders[0], name="send one room")
        await gather_limited(
            [partial(client.join, u, room_id) for u in senders[1:]], sizes.concurrency
        )
        async with ctx.phase(ONE_ROOM) as phase:
            sent = await gather_limited(
                [
                    partial(
                        _send, ctx, phase, senders[i % len(senders)], room_id, f"m{i}"
                    )
                    for i in range(sizes.send_one_room)
                ],
                sizes.concurrency,
            )
        found = await room_message_ids(client, senders[0], room_id)
        check_all_present(sent, found, ONE_ROOM.name)

    async def _many_rooms(self, ctx: Context) -> None:
        client, sizes = ctx.client, ctx.sizes
        owners = await ctx.pool.get(sizes.send_many_rooms_rooms)
        rooms = await gather_limited(
            [partial(client.create_room, u, name="send many rooms") for u in owners],
            sizes.concurrency,
        )
        count = len(rooms)
        async with ctx.phase(MANY_ROOMS) as phase:
            sent = await gather_limited(
                [
                    partial(
                        _send, ctx, phase, owners[i % count], rooms[i % count], f"m{i}"
                    )
                    for i in range(sizes.send_many_rooms)
                ],
                sizes.concurrency,
            )
        for index, (owner, room_id) in enumerate(zip(owners, rooms, strict=True)):
            found = await room_message_ids(client, owner, room_id)
            check_all_present(sent[index::count], found, MANY_ROOMS.name)


async def _send(
    ctx: Context, phase: PhaseResult, user: User, room_id: str, body: str
) -> str:
    return await phase.timed(ctx.client.send_message(user, room_id, body))
