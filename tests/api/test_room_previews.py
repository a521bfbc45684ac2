"""GET /room_summary/{roomIdOrAlias} and GET /rooms/{roomId}/initialSync."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.accounts import V3, accounts_server
from tests.helpers.rooms import make_user, q

V1 = "/_matrix/client/v1"


async def test_room_summary(tmp_path: Path, db_engine: str) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        public = await alice.create_room(
            preset="public_chat",
            room_alias_name="lobby",
            name="Lobby",
            topic="Hi",
            room_version="11",
            initial_state=[
                {
                    "type": "m.room.encryption",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ],
        )
        private = await alice.create_room(preset="private_chat", name="Secret")

        status, body = await api.call(
            "GET", f"/room_summary/{q('#lobby:localhost')}", prefix=V1
        )
        assert status == 200, body
        assert body == {
            "room_id": public,
            "num_joined_members": 1,
            "world_readable": False,
            "guest_can_join": False,
            "join_rule": "public",
            "name": "Lobby",
            "topic": "Hi",
            "canonical_alias": "#lobby:localhost",
            "room_version": "11",
            "encryption": "m.megolm.v1.aes-sha2",
        }
        status, body = await bob.call("GET", f"/room_summary/{q(public)}", prefix=V1)
        assert (status, body["membership"]) == (200, "leave")
        status, body = await alice.call("GET", f"/room_summary/{q(public)}", prefix=V1)
        assert (status, body["membership"]) == (200, "join")

        # A private room: its members (invited included) see it, others get 404.
        for path_room in (private, "!unknown:localhost"):
            status, body = await bob.call(
                "GET", f"/room_summary/{q(path_room)}", prefix=V1
            )
            assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
        assert (await alice.invite(private, bob.user_id))[0] == 200
        status, body = await bob.call("GET", f"/room_summary/{q(private)}", prefix=V1)
        assert (status, body["membership"], body["name"]) == (200, "invite", "Secret")

        status, body = await api.call("GET", "/room_summary/nonsense", prefix=V1)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
        status, body = await api.call(
            "GET", f"/room_summary/{q('#missing:localhost')}", prefix=V1
        )
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_room_initial_sync(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        room = await alice.create_room(preset="public_chat", name="R")
        sent = [await alice.send(room, f"m{i}") for i in range(25)]

        status, body = await alice.call("GET", f"/rooms/{q(room)}/initialSync")
        assert status == 200, body
        assert body["room_id"] == room
        assert body["membership"] == "join"
        assert body["visibility"] == "private"
        chunk = body["messages"]["chunk"]
        assert [e["event_id"] for e in chunk] == sent[
            -20:
        ]  # the newest 20, oldest first
        assert ("m.room.name", "") in {
            (e["type"], e["state_key"]) for e in body["state"]
        }
        # The tokens paginate: backwards from `start` is older than the chunk.
        status, older = await alice.messages(
            room, f"dir=b&from={body['messages']['start']}"
        )
        assert status == 200
        assert [e["event_id"] for e in older["chunk"]][:5] == sent[4::-1]
        assert not {e["event_id"] for e in older["chunk"]} & {
            e["event_id"] for e in chunk
        }
        status, newer = await alice.messages(
            room, f"dir=f&from={body['messages']['end']}"
        )
        assert (status, newer["chunk"]) == (200, [])

        # Non-members of a room that is not world-readable: 403.
        status, body = await bob.call("GET", f"/rooms/{q(room)}/initialSync")
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
        status, body = await api.call("GET", f"/rooms/{q(room)}/initialSync", prefix=V3)
        assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
