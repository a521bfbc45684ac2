"""Ranvier joining Synapse rooms over real TLS federation on loopback."""

from __future__ import annotations

import pytest

from tests.federation.interop.conftest import RanvierPeer
from tests.federation.interop.synapse_server import SynapseServer
from tests.federation.matrix_client import MatrixClient, eventually

pytestmark = pytest.mark.synapse


@pytest.mark.parametrize("room_version", ["10", "11", "12"])
async def test_join_synapse_room_by_alias_and_talk(
    synapse: SynapseServer,
    ranvier: RanvierPeer,
    syn_alice: MatrixClient,
    rv_bob: MatrixClient,
    room_version: str,
) -> None:
    alias_local = f"interop{room_version}"
    room_id = await syn_alice.create_room(
        preset="public_chat", room_alias_name=alias_local, room_version=room_version
    )
    await syn_alice.send(room_id, "before bob")
    alias = f"#{alias_local}:{synapse.server_name}"

    joined = await rv_bob.join(alias)
    assert joined == room_id

    members = await rv_bob.members(room_id)
    assert members[syn_alice.user_id] == "join"
    assert members[rv_bob.user_id] == "join"
    create = await rv_bob.state_event(room_id, "m.room.create")
    assert create is not None
    assert create.get("room_version", "1") == room_version

    # Synapse sees Bob joined.
    async def bob_joined_on_synapse() -> bool:
        return (await syn_alice.members(room_id)).get(rv_bob.user_id) == "join"

    await eventually(bob_joined_on_synapse, what="bob's join on synapse")

    # Ranvier -> Synapse.
    await rv_bob.send(room_id, "hello from ranvier")

    async def synapse_has_it() -> bool:
        return "hello from ranvier" in await syn_alice.synced_bodies(room_id)

    await eventually(synapse_has_it, what="ranvier's message on synapse")

    # Synapse -> Ranvier, seen by Bob's /sync.
    await syn_alice.send(room_id, "hello from synapse")

    async def ranvier_has_it() -> bool:
        return "hello from synapse" in await rv_bob.synced_bodies(room_id)

    await eventually(ranvier_has_it, what="synapse's message on ranvier")


async def test_late_joiner_back_paginates_history_from_synapse(
    synapse: SynapseServer,
    ranvier: RanvierPeer,
    syn_alice: MatrixClient,
    rv_bob: MatrixClient,
) -> None:
    room_id = await syn_alice.create_room(preset="public_chat")
    await syn_alice.put_state(
        room_id, "m.room.history_visibility", {"history_visibility": "shared"}
    )
    sent = [f"history {i}" for i in range(30)]
    for body in sent:
        await syn_alice.send(room_id, body)

    await rv_bob.join(room_id, via=[synapse.server_name])
    # Everything before the join came from Synapse's /backfill, checked and stored.
    bodies = await rv_bob.message_bodies(room_id, limit=100)
    assert bodies == sent
    # Paginating again is served from our own copy.
    assert await rv_bob.message_bodies(room_id, limit=100) == sent
