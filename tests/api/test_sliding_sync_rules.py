"""Simplified sliding sync follows `/sync`'s rules: history visibility (the same
timeline `/sync` gives), ignored users, `set_presence`; and the config changes of
MSC4186 (`expanded_timeline`, a zero `timeline_limit`). Both engines."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ranvier.storage.txn import EngineName
from tests.api.test_sliding_sync import JsonDict, bodies, ok, ss
from tests.helpers.accounts import accounts_server
from tests.helpers.sync import new_user


def _history(visibility: str) -> dict[str, object]:
    return {
        "type": "m.room.history_visibility",
        "state_key": "",
        "content": {"history_visibility": visibility},
    }


async def test_history_visibility_matches_sync(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        rooms = {}
        for visibility in ("joined", "invited", "shared", "world_readable"):
            room = await bob.create_room(initial_state=[_history(visibility)])
            await bob.send(room, f"{visibility}: before invite")
            await bob.invite(room, alice.user_id)
            await bob.send(room, f"{visibility}: while invited")
            await alice.join(room)
            await bob.send(room, f"{visibility}: joined")
            rooms[visibility] = room
        flt = {"room": {"timeline": {"limit": 20}}}
        classic = await alice.sync(filter=flt)
        sliding = await ok(
            alice,
            {"lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 20}}},
        )
        for visibility, room in rooms.items():
            want = [
                e["event_id"]
                for e in classic["rooms"]["join"][room]["timeline"]["events"]
            ]
            got = [e["event_id"] for e in sliding["rooms"][room]["timeline"]]
            assert got == want, visibility
        assert bodies(sliding["rooms"][rooms["joined"]]) == ["joined: joined"]
        assert "shared: before invite" in bodies(sliding["rooms"][rooms["shared"]])


async def test_ignored_users(tmp_path: Path, db_engine: EngineName) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        room = await alice.create_room(name="Shared")
        await alice.invite(room, bob.user_id)
        await bob.join(room)
        await alice.ok(
            "PUT",
            f"/user/{alice.user_id}/account_data/m.ignored_user_list",
            {"ignored_users": {bob.user_id: {}}},
        )
        await bob.send(room, "ignored words")
        await alice.send(room, "mine")
        other = await bob.create_room(name="Bait")
        await bob.invite(other, alice.user_id)
        out = await ok(
            alice, {"lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 10}}}
        )
        assert other not in out["rooms"]
        assert out["lists"]["all"]["count"] == 1
        timeline = bodies(out["rooms"][room])
        assert "ignored words" not in timeline
        assert "mine" in timeline


async def test_set_presence(tmp_path: Path, db_engine: EngineName) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        status, err = await ss(alice, {"set_presence": "busy"})
        assert (status, err["errcode"]) == (400, "M_INVALID_PARAM")
        await ok(alice, {"set_presence": "unavailable"})
        presence = await alice.ok("GET", f"/presence/{alice.user_id}/status")
        assert presence["presence"] == "unavailable"


async def test_expanded_and_zero_timelines(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        room = await alice.create_room(name="Long")
        for i in range(5):
            await alice.send(room, f"m{i}")
        small = {"all": {"ranges": [[0, 0]], "timeline_limit": 1}}
        first = await ok(alice, {"lists": small})
        assert bodies(first["rooms"][room]) == ["m4"]
        # Opening the room with a bigger limit sends the older events at once.
        sub = {room: {"timeline_limit": 4}}
        opened = await ok(
            alice, {"lists": small, "room_subscriptions": sub}, first["pos"]
        )
        got = opened["rooms"][room]
        assert got["expanded_timeline"] is True
        assert bodies(got) == ["m1", "m2", "m3", "m4"]
        assert "initial" not in got
        # Same config again: nothing to send.
        same = await ok(alice, {"lists": small}, opened["pos"])
        assert same["rooms"] == {}
        # A zero limit: the room is reported as changed, without events.
        zero = {"all": {"ranges": [[0, 0]], "timeline_limit": 0}}
        await alice.send(room, "m5")
        changed = await ok(
            alice, {"lists": zero, "unsubscribe_rooms": [room]}, same["pos"]
        )
        assert changed["rooms"][room]["timeline"] == []
        assert changed["rooms"][room]["limited"] is True


async def test_dm_invites_and_bad_requests(
    tmp_path: Path, db_engine: EngineName
) -> None:
    guests = {"registration": {"allow_guests": True}}
    async with accounts_server(tmp_path, engine=db_engine, overrides=guests) as (
        _,
        api,
    ):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        dm = await bob.create_room(is_direct=True, invite=[alice.user_id])
        out = await ok(
            alice,
            {
                "lists": {
                    "dms": {
                        "ranges": [[0, 9]],
                        "timeline_limit": 1,
                        "filters": {"is_dm": True},
                    }
                }
            },
        )
        assert out["rooms"][dm]["is_dm"] is True
        assert out["rooms"][dm]["membership"] == "invite"
        bad: list[tuple[JsonDict, str]] = [
            ({"lists": []}, "M_BAD_JSON"),
            ({"lists": {"a": {"ranges": [[3, 1]]}}}, "M_INVALID_PARAM"),
            ({"lists": {"a": {"required_state": [["x"]]}}}, "M_BAD_JSON"),
            ({"room_subscriptions": {"!r:x": {"timeline_limit": -1}}}, "M_BAD_JSON"),
            ({"extensions": {"typing": {"lists": "all"}}}, "M_BAD_JSON"),
        ]
        for body, errcode in bad:
            status, err = await ss(alice, body)
            assert (status, err["errcode"]) == (400, errcode), body
        # Guests cannot use sliding sync.
        status, guest = await api.call("POST", "/register?kind=guest", json={})
        assert status == 200, guest
        status, err = await api.call(
            "POST",
            "/sync",
            token=guest["access_token"],
            json={},
            prefix="/_matrix/client/unstable/org.matrix.simplified_msc3575",
        )
        assert (status, err["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN")


async def test_rejoin_connections_and_to_device_long_poll(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        room = await bob.create_room(name="Door", preset="public_chat")
        await alice.join(room)
        lst = {"all": {"ranges": [[0, 9]], "timeline_limit": 3}}
        first = await ok(alice, {"lists": lst})
        assert first["rooms"][room]["initial"] is True
        # Left and joined again between two requests: the room starts over.
        await alice.leave(room)
        await alice.join(room)
        again = await ok(alice, {"lists": lst}, first["pos"])
        assert again["rooms"][room]["initial"] is True
        assert again["rooms"][room]["membership"] == "join"

        # Connections of one device are independent (conn_id).
        other = await ok(alice, {"conn_id": "encryption"})
        status, err = await ss(alice, {"conn_id": "encryption"}, again["pos"])
        assert (status, err["errcode"]) == (400, "M_UNKNOWN_POS")
        still = await ok(alice, {"lists": lst}, again["pos"])
        assert still["rooms"] == {}

        # An extensions-only connection (Element X's encryption loop) long-polls
        # and wakes for a to-device message.
        body = {"conn_id": "encryption", "extensions": {"to_device": {"enabled": True}}}
        poll = asyncio.ensure_future(ok(alice, body, other["pos"], wait_ms=30_000))
        await asyncio.sleep(0.3)
        assert not poll.done()
        await bob.ok(
            "PUT",
            "/sendToDevice/m.test/t9",
            {"messages": {alice.user_id: {alice.device_id: {"wake": True}}}},
        )
        woken = await asyncio.wait_for(poll, 15)
        events = woken["extensions"]["to_device"]["events"]
        assert [e["content"] for e in events] == [{"wake": True}]


async def test_notification_counts(tmp_path: Path, db_engine: EngineName) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        room = await bob.create_room(name="Counts")
        await bob.invite(room, alice.user_id)
        await alice.join(room)
        await bob.send(room, "one")
        last = await bob.send(room, "hey alice")
        lst = {"all": {"ranges": [[0, 9]], "timeline_limit": 1}}
        out = await ok(alice, {"lists": lst})
        classic = (await alice.sync())["rooms"]["join"][room]["unread_notifications"]
        assert classic["notification_count"] == 2
        assert out["rooms"][room]["notification_count"] == 2
        assert out["rooms"][room]["highlight_count"] == classic["highlight_count"]
        await alice.ok("POST", f"/rooms/{room}/receipt/m.read/{last}", {})
        await bob.send(room, "three")
        after = await ok(alice, {"lists": lst}, out["pos"])
        assert after["rooms"][room]["notification_count"] == 1
        assert after["rooms"][room]["highlight_count"] == 0
