"""Ranvier asking Synapse about a space: the children Ranvier has no copy of come from
Synapse's federation `/hierarchy`, and Synapse's private rooms stay hidden; Synapse
reads the hierarchy of a Ranvier space the same way."""

from __future__ import annotations

import aiohttp
import pytest

from tests.federation.interop.conftest import RanvierPeer
from tests.federation.interop.synapse_server import SynapseServer
from tests.federation.matrix_client import MatrixClient, q

pytestmark = pytest.mark.synapse

SPACE = {"creation_content": {"type": "m.space"}}


async def test_hierarchy_of_a_synapse_space(
    synapse: SynapseServer,
    ranvier: RanvierPeer,
    syn_alice: MatrixClient,
    rv_bob: MatrixClient,
) -> None:
    space = await syn_alice.create_room(preset="public_chat", name="Syn space", **SPACE)
    lobby = await syn_alice.create_room(preset="public_chat", name="Syn lobby")
    hidden = await syn_alice.create_room(preset="private_chat", name="Syn hidden")
    via = {"via": [synapse.server_name]}
    await syn_alice.put_state(space, "m.space.child", via, state_key=lobby)
    await syn_alice.put_state(space, "m.space.child", via, state_key=hidden)
    await rv_bob.join(space, via=[synapse.server_name])

    async with (
        aiohttp.ClientSession() as s,
        s.get(
            f"{rv_bob.base_url}/_matrix/client/v1/rooms/{q(space)}/hierarchy",
            headers={"Authorization": f"Bearer {rv_bob.token}"},
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        out = await resp.json()
    rooms = {r["room_id"]: r for r in out["rooms"]}
    assert out["rooms"][0]["room_id"] == space
    assert rooms[lobby]["name"] == "Syn lobby"
    assert rooms[lobby]["num_joined_members"] == 1
    assert hidden not in rooms
    children = {c["state_key"] for c in rooms[space]["children_state"]}
    assert children == {lobby, hidden}


async def test_synapse_reads_the_hierarchy_of_a_ranvier_space(
    synapse: SynapseServer,
    ranvier: RanvierPeer,
    syn_alice: MatrixClient,
    rv_bob: MatrixClient,
) -> None:
    space = await rv_bob.create_room(preset="public_chat", name="Rv space", **SPACE)
    lobby = await rv_bob.create_room(preset="public_chat", name="Rv lobby")
    await rv_bob.put_state(
        space, "m.space.child", {"via": [ranvier.server_name]}, state_key=lobby
    )
    await syn_alice.join(space, via=[ranvier.server_name])
    async with (
        aiohttp.ClientSession() as s,
        s.get(
            f"{syn_alice.base_url}/_matrix/client/v1/rooms/{q(space)}/hierarchy",
            headers={"Authorization": f"Bearer {syn_alice.token}"},
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        out = await resp.json()
    names = [r.get("name") for r in out["rooms"]]
    assert names == ["Rv space", "Rv lobby"]
