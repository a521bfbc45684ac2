"""Third-party invites across two Ranvier servers (in-process transport).

The room is on hs1; the address is bound to a user of hs2, so the identity server
calls hs2's `/3pid/onbind`. hs2 cannot build events for hs1's inviter, so it forwards
the invite with `exchange_third_party_invite` to hs1, which checks it and invites the
user over federation (`/v2/invite`). As SyTest's "Can invite unbound 3pid over
federation" and "... with users from both servers".
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp

from ranvier.core.crypto.keys import SigningKey
from tests.federation.fakes import in_process_network
from tests.federation.matrix_client import MatrixClient, eventually
from tests.helpers.identity import (
    ACCESS_TOKEN,
    FakeIdentityServer,
    fake_identity_server,
)

EMAIL = "lemurs@monkeyworld.org"


def _overrides(ids: FakeIdentityServer) -> dict[str, Any]:
    return {
        "registration": {"enabled": True, "require_token": False},
        **ids.homeserver_overrides(),
    }


async def _member(client: MatrixClient, room_id: str, user_id: str) -> Any:
    room, user = (urllib.parse.quote(v, safe="") for v in (room_id, user_id))
    return await client.ok("GET", f"/rooms/{room}/state/m.room.member/{user}")


async def _wait_membership(
    client: MatrixClient, room_id: str, user_id: str, membership: str
) -> None:
    async def check() -> bool:
        return (await client.members(room_id)).get(user_id) == membership

    await eventually(check, what=f"{user_id} {membership} seen by {client.user_id}")


async def test_unbound_3pid_invite_over_federation(tmp_path: Path) -> None:
    async with (
        fake_identity_server(tmp_path) as ids,
        in_process_network(
            tmp_path,
            ["hs1", "hs2"],
            overrides={n: _overrides(ids) for n in ("hs1", "hs2")},
        ) as peers,
        aiohttp.ClientSession() as http,
    ):
        alice = MatrixClient(http, peers["hs1"].base_url)
        await alice.register("alice")
        bob = MatrixClient(http, peers["hs2"].base_url)
        await bob.register("bob")
        carol = MatrixClient(http, peers["hs2"].base_url)
        await carol.register("carol")
        room_id = await alice.create_room(preset="private_chat")
        room = urllib.parse.quote(room_id, safe="")
        await alice.ok(
            "POST",
            f"/rooms/{room}/invite",
            {
                "id_server": ids.name,
                "id_access_token": ACCESS_TOKEN,
                "medium": "email",
                "address": EMAIL,
            },
        )
        status, out = await ids.bind_and_notify(
            peers["hs2"].base_url, "email", EMAIL, bob.user_id
        )
        assert (status, out) == (200, {})

        async def invited() -> bool:
            rooms = (await bob.sync()).get("rooms", {})
            return room_id in rooms.get("invite", {})

        await eventually(invited, what="bob's invite on hs2")
        member = await _member(alice, room_id, bob.user_id)
        assert member["membership"] == "invite"
        assert member["third_party_invite"]["display_name"] == "Bob"
        await bob.join(room_id)
        await _wait_membership(alice, room_id, bob.user_id, "join")

        # Now hs2 is in the room, but still cannot send as hs1's alice: it forwards.
        await alice.ok(
            "POST",
            f"/rooms/{room}/invite",
            {
                "id_server": ids.name,
                "id_access_token": ACCESS_TOKEN,
                "medium": "email",
                "address": "carol@example.org",
            },
        )
        status, out = await ids.bind_and_notify(
            peers["hs2"].base_url, "email", "carol@example.org", carol.user_id
        )
        assert (status, out) == (200, {})
        await _wait_membership(alice, room_id, carol.user_id, "invite")
        member = await _member(alice, room_id, carol.user_id)
        assert member["third_party_invite"]["signed"]["mxid"] == carol.user_id

        async def carol_invited() -> bool:
            rooms = (await carol.sync()).get("rooms", {})
            return room_id in rooms.get("invite", {})

        await eventually(carol_invited, what="carol's invite on hs2")
        # Not checked: hs2's own room state. An invite that reaches a server already
        # in the room (plain or third-party) is stored there only as an out-of-band
        # membership and the copy sent by /send is then skipped as known, so bob does
        # not see it and carol's join on hs2 is refused; a pre-existing federation
        # bug, reported, not a third-party invite one.


async def test_exchange_refuses_what_it_cannot_issue(tmp_path: Path) -> None:
    """A forged onbind on hs2 is forwarded to hs1, which refuses it (403)."""
    async with (
        fake_identity_server(tmp_path) as ids,
        in_process_network(
            tmp_path,
            ["hs1", "hs2"],
            overrides={n: _overrides(ids) for n in ("hs1", "hs2")},
        ) as peers,
        aiohttp.ClientSession() as http,
    ):
        alice = MatrixClient(http, peers["hs1"].base_url)
        await alice.register("alice")
        bob = MatrixClient(http, peers["hs2"].base_url)
        await bob.register("bob")
        room_id = await alice.create_room(preset="private_chat")
        room = urllib.parse.quote(room_id, safe="")
        await alice.ok(
            "POST",
            f"/rooms/{room}/invite",
            {
                "id_server": ids.name,
                "id_access_token": ACCESS_TOKEN,
                "medium": "email",
                "address": EMAIL,
            },
        )
        forger = SigningKey.from_seed(b"\x43" * 32, "0")
        status, out = await ids.bind_and_notify(
            peers["hs2"].base_url, "email", EMAIL, bob.user_id, key=forger
        )
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        assert bob.user_id not in await alice.members(room_id)
