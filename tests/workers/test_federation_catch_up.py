"""Bounded outbound queues: catch-up for destinations down for long (or with too many
queued PDUs in a room), coalesced typing/presence EDUs, and recovery that does not
wait out a backoff caused by a stale failure. Fake clock; both engines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from ranvier.core.crypto.keys import SigningKey
from ranvier.core.events.event import Event
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.federation.client import FederationClient
from ranvier.federation.retry import DestinationRetryTracker
from ranvier.federation.transport import TransportError, TransportResponse
from ranvier.storage.database import Database
from ranvier.storage.stores.federation import FederationStore
from ranvier.util.clock import FakeClock
from ranvier.util.supervisor import TaskSupervisor
from ranvier.workers.federation_sender import FederationSender, SenderPolicy
from tests.workers.test_federation_sender import (
    ME,
    POLICY,
    FakeTransport,
    eventually,
)

TEN_MINUTES_S = 600


@dataclass
class FakeExtremities:
    """The room's local forward extremities, as the test says they are."""

    latest: dict[str, list[Event]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def get_local_forward_extremities(self, room_id: str) -> list[Event]:
        self.asked.append(room_id)
        return list(self.latest.get(room_id, []))


@dataclass
class Rig:
    clock: FakeClock
    transport: FakeTransport
    store: FederationStore
    tracker: DestinationRetryTracker
    supervisor: TaskSupervisor
    sender: FederationSender
    extremities: FakeExtremities

    def waiting_on_clock(self) -> bool:
        return any(not fut.done() for _deadline, fut in self.clock._waiters)

    async def recover(self, destination: str) -> None:
        self.transport.mode[destination] = "up"
        await self.tracker.record_success(destination)  # e.g. it contacted us

    def sent_pdus(self, destination: str) -> list[str]:
        return [
            p["content"]["name"]
            for txn in self.transport.sent_to(destination)
            for p in txn["pdus"]
        ]


async def _rig(
    database: Database, transport: FakeTransport, policy: SenderPolicy
) -> Rig:
    clock = FakeClock()
    store = FederationStore(database)
    tracker = DestinationRetryTracker(store, clock, POLICY)
    client = FederationClient(ME, SigningKey(bytes(32), "k"), transport, tracker)
    supervisor = TaskSupervisor()
    sender = FederationSender(
        ME, store, client, tracker, clock, supervisor, policy=policy
    )
    extremities = FakeExtremities()
    sender.set_room_extremities(extremities)
    return Rig(clock, transport, store, tracker, supervisor, sender, extremities)


@pytest.fixture
async def rig(database: Database) -> AsyncIterator[Rig]:
    r = await _rig(database, FakeTransport(), SenderPolicy(max_pdus_per_room=100))
    try:
        yield r
    finally:
        await r.supervisor.shutdown()


def event(name: str, room: str = "a") -> Event:
    data = {
        "type": "m.room.message",
        "room_id": f"!{room}:me.test",
        "sender": "@u:me.test",
        "content": {"name": name},
        "origin_server_ts": 1,
    }
    return Event(data, f"${name}", KNOWN_ROOM_VERSIONS["10"])


async def queue_down(rig: Rig, *events: Event) -> None:
    """Queue events for b.test while it is down (the first one fails an attempt)."""
    rig.transport.mode["b.test"] = "down"
    for ev in events:
        await rig.sender.enqueue_pdu(["b.test"], ev)
    await eventually(lambda: rig.transport.attempts.get("b.test", 0) >= 1)
    await eventually(rig.waiting_on_clock)


async def test_short_outage_sends_everything_in_order(rig: Rig) -> None:
    await queue_down(rig, *(event(f"a{n}") for n in range(5)))
    rig.clock.advance(30)
    await rig.recover("b.test")
    await eventually(lambda: not rig.sender.active_destinations)
    assert rig.sent_pdus("b.test") == [f"a{n}" for n in range(5)]
    assert rig.extremities.asked == []


async def test_long_outage_keeps_latest_pdu_per_room(rig: Rig) -> None:
    await queue_down(rig, event("a0"), event("a1"), event("b0", room="b"))
    rig.clock.advance(TEN_MINUTES_S + 1)
    await eventually(rig.waiting_on_clock)  # it retried and failed again meanwhile
    for n in range(2, 6):
        await rig.sender.enqueue_pdu(["b.test"], event(f"a{n}"))
    # Room b got nothing new: its queue is as it was.
    batch = await rig.store.get_outbound_batch("b.test", 50, 0)
    assert [p.event_id for p in batch.pdus] == ["$b0", "$a5"]

    rig.extremities.latest["!a:me.test"] = [event("a5")]
    await rig.recover("b.test")
    await eventually(lambda: not rig.sender.active_destinations)
    assert rig.sent_pdus("b.test") == ["b0", "a5"]
    assert await rig.store.get_pending_destinations() == []


async def test_caught_up_pdu_no_longer_an_extremity_is_replaced(rig: Rig) -> None:
    await queue_down(rig, event("a0"))
    rig.clock.advance(TEN_MINUTES_S + 1)
    await eventually(rig.waiting_on_clock)
    await rig.sender.enqueue_pdu(["b.test"], event("a1"))
    # Since then the room moved on: two local events are its extremities (e.g. sent
    # while b.test was not in the room, so never queued for it).
    rig.extremities.latest["!a:me.test"] = [event("x1"), event("x2")]
    await rig.recover("b.test")
    await eventually(lambda: not rig.sender.active_destinations)
    assert rig.sent_pdus("b.test") == ["x1", "x2"]
    # Caught up: later events of the room go out as queued, without asking again.
    asked = len(rig.extremities.asked)
    await rig.sender.enqueue_pdu(["b.test"], event("a2"))
    await eventually(lambda: rig.sent_pdus("b.test")[-1:] == ["a2"])
    assert len(rig.extremities.asked) == asked


async def test_room_over_the_limit_is_cut_to_its_latest_pdu(database: Database) -> None:
    r = await _rig(database, FakeTransport(), SenderPolicy(max_pdus_per_room=3))
    try:
        await queue_down(r, *(event(f"a{n}") for n in range(3)))
        await r.sender.enqueue_pdu(["b.test", "c.test"], event("a3"))
        # b.test's 4th PDU of the room crossed the limit; c.test (up) got it at once.
        batch = await r.store.get_outbound_batch("b.test", 50, 0)
        assert [p.event_id for p in batch.pdus] == ["$a3"]
        await eventually(lambda: r.sent_pdus("c.test") == ["a3"])
        await r.sender.enqueue_pdu(["b.test"], event("a4"))
        r.extremities.latest["!a:me.test"] = [event("a4")]
        await r.recover("b.test")
        await eventually(lambda: not r.sender.active_destinations)
        # a3 is behind the extremity a4, which is queued too: sent once.
        assert r.sent_pdus("b.test") == ["a4"]
    finally:
        await r.supervisor.shutdown()


async def test_typing_and_presence_edus_are_coalesced(rig: Rig) -> None:
    rig.transport.mode["b.test"] = "down"

    async def typing(user: str, on: bool) -> None:
        content = {"room_id": "!a:me.test", "user_id": user, "typing": on}
        await rig.sender.enqueue_edu("b.test", "m.typing", content)

    async def presence(user: str, state: str) -> None:
        content = {"push": [{"user_id": user, "presence": state}]}
        await rig.sender.enqueue_edu("b.test", "m.presence", content)

    await typing("@u:me.test", True)
    await eventually(rig.waiting_on_clock)
    await presence("@u:me.test", "online")
    await rig.sender.enqueue_edu("b.test", "m.receipt", {"r": 1})
    await typing("@v:me.test", True)
    await typing("@u:me.test", False)
    await presence("@u:me.test", "unavailable")
    await rig.sender.enqueue_edu("b.test", "m.receipt", {"r": 2})
    await rig.recover("b.test")
    await eventually(lambda: not rig.sender.active_destinations)
    [txn] = rig.transport.sent_to("b.test")
    assert [(e["edu_type"], _edu_summary(e["content"])) for e in txn["edus"]] == [
        ("m.receipt", "1"),
        ("m.typing", "@v:me.test True"),
        ("m.typing", "@u:me.test False"),
        ("m.presence", "@u:me.test unavailable"),
        ("m.receipt", "2"),
    ]


def _edu_summary(content: Mapping[str, Any]) -> str:
    if "typing" in content:
        return f"{content['user_id']} {content['typing']}"
    if "push" in content:
        push = content["push"][0]
        return f"{push['user_id']} {push['presence']}"
    return str(content["r"])


@dataclass
class FailsAfterHang(FakeTransport):
    """b.test: the first request hangs until released, then fails (a request that was
    on its way when the peer restarted)."""

    released: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: asyncio.Event = field(default_factory=asyncio.Event)

    async def request(
        self, destination: str, *args: Any, **kw: Any
    ) -> TransportResponse:
        if destination == "b.test" and not self.released.is_set():
            self.in_flight.set()
            await self.released.wait()
            self.attempts[destination] = self.attempts.get(destination, 0) + 1
            raise TransportError("connection reset")
        return await super().request(destination, *args, **kw)


async def test_stale_failure_does_not_put_a_live_peer_into_backoff(
    database: Database,
) -> None:
    transport = FailsAfterHang()
    r = await _rig(database, transport, SenderPolicy())
    try:
        await r.sender.enqueue_pdu(["b.test"], event("a0"))
        await asyncio.wait_for(transport.in_flight.wait(), 5)
        # The peer restarts and talks to us while our request is still on its way.
        await r.tracker.record_success("b.test")
        transport.released.set()
        # Its failure predates that contact: retried at once, no clock advance.
        await eventually(lambda: r.sent_pdus("b.test") == ["a0"])
        assert not r.tracker.is_backing_off("b.test")
    finally:
        await r.supervisor.shutdown()


async def test_failure_without_contact_still_backs_off(database: Database) -> None:
    transport = FailsAfterHang()
    r = await _rig(database, transport, SenderPolicy())
    try:
        await r.sender.enqueue_pdu(["b.test"], event("a0"))
        await asyncio.wait_for(transport.in_flight.wait(), 5)
        transport.released.set()
        await eventually(r.waiting_on_clock)
        assert r.tracker.is_backing_off("b.test")
        assert r.sent_pdus("b.test") == []
    finally:
        await r.supervisor.shutdown()
