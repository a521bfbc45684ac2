"""Invites, leaves, bans, power levels and state conflicts between Ranvier and Synapse."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.federation.interop.conftest import RanvierPeer
from tests.federation.interop.synapse_server import SynapseServer
from tests.federation.matrix_client import MatrixCallError, MatrixClient, eventually

pytestmark = pytest.mark.synapse


async def _invited_rooms(client: MatrixClient) -> set[str]:
    out = await client.sync()
    return set(out.get("rooms", {}).get("invite", {}))


async def _joined_room(
    synapse: SynapseServer, alice: MatrixClient, bob: MatrixClient, **create: object
) -> str:
    """A room on Synapse (Alice) that Ranvier's Bob has joined, both servers agreeing."""
    room_id = await alice.create_room(preset="public_chat", **create)
    await bob.join(room_id, via=[synapse.server_name])

    async def bob_seen() -> bool:
        return (await alice.members(room_id)).get(bob.user_id) == "join"

    await eventually(bob_seen, what="bob's join on synapse")
    return room_id


async def test_synapse_user_invites_ranvier_user_who_joins(
    synapse: SynapseServer,
    ranvier: RanvierPeer,
    syn_alice: MatrixClient,
    rv_bob: MatrixClient,
) -> None:
    room_id = await syn_alice.create_room(preset="private_chat")
    await syn_alice.invite(room_id, rv_bob.user_id)

    async def invited() -> bool:
        return room_id in await _invited_rooms(rv_bob)

    await eventually(invited, what="the invite on ranvier")
    # Invite-only room: the join goes through the inviter's server.
    await rv_bob.join(room_id)
    assert (await rv_bob.members(room_id))[rv_bob.user_id] == "join"
    await rv_bob.send(room_id, "thanks for the invite")

    async def arrived() -> bool:
        return "thanks for the invite" in await syn_alice.synced_bodies(room_id)

    await eventually(arrived, what="bob's message on synapse")


async def test_ranvier_user_rejects_synapse_invite(
    synapse: SynapseServer,
    ranvier: RanvierPeer,
    syn_alice: MatrixClient,
    rv_bob: MatrixClient,
) -> None:
    room_id = await syn_alice.create_room(preset="private_chat")
    await syn_alice.invite(room_id, rv_bob.user_id)

    async def invited() -> bool:
        return room_id in await _invited_rooms(rv_bob)

    await eventually(invited, what="the invite on ranvier")
    await rv_bob.leave(room_id)  # make_leave / send_leave through Synapse

    async def rejected() -> bool:
        return (await syn_alice.members(room_id)).get(rv_bob.user_id) == "leave"

    await eventually(rejected, what="the rejection on synapse")


async def test_ranvier_user_invites_synapse_user_who_joins(
    synapse: SynapseServer,
    ranvier: RanvierPeer,
    syn_alice: MatrixClient,
    rv_bob: MatrixClient,
) -> None:
    room_id = await rv_bob.create_room(preset="private_chat", room_version="11")
    await rv_bob.invite(room_id, syn_alice.user_id)  # PUT /v2/invite on Synapse

    async def invited() -> bool:
        return room_id in await _invited_rooms(syn_alice)

    await eventually(invited, what="the invite on synapse")
    await syn_alice.join(room_id)  # make_join / send_join against Ranvier

    async def joined() -> bool:
        return (await rv_bob.members(room_id)).get(syn_alice.user_id) == "join"

    await eventually(joined, what="alice's join on ranvier")
    await syn_alice.send(room_id, "hi bob")

    async def arrived() -> bool:
        return "hi bob" in await rv_bob.synced_bodies(room_id)

    await eventually(arrived, what="alice's message on ranvier")


async def test_ranvier_user_leaves_synapse_room(
    synapse: SynapseServer,
    ranvier: RanvierPeer,
    syn_alice: MatrixClient,
    rv_bob: MatrixClient,
) -> None:
    room_id = await _joined_room(synapse, syn_alice, rv_bob)
    await rv_bob.leave(room_id)

    async def left() -> bool:
        return (await syn_alice.members(room_id)).get(rv_bob.user_id) == "leave"

    await eventually(left, what="bob's leave on synapse")


