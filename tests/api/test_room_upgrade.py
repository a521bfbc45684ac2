"""POST /rooms/{roomId}/upgrade on both engines: the new room's state, the tombstone,
the restricted old room, moved aliases and directory listing, and refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers.accounts import accounts_server
from tests.helpers.rooms import User, make_user, q


async def _state(user: User, room_id: str) -> dict[tuple[str, str], Any]:
    status, events = await user.call("GET", f"/rooms/{q(room_id)}/state")
    assert status == 200, events
    return {(e["type"], e["state_key"]): e["content"] for e in events}


async def _upgrade(user: User, room_id: str, **body: Any) -> tuple[int, Any]:
    return await user.call("POST", f"/rooms/{q(room_id)}/upgrade", body)


async def test_upgrade_copies_state_and_retires_old_room(
    tmp_path: Path, db_engine: str
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        old = await alice.create_room(
            preset="public_chat",
            room_version="10",
            room_alias_name="hall",
            name="Hall",
            topic="Talk",
            visibility="public",
            creation_content={"m.federate": False},
            initial_state=[
                {
                    "type": "m.room.encryption",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                },
                {
                    "type": "m.room.guest_access",
                    "content": {"guest_access": "can_join"},
                },
            ],
        )
        assert (await bob.join(old))[0] == 200
        status, pl = await alice.call(
            "GET", f"/rooms/{q(old)}/state/m.room.power_levels/"
        )
        assert status == 200
        pl["users"][bob.user_id] = 42
        status, sent = await alice.put_state(old, "m.room.power_levels", pl)
        assert status == 200

        # bob (42) may not send the tombstone (100).
        status, body = await _upgrade(bob, old, new_version="11")
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

        status, body = await _upgrade(alice, old, new_version="11")
        assert status == 200, body
        new = body["replacement_room"]
        assert new != old

        new_state = await _state(alice, new)
        create = new_state[("m.room.create", "")]
        assert create["room_version"] == "11"
        # Before v12 the tombstone is sent first, to the reserved new room ID, so the
        # predecessor names it (as Synapse; SyTest 60version_upgrade).
        status, tombstone = await alice.call(
            "GET", f"/rooms/{q(old)}/state/m.room.tombstone/?format=event"
        )
        assert status == 200, tombstone
        assert tombstone["event_id"] != sent["event_id"]
        assert create["predecessor"] == {
            "room_id": old,
            "event_id": tombstone["event_id"],
        }
        assert create["m.federate"] is False
        assert new_state[("m.room.name", "")]["name"] == "Hall"
        assert new_state[("m.room.topic", "")]["topic"] == "Talk"
        assert new_state[("m.room.join_rules", "")] == {"join_rule": "public"}
        assert new_state[("m.room.guest_access", "")] == {"guest_access": "can_join"}
        assert new_state[("m.room.encryption", "")]["algorithm"] == (
            "m.megolm.v1.aes-sha2"
        )
        assert new_state[("m.room.canonical_alias", "")]["alias"] == "#hall:localhost"
        new_pl = new_state[("m.room.power_levels", "")]
        assert new_pl["users"] == {alice.user_id: 100, bob.user_id: 42}
        assert new_pl["events_default"] == 0
        assert ("m.room.member", bob.user_id) not in new_state  # bob must join himself

        old_state = await _state(alice, old)
        assert old_state[("m.room.canonical_alias", "")] == {}
        assert old_state[("m.room.tombstone", "")] == {
            "body": "This room has been replaced",
            "replacement_room": new,
        }
        old_pl = old_state[("m.room.power_levels", "")]
        assert (old_pl["events_default"], old_pl["invite"]) == (50, 50)
        # bob (42) can no longer talk in the old room, but can join the new one.
        status, body = await bob.send_raw(old, {"msgtype": "m.text", "body": "hi"})
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
        assert (await bob.join(new))[0] == 200

        status, body = await api.call("GET", "/directory/room/" + q("#hall:localhost"))
        assert (status, body["room_id"]) == (200, new)
        status, body = await api.call("GET", "/publicRooms")
        assert status == 200
        assert [r["room_id"] for r in body["chunk"]] == [new]


async def test_upgrade_to_v12_with_additional_creators(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        old = await alice.create_room(room_version="11")
        assert (await alice.invite(old, bob.user_id))[0] == 200
        status, body = await _upgrade(
            alice, old, new_version="12", additional_creators=[bob.user_id]
        )
        assert status == 200, body
        state = await _state(alice, body["replacement_room"])
        create = state[("m.room.create", "")]
        assert create["additional_creators"] == [bob.user_id]
        # Since v12 the new room exists before the tombstone that names it: the
        # predecessor is the old room's last event before the upgrade.
        old_state = await _state(alice, old)
        assert (
            old_state[("m.room.tombstone", "")]["replacement_room"]
            == (body["replacement_room"])
        )
        assert set(create["predecessor"]) == {"room_id", "event_id"}
        # Since v12 creators are not listed in the power levels.
        users = state[("m.room.power_levels", "")]["users"]
        assert alice.user_id not in users
        assert bob.user_id not in users


async def test_upgrade_refusals(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        alice = await make_user(api, "alice")
        mallory = await make_user(api, "mallory")
        room = await alice.create_room()
        status, body = await _upgrade(alice, room, new_version="99")
        assert (status, body["errcode"]) == (400, "M_UNSUPPORTED_ROOM_VERSION")
        status, body = await _upgrade(alice, room)
        assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
        status, body = await _upgrade(alice, room, new_version=11)
        assert (status, body["errcode"]) == (400, "M_BAD_JSON")
        status, body = await _upgrade(
            alice, room, new_version="12", additional_creators=["nobody"]
        )
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
        status, body = await _upgrade(mallory, room, new_version="11")
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
        status, body = await _upgrade(alice, "!nope:localhost", new_version="11")
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
