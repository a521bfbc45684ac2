"""A space hierarchy across two Ranvier servers: rooms the asking server has no copy of
are described by the `via` servers' federation `/hierarchy`, including a remote
subspace's children; rooms the remote server hides stay hidden."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.federation.matrix_client import MatrixClient
from tests.federation.test_room_federation import http, network, user, wait_member
from tests.helpers.rooms import q

__all__ = ["http"]

SPACE = {"creation_content": {"type": "m.space"}}


async def _child(client: MatrixClient, space: str, room: str) -> None:
    await client.put_state(space, "m.space.child", {"via": ["hs1"]}, state_key=room)


async def test_remote_children_come_from_the_via_servers(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with network(tmp_path, ["hs1", "hs2"]) as net:
        alice = await user(http, net.peers["hs1"], "alice")
        bob = await user(http, net.peers["hs2"], "bob")
        space = await alice.create_room(preset="public_chat", name="Space", **SPACE)
        lobby = await alice.create_room(preset="public_chat", name="Lobby")
        sub = await alice.create_room(preset="public_chat", name="Sub", **SPACE)
        deep = await alice.create_room(preset="public_chat", name="Deep")
        hidden = await alice.create_room(preset="private_chat", name="Hidden")
        for room in (lobby, sub, hidden):
            await _child(alice, space, room)
        await _child(alice, sub, deep)
        await bob.join(space, via=["hs1"])
        await wait_member(alice, space, bob.user_id, "join")

        async with http.get(
            f"{bob.base_url}/_matrix/client/v1/rooms/{q(space)}/hierarchy",
            headers={"Authorization": f"Bearer {bob.token}"},
        ) as resp:
            assert resp.status == 200, await resp.text()
            out = await resp.json()
        names = [r.get("name") for r in out["rooms"]]
        assert names[0] == "Space"
        assert sorted(names[1:]) == ["Deep", "Lobby", "Sub"]
        # The subspace's child follows the subspace (depth first).
        assert names.index("Deep") == names.index("Sub") + 1
        by_name = {r.get("name"): r for r in out["rooms"]}
        assert [c["state_key"] for c in by_name["Sub"]["children_state"]] == [deep]
        assert by_name["Lobby"]["num_joined_members"] == 1
        assert hidden not in {r["room_id"] for r in out["rooms"]}
