"""A peer stopped and restarted loses no messages: the senders' queues are persisted
and catch up once the peer is back."""

from __future__ import annotations

import pytest

from tests.federation.interop.conftest import RanvierPeer
from tests.federation.interop.synapse_server import SynapseServer
from tests.federation.matrix_client import MatrixClient, eventually

pytestmark = pytest.mark.synapse


async def _shared_room(
    synapse: SynapseServer, alice: MatrixClient, bob: MatrixClient
) -> str:
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id, via=[synapse.server_name])

    async def bob_seen() -> bool:
        return (await alice.members(room_id)).get(bob.user_id) == "join"

    await eventually(bob_seen, what="bob's join on synapse")
    return room_id


async def test_messages_survive_both_servers_restarting(
    synapse: SynapseServer,
    ranvier: RanvierPeer,
    syn_alice: MatrixClient,
    rv_bob: MatrixClient,
) -> None:
    room_id = await _shared_room(synapse, syn_alice, rv_bob)

    # Synapse goes away: Bob's messages wait in Ranvier's persisted queue ...
    synapse.stop()
    try:
        await rv_bob.send(room_id, "while synapse was down 1")
        await rv_bob.send(room_id, "while synapse was down 2")
        # ... which survives Ranvier restarting too.
        await ranvier.stop()
        await ranvier.start()
        await rv_bob.send(room_id, "after ranvier restarted")
    finally:
        synapse.start()

    # Synapse is back; its next transaction to us wakes our queue at once.
    await syn_alice.send(room_id, "synapse is back")
    wanted = [
        "while synapse was down 1",
        "while synapse was down 2",
        "after ranvier restarted",
    ]

    async def delivered() -> bool:
        bodies = await syn_alice.message_bodies(room_id)
        return all(w in bodies for w in wanted)

    await eventually(delivered, within=60, what="bob's queued messages on synapse")

    async def bob_has_alice() -> bool:
        return "synapse is back" in await rv_bob.message_bodies(room_id)

    await eventually(bob_has_alice, what="alice's message on ranvier")


async def test_ranvier_catches_up_after_being_down(
    synapse: SynapseServer,
    ranvier: RanvierPeer,
    syn_alice: MatrixClient,
    rv_bob: MatrixClient,
) -> None:
    room_id = await _shared_room(synapse, syn_alice, rv_bob)
    await ranvier.stop()
    missed = [f"missed {i}" for i in range(5)]
    for body in missed:
        await syn_alice.send(room_id, body)
    await ranvier.start()
    # Our next event tells Synapse we are back; it then catches up on its queue (and
    # we fetch whatever its catch-up skips).
    await rv_bob.send(room_id, "i am back")

    async def caught_up() -> bool:
        bodies = await rv_bob.message_bodies(room_id)
        return all(m in bodies for m in missed)

    await eventually(caught_up, within=90, what="missed messages on ranvier")
    bodies = await rv_bob.message_bodies(room_id)
    assert [b for b in bodies if b.startswith("missed")] == missed
