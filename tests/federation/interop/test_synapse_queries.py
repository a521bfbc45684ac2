"""Ranvier asking Synapse: public room list (`server=`), profiles, room aliases."""

from __future__ import annotations

import pytest

from tests.federation.interop.conftest import RanvierPeer
from tests.federation.interop.synapse_server import SynapseServer
from tests.federation.matrix_client import MatrixClient, q

pytestmark = pytest.mark.synapse


async def test_public_rooms_of_synapse_via_server_param(
    synapse: SynapseServer,
    ranvier: RanvierPeer,
    syn_alice: MatrixClient,
    rv_bob: MatrixClient,
) -> None:
    room_id = await syn_alice.create_room(
        preset="public_chat", visibility="public", name="Interop lobby"
    )
    listed = await rv_bob.ok(
        "GET", "/publicRooms", params={"server": synapse.server_name, "limit": "50"}
    )
    entries = {r["room_id"]: r for r in listed["chunk"]}
    assert entries[room_id]["name"] == "Interop lobby"

    filtered = await rv_bob.ok(
        "POST",
        "/publicRooms",
        {"filter": {"generic_search_term": "lobby"}, "limit": 10},
        params={"server": synapse.server_name},
    )
    assert room_id in {r["room_id"] for r in filtered["chunk"]}


async def test_remote_profile_and_alias_lookup(
    synapse: SynapseServer,
    ranvier: RanvierPeer,
    syn_alice: MatrixClient,
    rv_bob: MatrixClient,
) -> None:
    await syn_alice.ok(
        "PUT",
        f"/profile/{q(syn_alice.user_id)}/displayname",
        {"displayname": "Alice S"},
    )
    profile = await rv_bob.ok("GET", f"/profile/{q(syn_alice.user_id)}")
    assert profile["displayname"] == "Alice S"
    name = await rv_bob.ok("GET", f"/profile/{q(syn_alice.user_id)}/displayname")
    assert name == {"displayname": "Alice S"}

    status, _ = await rv_bob.call(
        "GET", f"/profile/{q('@nobody_here:' + synapse.server_name)}"
    )
    assert status == 404

    room_id = await syn_alice.create_room(room_alias_name="lookup_me")
    alias = f"#lookup_me:{synapse.server_name}"
    found = await rv_bob.ok("GET", f"/directory/room/{q(alias)}")
    assert found["room_id"] == room_id
    assert synapse.server_name in found["servers"]
    status, body = await rv_bob.call(
        "GET", f"/directory/room/{q('#missing:' + synapse.server_name)}"
    )
    assert status == 404, body
