"""Backfill when the server we backfill from cannot tell the state before some events:
the state comes from another server in the room, or the events wait as outliers until
a later backfill can place them; the rest of the batch is never dropped with them.

hs1 is the room's creator, hs3 joined early (it knows the state at the later history),
hs2 joins last and paginates back through the history it lacks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ranvier.federation.transport import TransportResponse
from tests.federation.fakes import RunningPeer, in_process_network, transport_of
from tests.federation.matrix_client import MatrixClient, eventually

OVERRIDES: dict[str, Any] = {"registration": {"enabled": True, "require_token": False}}
NOT_KNOWN = b'{"errcode":"M_NOT_FOUND","error":"No state known at this event."}'
STATE_PATHS = ("/_matrix/federation/v1/state_ids/", "/_matrix/federation/v1/state/")
BACKFILL = "/_matrix/federation/v1/backfill/"


async def outliers(peer: RunningPeer, room_id: str) -> int:
    def count(txn: Any) -> int:
        txn.execute(
            "SELECT COUNT(*) FROM events WHERE room_id = ? AND outlier"
            " AND type = 'm.room.message'",
            (room_id,),
        )
        return int(txn.fetchone()[0])

    return await peer.homeserver.db.run_read_txn("count_outliers", count)


@pytest.fixture
async def peers(tmp_path: Path) -> AsyncIterator[dict[str, RunningPeer]]:
    names = ["hs1", "hs2", "hs3"]
    overrides = dict.fromkeys(names, OVERRIDES)
    async with in_process_network(tmp_path, names, overrides=overrides) as p:
        yield p


class StateBlock:
    """hs2's `/state_ids` and `/state` requests to the `blocked` servers answer 404, and
    its `/backfill` requests to `no_backfill` servers too."""

    def __init__(self, peer: RunningPeer) -> None:
        self.blocked: set[str] = set()
        self.no_backfill: set[str] = set()
        self.asked: list[str] = []
        transport = transport_of(peer)
        real = transport.request

        async def request(destination: str, method: str, uri: str, **kw: Any) -> Any:
            if uri.startswith(STATE_PATHS):
                self.asked.append(destination)
                if destination in self.blocked:
                    return TransportResponse(404, NOT_KNOWN, "application/json")
            if uri.startswith(BACKFILL) and destination in self.no_backfill:
                return TransportResponse(404, NOT_KNOWN, "application/json")
            return await real(destination, method, uri, **kw)

        transport.request = request  # type: ignore[method-assign]


async def history(client: MatrixClient, room_id: str) -> list[str]:
    """Every message body, oldest first, paging back from now."""
    bodies: list[str] = []
    token: str | None = None
    for _ in range(30):
        params = {"dir": "b", "limit": "10", **({"from": token} if token else {})}
        page = await client.ok("GET", f"/rooms/{room_id}/messages", params=params)
        bodies.extend(
            e["content"]["body"] for e in page["chunk"] if e["type"] == "m.room.message"
        )
        token = page.get("end")
        if token is None:
            break
    return list(reversed(bodies))


async def setup_room(
    peers: dict[str, RunningPeer], http: aiohttp.ClientSession, count: int
) -> tuple[MatrixClient, str, list[str], StateBlock]:
    alice = MatrixClient(http, peers["hs1"].base_url)
    await alice.register("alice")
    bob = MatrixClient(http, peers["hs3"].base_url)
    await bob.register("bob")
    carol = MatrixClient(http, peers["hs2"].base_url)
    await carol.register("carol")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id, via=["hs1"])
    sent = [f"m{i}" for i in range(count)]
    for body in sent:
        await alice.send(room_id, body)
    block = StateBlock(peers["hs2"])
    await carol.join(room_id, via=["hs1"])

    async def hs3_sees_carol() -> bool:
        return (await bob.members(room_id)).get(carol.user_id) == "join"

    await eventually(hs3_sees_carol, what="carol's join on hs3")
    return carol, room_id, sent, block


async def test_state_comes_from_another_server_when_the_origin_cannot_say(
    peers: dict[str, RunningPeer],
) -> None:
    async with aiohttp.ClientSession() as http:
        carol, room_id, sent, block = await setup_room(peers, http, 60)
        # Only hs1 backfills, and it cannot say the state before the batch's oldest.
        block.blocked = {"hs1"}
        block.no_backfill = {"hs3"}
        assert await history(carol, room_id) == sent
    assert "hs1" in block.asked
    assert "hs3" in block.asked  # where the state before the batch came from


async def test_events_without_state_wait_as_outliers_then_join_the_timeline(
    peers: dict[str, RunningPeer],
) -> None:
    async with aiohttp.ClientSession() as http:
        carol, room_id, sent, block = await setup_room(peers, http, 60)
        block.blocked = {"hs1", "hs3"}
        # One page: nothing can be placed yet, and the lookups are bounded (a batch
        # from each server, each asking both servers about at most 3 events).
        page = await carol.ok(
            "GET", f"/rooms/{room_id}/messages", params={"dir": "b", "limit": "10"}
        )
        assert [e for e in page["chunk"] if e["type"] == "m.room.message"] == []
        assert 0 < len(block.asked) <= 2 * 3 * 2
        # The batch waits as outliers, not in the timeline.
        assert await history(carol, room_id) == []
        assert await outliers(peers["hs2"], room_id) > 0
        block.blocked = set()
        assert await history(carol, room_id) == sent
        assert await outliers(peers["hs2"], room_id) == 0
