"""Several Ranvier servers in one process federating rooms over the in-process
transport: the joining/originating side (make_join/send_join, invites, leaves, knocks,
backfill) together with the resident side, and events/EDUs flowing both ways."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from ranvier.federation.transport import InProcessTransport
from tests.federation.fakes import RunningPeer, free_port, start_peer
from tests.federation.matrix_client import MatrixCallError, MatrixClient, eventually

OVERRIDES: dict[str, Any] = {"registration": {"enabled": True, "require_token": False}}


@dataclass
class Network:
    """Ranvier peers on fixed ports, each with its own in-process transport, that can
    be stopped and started again with their data."""

    tmp_path: Path
    stack: AsyncExitStack
    transports: dict[str, InProcessTransport] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    peers: dict[str, RunningPeer] = field(default_factory=dict)
    _stacks: dict[str, AsyncExitStack] = field(default_factory=dict)

    async def start(self, name: str) -> RunningPeer:
        self.transports.setdefault(name, InProcessTransport())
        self.ports.setdefault(name, free_port())
        stack = AsyncExitStack()
        peer = await stack.enter_async_context(
            start_peer(
                self.tmp_path / name,
                name,
                transport=self.transports[name],
                overrides=OVERRIDES,
                port=self.ports[name],
            )
        )
        self._stacks[name] = stack
        self.peers[name] = peer
        for other, port in self.ports.items():
            if other != name:
                self.transports[name].register(other, f"http://127.0.0.1:{port}")
                self.transports[other].register(name, peer.base_url)
        return peer

    async def stop(self, name: str) -> None:
        self.peers.pop(name)
        await self._stacks.pop(name).aclose()

    async def close(self) -> None:
        for name in list(self._stacks):
            await self.stop(name)
        for transport in self.transports.values():
            await transport.close()


@asynccontextmanager
async def network(tmp_path: Path, names: list[str]) -> AsyncIterator[Network]:
    async with AsyncExitStack() as stack:
        net = Network(tmp_path, stack)
        try:
            for name in names:
                await net.start(name)
            yield net
        finally:
            await net.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def user(
    http: aiohttp.ClientSession, peer: RunningPeer, name: str
) -> MatrixClient:
    client = MatrixClient(http, peer.base_url)
    await client.register(name)
    return client


async def members_on(client: MatrixClient, room_id: str) -> dict[str, str]:
    return await client.members(room_id)


async def wait_member(
    client: MatrixClient, room_id: str, user_id: str, membership: str
) -> None:
    async def check() -> bool:
        try:
            return (await client.members(room_id)).get(user_id) == membership
        except MatrixCallError:
            return False

    await eventually(check, what=f"{user_id} {membership} seen by {client.user_id}")


async def wait_body(client: MatrixClient, room_id: str, body: str) -> None:
    async def check() -> bool:
        return body in await client.synced_bodies(room_id)

    await eventually(check, what=f"{body!r} in {client.user_id}'s sync")


async def test_join_by_alias_and_messages_both_ways(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with network(tmp_path, ["hs1", "hs2"]) as net:
        alice = await user(http, net.peers["hs1"], "alice")
        bob = await user(http, net.peers["hs2"], "bob")
        room_id = await alice.create_room(preset="public_chat", room_alias_name="town")
        await alice.send(room_id, "first")

        assert await bob.join("#town:hs1") == room_id
        await wait_member(alice, room_id, bob.user_id, "join")
        await bob.send(room_id, "from hs2")
        await alice.send(room_id, "from hs1")
        await wait_body(alice, room_id, "from hs2")
        await wait_body(bob, room_id, "from hs1")
        # A second remote user joins through the same path; hs2 is already in the room.
        carol = await user(http, net.peers["hs2"], "carol")
        await carol.join(room_id)
        await wait_member(alice, room_id, carol.user_id, "join")


async def test_unknown_alias_and_unreachable_server(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with network(tmp_path, ["hs1", "hs2"]) as net:
        bob = await user(http, net.peers["hs2"], "bob")
        with pytest.raises(MatrixCallError) as missing:
            await bob.join("#nothing:hs1")
        assert missing.value.status == 404
        with pytest.raises(MatrixCallError) as nowhere:
            await bob.join("!abc:nowhere.invalid")
        assert nowhere.value.status in (404, 502)


async def test_invite_leave_and_reject(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with network(tmp_path, ["hs1", "hs2"]) as net:
        alice = await user(http, net.peers["hs1"], "alice")
        bob = await user(http, net.peers["hs2"], "bob")
        room_id = await alice.create_room(preset="private_chat")
        await alice.invite(room_id, bob.user_id)

        async def invited() -> bool:
            return room_id in (await bob.sync()).get("rooms", {}).get("invite", {})

        await eventually(invited, what="invite on hs2")
        await bob.join(room_id)
        await wait_member(alice, room_id, bob.user_id, "join")
        await bob.leave(room_id)
        await wait_member(alice, room_id, bob.user_id, "leave")

        # Invited again, and this time rejected without ever joining.
        dave = await user(http, net.peers["hs2"], "dave")
        await alice.invite(room_id, dave.user_id)

        async def dave_invited() -> bool:
            return room_id in (await dave.sync()).get("rooms", {}).get("invite", {})

        await eventually(dave_invited, what="dave's invite")
        await dave.leave(room_id)
        await wait_member(alice, room_id, dave.user_id, "leave")


async def test_knock_then_admitted(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async with network(tmp_path, ["hs1", "hs2"]) as net:
        alice = await user(http, net.peers["hs1"], "alice")
        bob = await user(http, net.peers["hs2"], "bob")
        room_id = await alice.create_room(preset="private_chat", room_version="10")
        await alice.put_state(room_id, "m.room.join_rules", {"join_rule": "knock"})
        await bob.knock(room_id, via=["hs1"])
        await wait_member(alice, room_id, bob.user_id, "knock")
        await alice.invite(room_id, bob.user_id)

        async def invited() -> bool:
            return room_id in (await bob.sync()).get("rooms", {}).get("invite", {})

        await eventually(invited, what="invite after the knock")
        await bob.join(room_id)
        await wait_member(alice, room_id, bob.user_id, "join")


async def test_late_joiner_back_paginates(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with network(tmp_path, ["hs1", "hs2"]) as net:
        alice = await user(http, net.peers["hs1"], "alice")
        bob = await user(http, net.peers["hs2"], "bob")
        room_id = await alice.create_room(preset="public_chat")
        sent = [f"old {i}" for i in range(25)]
        for body in sent:
            await alice.send(room_id, body)
        await bob.join(room_id, via=["hs1"])
        # Several pages, each running past our earliest event and backfilling more.
        bodies: list[str] = []
        token: str | None = None
        for _ in range(20):
            params = {"dir": "b", "limit": "7", **({"from": token} if token else {})}
            page = await bob.ok("GET", f"/rooms/{room_id}/messages", params=params)
            bodies.extend(
                e["content"]["body"]
                for e in page["chunk"]
                if e["type"] == "m.room.message"
            )
            token = page.get("end")
            if token is None:
                break
        assert list(reversed(bodies)) == sent


async def test_bans_and_power_levels_across_servers(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with network(tmp_path, ["hs1", "hs2"]) as net:
        alice = await user(http, net.peers["hs1"], "alice")
        bob = await user(http, net.peers["hs2"], "bob")
        room_id = await alice.create_room(preset="public_chat")
        await bob.join(room_id, via=["hs1"])
        await wait_member(alice, room_id, bob.user_id, "join")
        with pytest.raises(MatrixCallError) as refused:
            await bob.put_state(room_id, "m.room.topic", {"topic": "mine"})
        assert refused.value.status == 403
        await alice.ban(room_id, bob.user_id)
        await wait_member(bob, room_id, bob.user_id, "ban")
        with pytest.raises(MatrixCallError) as banned:
            await bob.send(room_id, "let me in")
        assert banned.value.status == 403
        with pytest.raises(MatrixCallError):
            await bob.join(room_id, via=["hs1"])


async def test_concurrent_state_changes_converge_on_three_servers(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with network(tmp_path, ["hs1", "hs2", "hs3"]) as net:
        alice = await user(http, net.peers["hs1"], "alice")
        bob = await user(http, net.peers["hs2"], "bob")
        carol = await user(http, net.peers["hs3"], "carol")
        room_id = await alice.create_room(
            preset="public_chat",
            power_level_content_override={
                "users": {bob.user_id: 100, carol.user_id: 100}
            },
        )
        await bob.join(room_id, via=["hs1"])
        await carol.join(room_id, via=["hs1"])
        for c in (alice, bob):
            await wait_member(c, room_id, carol.user_id, "join")
        await wait_member(carol, room_id, bob.user_id, "join")
        for round_ in range(3):
            await asyncio.gather(
                *(
                    c.put_state(
                        room_id, "m.room.name", {"name": f"{c.user_id} {round_}"}
                    )
                    for c in (alice, bob, carol)
                )
            )
        for c in (alice, bob, carol):
            await c.send(room_id, f"settle {c.user_id}")

        async def converged() -> bool:
            states = []
            for c in (alice, bob, carol):
                events = await c.state(room_id)
                states.append(
                    {(e["type"], e["state_key"]): e["event_id"] for e in events}
                )
            return states[0] == states[1] == states[2]

        await eventually(converged, within=60, what="identical state on all servers")


async def test_peer_restart_loses_nothing(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with network(tmp_path, ["hs1", "hs2"]) as net:
        alice = await user(http, net.peers["hs1"], "alice")
        bob = await user(http, net.peers["hs2"], "bob")
        room_id = await alice.create_room(preset="public_chat")
        await bob.join(room_id, via=["hs1"])
        await wait_member(alice, room_id, bob.user_id, "join")

        await net.stop("hs2")
        queued = [f"queued {i}" for i in range(3)]
        for body in queued:
            await alice.send(room_id, body)
        # hs1 restarts too: its queue for hs2 is in the database.
        await net.stop("hs1")
        await net.start("hs1")
        await net.start("hs2")
        # hs2 talking to hs1 wakes hs1's queue for it at once (no waiting out backoff).
        await bob.send(room_id, "back online")

        async def delivered() -> bool:
            bodies = await bob.message_bodies(room_id)
            return all(q in bodies for q in queued)

        await eventually(delivered, within=30, what="queued messages on hs2")


async def test_event_persisted_but_not_yet_queued_survives_restart(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The window the restart test used to fall into under load: the event is
    committed, but the forwarder has not handed it to the sender's database queue
    when the server stops. The saved stream position makes the next start queue it."""
    async with network(tmp_path, ["hs1", "hs2"]) as net:
        alice = await user(http, net.peers["hs1"], "alice")
        bob = await user(http, net.peers["hs2"], "bob")
        room_id = await alice.create_room(preset="public_chat")
        await bob.join(room_id, via=["hs1"])
        await wait_member(alice, room_id, bob.user_id, "join")

        fed = net.peers["hs1"].homeserver.federation
        assert fed is not None
        handed_over = asyncio.Event()

        async def stuck(destinations: object, event: object) -> None:
            handed_over.set()
            await asyncio.Event().wait()  # cancelled by the shutdown

        fed.sender.enqueue_pdu = stuck  # type: ignore[method-assign]
        await alice.send(room_id, "committed, never queued")
        await asyncio.wait_for(handed_over.wait(), 10)
        await net.stop("hs1")
        await net.start("hs1")

        async def delivered() -> bool:
            return "committed, never queued" in await bob.message_bodies(room_id)

        await eventually(delivered, within=30, what="the message on hs2")


async def test_presence_is_shared_when_servers_first_share_a_room(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """Presence set before the servers shared any room reaches the other side when a
    join makes them share one, without waiting for the next change (SyTest SYN-115)."""
    async with network(tmp_path, ["hs1", "hs2"]) as net:
        alice = await user(http, net.peers["hs1"], "alice")
        bob = await user(http, net.peers["hs2"], "bob")
        for c, msg in ((alice, "here"), (bob, "there")):
            path = f"/presence/{quote(c.user_id)}/status"
            await c.ok("PUT", path, {"presence": "online", "status_msg": msg})
        room_id = await alice.create_room(preset="private_chat")
        await alice.invite(room_id, bob.user_id)
        await bob.join(room_id)

        async def sees(reader: MatrixClient, other: MatrixClient, msg: str) -> bool:
            got = await reader.ok("GET", f"/presence/{quote(other.user_id)}/status")
            return bool(
                got.get("presence") == "online" and got.get("status_msg") == msg
            )

        await eventually(
            lambda: sees(alice, bob, "there"), what="bob's presence on hs1"
        )
        await eventually(
            lambda: sees(bob, alice, "here"), what="alice's presence on hs2"
        )
