"""A third-party invite as matrix-nio sees it: the invite arrives in /sync once the
e-mail address is bound, with the inviter in the stripped state, and can be joined."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from nio import AsyncClient, JoinResponse, LoginResponse, SyncResponse

from tests.helpers.accounts import PASSWORD, accounts_server
from tests.helpers.identity import ACCESS_TOKEN, fake_identity_server
from tests.helpers.sync import new_user

EMAIL = "bob@example.org"


async def test_nio_user_gets_and_joins_a_third_party_invite(tmp_path: Path) -> None:
    async with (
        fake_identity_server(tmp_path) as ids,
        accounts_server(tmp_path / "hs", overrides=ids.homeserver_overrides()) as (
            hs,
            api,
        ),
    ):
        alice = await new_user(api, "alice")
        await api.register("bob")
        bob = AsyncClient(hs.base_url, "@bob:localhost")
        try:
            assert isinstance(await bob.login(PASSWORD), LoginResponse)
            first = await bob.sync(timeout=0)
            assert isinstance(first, SyncResponse), first
            room_id = await alice.create_room(preset="private_chat", name="Lemurs")
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
            status, _ = await ids.bind_and_notify(
                hs.base_url, "email", EMAIL, "@bob:localhost"
            )
            assert status == 200
            resp = await bob.sync(timeout=5000, since=first.next_batch)
            assert isinstance(resp, SyncResponse), resp
            assert room_id in resp.rooms.invite
            invited = bob.invited_rooms[room_id]
            assert invited.inviter == alice.user_id
            assert invited.name == "Lemurs"
            joined = await bob.join(room_id)
            assert isinstance(joined, JoinResponse), joined
            members = await alice.ok("GET", f"/rooms/{room}/joined_members")
            assert "@bob:localhost" in members["joined"]
        finally:
            await bob.close()
