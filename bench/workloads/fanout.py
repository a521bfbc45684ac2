"""Sync fan-out: N users long-poll /sync in one room; one user sends messages.

Latency of one delivery = time from the moment the send request is issued until a
syncer's long-poll returns with the event. Messages go one at a time: the next is sent
only when every syncer has received the previous one, so each message is one clean
wave of N wake-ups. Throughput is deliveries per second over the phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from bench.matrix import (
    MatrixError,
    User,
    VerificationError,
    joined_rooms_of,
    timeline_events,
)
from bench.sizes import Sizes
from bench.workloads.base import Context, PhaseResult, PhaseSpec, gather_limited

LONG_POLL_MS = 30_000
DELIVERY_TIMEOUT_S = 60.0


def _spec(users: int) -> PhaseSpec:
    return PhaseSpec(
        f"sync_fanout_{users}",
        "delivery",
        f"{users} users long-poll /sync in one room; send→receive time of each delivery",
    )


class _Wave:
    """Book-keeping of which syncer saw which message."""

    def __init__(self, syncers: int) -> None:
        self.syncers = syncers
        self.sent_at: dict[str, float] = {}
        self.arrivals: dict[str, int] = {}
        self.complete: dict[str, asyncio.Event] = {}
        self.failure: BaseException | None = None
        self.failed = asyncio.Event()

    def expect(self, marker: str) -> asyncio.Event:
        self.arrivals[marker] = 0
        self.complete[marker] = asyncio.Event()
        self.sent_at[marker] = time.perf_counter()
        return self.complete[marker]

    def arrived(self, marker: str) -> None:
        self.arrivals[marker] += 1
        if self.arrivals[marker] == self.syncers:
            self.complete[marker].set()

    def fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
        self.failed.set()


class SyncFanout:
    name = "sync_fanout"

    def phases(self, sizes: Sizes) -> Sequence[PhaseSpec]:
        return [_spec(n) for n in sizes.fanout_users]

    async def run(self, ctx: Context) -> None:
        for users in ctx.sizes.fanout_users:
            await self._one_size(ctx, users)

    async def _one_size(self, ctx: Context, count: int) -> None:
        client, sizes = ctx.client, ctx.sizes
        sender = await ctx.pool.fresh("fanoutsender")
        room_id = await client.create_room(sender, name=f"fan-out {count}")
        syncers = await ctx.pool.get(count)
        await gather_limited(
            [partial(client.join, u, room_id) for u in syncers], sizes.concurrency
        )
        sync_filter: dict[str, Any] = {
            "room": {
                "rooms": [room_id],
                "timeline": {"limit": 20},
                "state": {"lazy_load_members": True},
            }
        }
        tokens = await gather_limited(
            [partial(_initial_token, ctx, u, sync_filter) for u in syncers],
            sizes.concurrency,
        )
        wave = _Wave(count)
        spec = _spec(count)
        result = PhaseResult(name=spec.name, unit=spec.unit)
        tasks = [
            asyncio.create_task(
                _poll(ctx, u, since, room_id, sync_filter, wave, result)
            )
            for u, since in zip(syncers, tokens, strict=True)
        ]
        try:
            # Let every long-poll reach the server and park before the first send.
            await asyncio.sleep(1.0)
            async with ctx.phase(spec) as phase:
                for index in range(sizes.fanout_messages):
                    marker = f"fanout {count} {index} {secrets.token_hex(4)}"
                    done = wave.expect(marker)
                    await client.send_message(sender, room_id, marker)
                    await _wait_wave(done, wave, marker)
                phase.ops = result.ops
                phase.latencies_ms = result.latencies_ms
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        expected = count * sizes.fanout_messages
        if phase.ops != expected:
            raise VerificationError(f"{phase.ops} deliveries, expected {expected}")


async def _initial_token(ctx: Context, user: User, sync_filter: dict[str, Any]) -> str:
    resp = await ctx.client.sync(user, filter_json=sync_filter)
    token: str = resp["next_batch"]
    return token


async def _wait_wave(done: asyncio.Event, wave: _Wave, marker: str) -> None:
    waiters = [
        asyncio.create_task(done.wait()),
        asyncio.create_task(wave.failed.wait()),
    ]
    try:
        await asyncio.wait(
            waiters, timeout=DELIVERY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for waiter in waiters:
            waiter.cancel()
    if wave.failure is not None:
        raise VerificationError(f"a syncer failed: {wave.failure!r}") from wave.failure
    if not done.is_set():
        raise VerificationError(
            f"only {wave.arrivals[marker]} of {wave.syncers} syncers received "
            f"{marker!r} within {DELIVERY_TIMEOUT_S:.0f}s"
        )


async def _poll(
    ctx: Context,
    user: User,
    since: str,
    room_id: str,
    sync_filter: dict[str, Any],
    wave: _Wave,
    result: PhaseResult,
) -> None:
    seen: set[str] = set()
    try:
        while True:
            resp = await ctx.client.sync(
                user, since=since, timeout_ms=LONG_POLL_MS, filter_json=sync_filter
            )
            received = time.perf_counter()
            since = resp["next_batch"]
            room = joined_rooms_of(resp).get(room_id)
            if room is None:
                continue
            for event in timeline_events(room):
                body = (event.get("content") or {}).get("body")
                if body in wave.sent_at and body not in seen:
                    seen.add(body)
                    result.record(received - wave.sent_at[body])
                    wave.arrived(body)
    except asyncio.CancelledError:
        raise
    except (MatrixError, VerificationError, OSError, TimeoutError) as exc:
        wave.fail(exc)
    except Exception as exc:  # e.g. aiohttp.ClientError: still report, never hang
        wave.fail(exc)
