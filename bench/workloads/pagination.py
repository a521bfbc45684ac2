"""/messages back-pagination through a room's whole history."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from bench.matrix import VerificationError
from bench.sizes import Sizes
from bench.workloads.base import Context, PhaseSpec, gather_limited

PAGINATE = PhaseSpec(
    "paginate",
    "page",
    "GET /rooms/{id}/messages?dir=b from the newest event to the room's creation",
)


class Pagination:
    name = "pagination"

    def phases(self, sizes: Sizes) -> Sequence[PhaseSpec]:
        return (PAGINATE,)

    async def run(self, ctx: Context) -> None:
        client, sizes = ctx.client, ctx.sizes
        owner = await ctx.pool.fresh("historian")
        room_id = await client.create_room(owner, name="long history")
        sent = await gather_limited(
            [
                partial(client.send_message, owner, room_id, f"page {i}")
                for i in range(sizes.pagination_events)
            ],
            sizes.concurrency,
        )
        max_pages = sizes.pagination_events // sizes.pagination_limit + 50
        async with ctx.phase(PAGINATE) as phase:
            passes: list[list[str]] = []
            for _ in range(sizes.pagination_passes):
                found: list[str] = []
                token: str | None = None
                for _page in range(max_pages):
                    resp = await phase.timed(
                        client.messages(
                            owner,
                            room_id,
                            from_token=token,
                            limit=sizes.pagination_limit,
                        )
                    )
                    chunk = resp.get("chunk") or []
                    found.extend(
                        e["event_id"]
                        for e in chunk
                        if e.get("type") == "m.room.message"
                    )
                    end = resp.get("end")
                    if not chunk or not isinstance(end, str):
                        break
                    token = end
                else:
                    raise VerificationError(
                        f"pagination did not end in {max_pages} pages"
                    )
                passes.append(found)
        for found in passes:
            if sorted(found) != sorted(sent):
                raise VerificationError(
                    f"paginated {len(found)} messages ({len(set(found))} distinct), "
                    f"sent {len(sent)}"
                )
