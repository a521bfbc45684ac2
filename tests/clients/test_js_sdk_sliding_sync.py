"""matrix-js-sdk's SlidingSync (MSC4186) against the server, the way Element X syncs:
a room list scrolled by ranges, a room subscription, a live message, an invite then a
join with the DM flag, a leave (tests/js/sliding_sync_like_element_x.mjs). Both engines."""

from __future__ import annotations

from pathlib import Path

from ranvier.storage.txn import EngineName
from tests.helpers.accounts import PASSWORD, accounts_server
from tests.helpers.js import run_js_client
from tests.helpers.sync import new_user


async def test_sliding_sync_through_matrix_js_sdk(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        open_room = await bob.create_room(name="Open", preset="public_chat")
        await bob.send(open_room, "welcome")
        invite_room = await bob.create_room(name="Bob and Alice", is_direct=True)
        await bob.invite(invite_room, alice.user_id)
        out = await run_js_client(
            "sliding_sync_like_element_x.mjs",
            {
                "HS_URL": hs.base_url,
                "USERNAME": "alice",
                "PASSWORD": PASSWORD,
                "JOIN_ROOM": open_room,
                "INVITE_ROOM": invite_room,
                "INVITER": bob.user_id,
            },
            time_limit_s=90,
        )
    alpha, beta, gamma = out["created"]
    seen = out["seen"]
    assert out["advertised"] is True
    assert out["errors"] == []
    # Five rooms: three created, one joined, one invite; the first window is two.
    assert out["firstCount"] == 5
    assert len(out["firstRooms"]) == 2
    assert set(out["firstRooms"]) | set(out["scrolledRooms"]) == {
        alpha,
        beta,
        gamma,
        open_room,
        invite_room,
    }
    assert not set(out["firstRooms"]) & set(out["scrolledRooms"])
    assert seen[alpha]["name"] == "Alpha"
    assert seen[alpha]["initialCount"] == 1
    assert f"m.room.member|{alice.user_id}" in seen[alpha]["states"]
    assert seen[open_room]["timeline"][-1] == "m.room.member"
    # The subscription sends the room's whole state and more timeline.
    assert "m.room.create" in out["opened"]["stateTypes"]
    assert "m.room.power_levels" in out["opened"]["stateTypes"]
    assert out["opened"]["timelineLimitCovered"] > 1
    assert seen[beta]["timeline"][-1] == "live message"
    invite = seen[invite_room]
    assert "m.room.member" in invite["inviteState"]
    assert invite["membership"] == "join"
    assert invite["isDm"] is True
    assert invite["joinedCount"] == 2
    assert seen[open_room]["membership"] == "leave"
    # Left by the user themselves: out of the list once the leave was sent.
    assert out["countAfterLeave"] == 4
