"""The per-service sender with a fake store, sink and clock: only events of interest
are sent, in order, one transaction at a time; a failing service is retried with
doubling back-off and gets the same transaction ID again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Sequence
from typing import Any

import orjson

from ranvier.core.appservice import parse_registration
from ranvier.core.events.event import Event
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.storage.stores.appservices import PendingTxn
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.util.clock import FakeClock
from ranvier.workers.appservices import AppServiceSender, AppServiceUnreachable

SERVICE = parse_registration(
    {
        "id": "irc",
        "url": "http://127.0.0.1:1",
        "as_token": "a",
        "hs_token": "h",
        "sender_localpart": "ircbot",
        "namespaces": {"users": [{"exclusive": True, "regex": "@irc_.*:hs"}]},
    },
    "hs",
    "irc.yaml",
)


class FakeStore:
    def __init__(self, events: list[StoredEvent]) -> None:
        self.events = events
        self.position = 0
        self.txns: dict[int, str] = {}
        self.last_txn = 0

    async def get_or_init_position(self, as_id: str, current: int) -> int:
        return self.position

    async def get_oldest_txn(self, as_id: str) -> PendingTxn | None:
        if not self.txns:
            return None
        txn_id = min(self.txns)
        return PendingTxn(txn_id, self.txns[txn_id])

    async def count_txns(self, as_id: str) -> int:
        return len(self.txns)

    async def create_txn(self, as_id: str, body: str, position: int) -> int:
        self.last_txn += 1
        self.txns[self.last_txn] = body
        self.position = position
        return self.last_txn

    async def set_position(self, as_id: str, position: int) -> None:
        self.position = position

    async def delete_txn(self, as_id: str, txn_id: int) -> None:
        del self.txns[txn_id]

    async def get_events_after(
        self, from_pos: int, to_pos: int, limit: int
    ) -> list[StoredEvent]:
        chosen = [e for e in self.events if from_pos < e.stream_ordering <= to_pos]
        return chosen[:limit]

    async def get_joined_members(
        self, room_ids: Collection[str]
    ) -> dict[str, set[str]]:
        return {}


class FakeSerializer:
    async def serialize(
        self, events: Sequence[StoredEvent], **_: Any
    ) -> list[dict[str, Any]]:
        return [{"event_id": e.event.event_id} for e in events]


class FlakySink:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: list[tuple[int, list[str]]] = []

    async def send_transaction(self, service: Any, txn_id: int, body: bytes) -> None:
        ids = [e["event_id"] for e in orjson.loads(body)["events"]]
        self.attempts.append((txn_id, ids))
        if self.failures > 0:
            self.failures -= 1
            raise AppServiceUnreachable("down")


def stored(n: int, sender: str) -> StoredEvent:
    data = {
        "type": "m.room.message",
        "room_id": "!r:hs",
        "sender": sender,
        "content": {"body": str(n)},
        "origin_server_ts": n,
    }
    return StoredEvent(
        event=Event(data, f"$e{n}", KNOWN_ROOM_VERSIONS["10"]), stream_ordering=n
    )


def last_error(sender: AppServiceSender) -> str | None:
    # A call, so that mypy does not keep the narrowing from an earlier assert.
    return sender.last_error


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_interesting_events_in_order_with_backoff() -> None:
    events = [
        stored(1, "@irc_a:hs"),
        stored(2, "@alice:hs"),  # not of interest: no member of the namespace
        stored(3, "@irc_b:hs"),
    ]
    store = FakeStore(events)
    sink = FlakySink(failures=2)
    clock = FakeClock()
    position = [3]
    sender = AppServiceSender(
        SERVICE,
        store=store,
        current_position=lambda: position[0],
        serializer=FakeSerializer(),
        sink=sink,
        clock=clock,
    )
    task = asyncio.create_task(sender.run())
    try:
        await settle()
        assert sink.attempts == [(1, ["$e1", "$e3"])]
        assert last_error(sender) == "down"
        clock.advance(0.9)  # the first back-off is 1 s
        await settle()
        assert len(sink.attempts) == 1
        clock.advance(0.1)
        await settle()
        assert len(sink.attempts) == 2
        clock.advance(1.9)  # then 2 s
        await settle()
        assert len(sink.attempts) == 2
        clock.advance(0.1)
        await settle()
        # The same transaction, same ID, until it is acknowledged.
        assert sink.attempts == [(1, ["$e1", "$e3"])] * 3
        assert store.txns == {}
        assert last_error(sender) is None
        # New events wake the sender; the next transaction has the next ID.
        events.append(stored(4, "@irc_c:hs"))
        position[0] = 4
        sender.wake()
        await settle()
        assert sink.attempts[-1] == (2, ["$e4"])
        assert store.position == 4
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