async def test_bans_and_power_levels_hold_across_servers(
    synapse: SynapseServer,
    ranvier: RanvierPeer,
    syn_alice: MatrixClient,
    rv_bob: MatrixClient,
) -> None:
    room_id = await _joined_room(synapse, syn_alice, rv_bob)
    # Bob has power 0: Ranvier refuses his name change itself.
    with pytest.raises(MatrixCallError) as refused:
        await rv_bob.put_state(room_id, "m.room.name", {"name": "bob's room"})
    assert refused.value.status == 403

    # Alice lets him; the new power levels reach Ranvier, and then so does his change.
    levels = await syn_alice.state_event(room_id, "m.room.power_levels")
    assert levels is not None
    levels["users"] = {**levels.get("users", {}), rv_bob.user_id: 50}
    await syn_alice.put_state(room_id, "m.room.power_levels", levels)

    async def renamed() -> bool:
        try:
            await rv_bob.put_state(room_id, "m.room.name", {"name": "bob's room"})
        except MatrixCallError:
            return False
        return True

    await eventually(renamed, what="bob allowed to rename")

    async def synapse_sees_name() -> bool:
        name = await syn_alice.state_event(room_id, "m.room.name")
        return name is not None and name.get("name") == "bob's room"

    await eventually(synapse_sees_name, what="the name on synapse")

    # Banned by Alice: Ranvier learns it and refuses Bob's messages.
    await syn_alice.ban(room_id, rv_bob.user_id)

    async def banned_on_ranvier() -> bool:
        event = await rv_bob.state_event(room_id, "m.room.member", rv_bob.user_id)
        return event is not None and event.get("membership") == "ban"

    await eventually(banned_on_ranvier, what="the ban on ranvier")
    with pytest.raises(MatrixCallError) as after_ban:
        await rv_bob.send(room_id, "can I still talk?")
    assert after_ban.value.status == 403


async def test_concurrent_state_changes_converge(
    synapse: SynapseServer,
    ranvier: RanvierPeer,
    syn_alice: MatrixClient,
    rv_bob: MatrixClient,
) -> None:
    room_id = await _joined_room(synapse, syn_alice, rv_bob, room_version="12")
    levels = await syn_alice.state_event(room_id, "m.room.power_levels")
    assert levels is not None
    levels["users"] = {**levels.get("users", {}), rv_bob.user_id: 100}
    await syn_alice.put_state(room_id, "m.room.power_levels", levels)

    async def bob_empowered() -> bool:
        current = await rv_bob.state_event(room_id, "m.room.power_levels")
        return bool(current and current.get("users", {}).get(rv_bob.user_id) == 100)

    await eventually(bob_empowered, what="power levels on ranvier")
    for round_ in range(3):
        await asyncio.gather(
            syn_alice.put_state(room_id, "m.room.topic", {"topic": f"alice {round_}"}),
            rv_bob.put_state(room_id, "m.room.topic", {"topic": f"bob {round_}"}),
        )

    async def converged() -> str | None:
        a = await syn_alice.state_event(room_id, "m.room.topic")
        b = await rv_bob.state_event(room_id, "m.room.topic")
        if a is not None and a == b:
            return str(a["topic"])
        return None

    topic = await eventually(converged, what="both servers on the same topic")
    assert topic is not None
    assert topic.endswith(" 2")
    # And after one more message from each side, the whole state agrees.
    await syn_alice.send(room_id, "sync point a")
    await rv_bob.send(room_id, "sync point b")

    async def same_state() -> bool:
        a = {
            (e["type"], e["state_key"]): e["event_id"]
            for e in await syn_alice.state(room_id)
        }
        b = {
            (e["type"], e["state_key"]): e["event_id"]
            for e in await rv_bob.state(room_id)
        }
        return a == b

    await eventually(same_state, what="identical current state")


async def test_synapse_invites_a_second_ranvier_user_already_federated(
    synapse: SynapseServer,
    ranvier: RanvierPeer,
    syn_alice: MatrixClient,
    rv_bob: MatrixClient,
    http: aiohttp.ClientSession,
) -> None:
    """Ranvier is in the room (Bob) when Alice invites Carol: the invite reaches
    Ranvier out of band (`/invite`) and then in `/send`; it must enter Ranvier's room
    state (de-outliering), so Bob sees it and Carol's join is allowed (SyTest
    "… with users from both servers")."""
    room_id = await syn_alice.create_room(preset="private_chat")
    await syn_alice.invite(room_id, rv_bob.user_id)

    async def bob_invited() -> bool:
        return room_id in await _invited_rooms(rv_bob)

    await eventually(bob_invited, what="bob's invite on ranvier")
    await rv_bob.join(room_id)
    carol = MatrixClient(http, ranvier.client_url)
    await carol.register("carol")
    await syn_alice.invite(room_id, carol.user_id)

    async def carol_invited_for_bob() -> bool:
        return (await rv_bob.members(room_id)).get(carol.user_id) == "invite"

    await eventually(carol_invited_for_bob, what="carol's invite in ranvier's state")
    assert room_id in await _invited_rooms(carol)
    await carol.join(room_id)

    async def carol_joined_on_synapse() -> bool:
        return (await syn_alice.members(room_id)).get(carol.user_id) == "join"

    await eventually(carol_joined_on_synapse, what="carol's join on synapse")
