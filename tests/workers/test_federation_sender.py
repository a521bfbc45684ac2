"""The federation sender: persisted per-destination queues, batching, backoff with a
fake clock, catch-up when a peer is back, restarts; on both engines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from ranvier.core.crypto.keys import SigningKey
from ranvier.core.events.event import Event
from ranvier.core.json import decode_json, encode_json
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.federation.client import FederationClient
from ranvier.federation.retry import BackoffPolicy, DestinationRetryTracker
from ranvier.federation.transport import TransportError, TransportResponse
from ranvier.storage.database import Database
from ranvier.storage.stores.federation import FederationStore
from ranvier.util.clock import FakeClock
from ranvier.util.supervisor import TaskSupervisor
from ranvier.workers.federation_sender import FederationSender, SenderPolicy

ME = "me.test"
POLICY = BackoffPolicy(initial_ms=60_000, multiplier=2.0, max_ms=600_000)


@dataclass
class FakeTransport:
    """Records transactions; per destination: "up", "down", a status code, or "hang"."""

    mode: dict[str, str | int] = field(default_factory=dict)
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    hang: asyncio.Event = field(default_factory=asyncio.Event)

    async def request(
        self,
        destination: str,
        method: str,
        uri: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        request_timeout: float,
        max_response_bytes: int,
    ) -> TransportResponse:
        assert method == "PUT"
        assert uri.startswith("/_matrix/federation/v1/send/")
        assert headers["Authorization"].startswith("X-Matrix ")
        self.attempts[destination] = self.attempts.get(destination, 0) + 1
        mode = self.mode.get(destination, "up")
        if mode == "hang":
            await self.hang.wait()
        if mode == "down":
            raise TransportError("connection refused")
        if isinstance(mode, int):
            return TransportResponse(mode, b'{"errcode":"M_UNKNOWN","error":"no"}')
        assert body is not None
        self.sent.append((destination, decode_json(body)))
        return TransportResponse(200, b'{"pdus":{}}')

    async def close(self) -> None:
        pass

    def sent_to(self, destination: str) -> list[dict[str, Any]]:
        return [txn for d, txn in self.sent if d == destination]


@dataclass
class Rig:
    db: Database
    clock: FakeClock
    transport: FakeTransport
    store: FederationStore
    tracker: DestinationRetryTracker
    supervisor: TaskSupervisor
    sender: FederationSender

    def waiting_on_clock(self) -> bool:
        return any(not fut.done() for _deadline, fut in self.clock._waiters)


async def make_rig(
    db: Database, clock: FakeClock, transport: FakeTransport, *, enabled: bool = True
) -> Rig:
    store = FederationStore(db)
    tracker = DestinationRetryTracker(store, clock, POLICY)
    await tracker.load()
    client = FederationClient(ME, SigningKey(bytes(32), "k"), transport, tracker)
    supervisor = TaskSupervisor()
    sender = FederationSender(
        ME,
        store,
        client,
        tracker,
        clock,
        supervisor,
        policy=SenderPolicy(),
        enabled=enabled,
    )
    return Rig(db, clock, transport, store, tracker, supervisor, sender)


@pytest.fixture
async def rig(database: Database) -> AsyncIterator[Rig]:
    r = await make_rig(database, FakeClock(), FakeTransport())
    try:
        yield r
    finally:
        await r.supervisor.shutdown()


async def eventually(pred: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if pred():
                return
            await asyncio.sleep(0.005)


def event(n: int, **unsigned: Any) -> Event:
    data = {
        "type": "m.room.message",
        "room_id": "!r:me.test",
        "sender": "@u:me.test",
        "content": {"n": n},
        "origin_server_ts": n,
        "unsigned": unsigned,
    }
    return Event(data, f"$e{n}", KNOWN_ROOM_VERSIONS["10"])


async def test_pdus_and_edus_are_delivered_in_order(rig: Rig) -> None:
    await rig.sender.enqueue_pdu(
        ["b.test", ME, "b.test"], event(1, transaction_id="t", age_ts=5)
    )
    await rig.sender.enqueue_edu("b.test", "m.typing", {"typing": True})
    await eventually(
        lambda: not rig.sender.active_destinations and bool(rig.transport.sent)
    )
    pdus = [p for txn in rig.transport.sent_to("b.test") for p in txn["pdus"]]
    edus = [e for txn in rig.transport.sent_to("b.test") for e in txn["edus"]]
    assert [p["content"]["n"] for p in pdus] == [1]
    # Local-only unsigned data does not leave the server.
    assert pdus[0]["unsigned"] == {"age_ts": 5}
    assert edus == [{"edu_type": "m.typing", "content": {"typing": True}}]
    txn = rig.transport.sent[0][1]
    assert txn["origin"] == ME
    assert txn["origin_server_ts"] == rig.clock.time_msec()
    assert ME not in rig.transport.attempts
    assert await rig.store.get_pending_destinations() == []


async def test_transactions_are_batched_50_pdus_100_edus(rig: Rig) -> None:
    for n in range(60):
        await rig.store.enqueue_pdu(
            ["b.test"], f"$e{n}", encode_json({"n": n}).decode(), 0
        )
    for n in range(120):
        await rig.store.enqueue_edu(
            "b.test", "m.receipt", encode_json({"n": n}).decode(), 0
        )
    await rig.sender.start()
    await eventually(
        lambda: not rig.sender.active_destinations and len(rig.transport.sent) == 2
    )
    first, second = rig.transport.sent_to("b.test")
    assert (len(first["pdus"]), len(first["edus"])) == (50, 100)
    assert (len(second["pdus"]), len(second["edus"])) == (10, 20)
    assert [p["n"] for p in first["pdus"] + second["pdus"]] == list(range(60))
    assert [e["content"]["n"] for e in first["edus"] + second["edus"]] == list(
        range(120)
    )


async def test_dead_peer_backs_off_without_delaying_others(rig: Rig) -> None:
    rig.transport.mode["b.test"] = "down"
    await rig.sender.enqueue_edu("b.test", "m.typing", {"n": 1})
    await rig.sender.enqueue_edu("c.test", "m.typing", {"n": 2})
    await eventually(lambda: len(rig.transport.sent_to("c.test")) == 1)
    await eventually(rig.waiting_on_clock)
    assert rig.transport.attempts["b.test"] == 1
    assert rig.tracker.retry_at("b.test") == rig.clock.time_msec() + 60_000
    # More work for the dead peer waits for its backoff; it is not an attempt.
    await rig.sender.enqueue_edu("b.test", "m.typing", {"n": 3})
    rig.clock.advance(30)
    await asyncio.sleep(0.05)
    assert rig.transport.attempts["b.test"] == 1
    rig.clock.advance(31)
    await eventually(lambda: rig.transport.attempts["b.test"] == 2)
    await eventually(rig.waiting_on_clock)
    # Second failure: the interval doubles.
    assert rig.tracker.retry_at("b.test") == rig.clock.time_msec() + 120_000
    assert rig.sender.active_destinations == ["b.test"]


async def test_peer_coming_back_triggers_catch_up(rig: Rig) -> None:
    rig.transport.mode["b.test"] = "down"
    await rig.sender.enqueue_edu("b.test", "m.typing", {"n": 1})
    await eventually(lambda: rig.transport.attempts.get("b.test") == 1)
    await eventually(rig.waiting_on_clock)
    rig.transport.mode["b.test"] = "up"
    # E.g. an authenticated request from b.test arrived: no clock advance needed.
    await rig.tracker.record_success("b.test")
    await eventually(lambda: len(rig.transport.sent_to("b.test")) == 1)
    await eventually(lambda: not rig.sender.active_destinations)
    assert await rig.store.get_pending_destinations() == []


async def test_queue_survives_restart(database: Database) -> None:
    clock = FakeClock()
    transport = FakeTransport(mode={"b.test": "down"})
    first = await make_rig(database, clock, transport)
    await first.sender.enqueue_pdu(["b.test"], event(7))
    await eventually(lambda: transport.attempts.get("b.test") == 1)
    await eventually(first.waiting_on_clock)
    await first.supervisor.shutdown()

    transport.mode["b.test"] = "up"
    second = await make_rig(database, clock, transport)
    try:
        await second.sender.start()
        # Still backing off after the restart: the persisted retry state says so.
        assert second.sender.active_destinations == ["b.test"]
        await eventually(second.waiting_on_clock)
        assert transport.attempts["b.test"] == 1
        clock.advance(61)
        await eventually(lambda: len(transport.sent_to("b.test")) == 1)
        assert [p["content"]["n"] for p in transport.sent_to("b.test")[0]["pdus"]] == [
            7
        ]
        await eventually(lambda: not second.sender.active_destinations)
        assert await second.store.get_pending_destinations() == []
        assert await second.store.get_destination_retry_states() == []
    finally:
        await second.supervisor.shutdown()


async def test_refused_transaction_is_dropped_but_5xx_retried(rig: Rig) -> None:
    rig.transport.mode["b.test"] = 400
    await rig.sender.enqueue_edu("b.test", "m.typing", {"n": 1})
    await eventually(lambda: not rig.sender.active_destinations)
    assert rig.transport.attempts["b.test"] == 1
    assert await rig.store.get_pending_destinations() == []
    assert not rig.tracker.is_backing_off("b.test")

    rig.transport.mode["c.test"] = 502
    await rig.sender.enqueue_edu("c.test", "m.typing", {"n": 2})
    await eventually(rig.waiting_on_clock)
    assert rig.tracker.is_backing_off("c.test")
    assert await rig.store.get_pending_destinations() == ["c.test"]


async def test_enqueue_never_waits_for_the_network(rig: Rig) -> None:
    rig.transport.mode["b.test"] = "hang"
    async with asyncio.timeout(2):
        await rig.sender.enqueue_edu("b.test", "m.typing", {"n": 1})
        await eventually(lambda: rig.transport.attempts.get("b.test") == 1)
        await rig.sender.enqueue_pdu(["b.test", "c.test"], event(2))
        await eventually(lambda: len(rig.transport.sent_to("c.test")) == 1)
        await eventually(lambda: rig.sender.active_destinations == ["b.test"])
    assert rig.transport.attempts["b.test"] == 1


async def test_disabled_sender_queues_nothing(database: Database) -> None:
    r = await make_rig(database, FakeClock(), FakeTransport(), enabled=False)
    await r.sender.enqueue_edu("b.test", "m.typing", {})
    await r.sender.enqueue_pdu(["b.test"], event(1))
    assert await r.store.get_pending_destinations() == []
    assert r.sender.active_destinations == []
