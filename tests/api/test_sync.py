"""`GET /sync` through the real server: initial and incremental syncs, long-polling,
membership sections, filters, limited timelines and lazy-loaded members."""

from __future__ import annotations

import asyncio
import urllib.parse
from pathlib import Path

from ranvier.storage.txn import EngineName
from tests.helpers.accounts import accounts_server
from tests.helpers.sync import another_device, new_user, state_types, timeline_bodies

# Long-polls use this timeout; "promptly" means well inside it (never a tight bound).
LONG_POLL_MS = 30_000
PROMPT_SECONDS = 15


async def test_initial_incremental_and_long_poll(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        room = await alice.create_room(name="Tea", topic="Green")
        await alice.send(room, "first")

        initial = await alice.sync()
        joined = initial["rooms"]["join"][room]
        assert timeline_bodies(initial, room) == ["first"]
        assert joined["timeline"]["limited"] is False
        types = state_types(joined) | {
            (e["type"], e.get("state_key"))
            for e in joined["timeline"]["events"]
            if "state_key" in e
        }
        assert ("m.room.create", "") in types
        assert ("m.room.name", "") in types
        assert ("m.room.member", alice.user_id) in types
        assert joined["summary"]["m.joined_member_count"] == 1
        assert joined["unread_notifications"] == {
            "notification_count": 0,
            "highlight_count": 0,
        }
        for key in ("device_one_time_keys_count", "device_unused_fallback_key_types"):
            assert key in initial
        since = initial["next_batch"]

        # Nothing new: an immediate empty answer with a usable token.
        empty = await alice.sync(since)
        assert empty["rooms"]["join"] == {}
        since = empty["next_batch"]

        poll = asyncio.ensure_future(alice.sync(since, timeout_ms=LONG_POLL_MS))
        await asyncio.sleep(0.2)
        assert not poll.done()
        await alice.send(room, "second")
        woken = await asyncio.wait_for(poll, PROMPT_SECONDS)
        assert timeline_bodies(woken, room) == ["second"]
        assert woken["next_batch"] != since
        # The event is delivered once.
        again = await alice.sync(woken["next_batch"])
        assert room not in again["rooms"]["join"]


async def test_invalid_parameters_are_client_errors(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        alice = await new_user(api, "alice")
        for query, errcode in [
            ("since=bogus", "M_INVALID_PARAM"),
            ("since=s1_2_3", "M_INVALID_PARAM"),
            ("filter=999", "M_INVALID_PARAM"),
            ("filter=abc", "M_INVALID_PARAM"),
            ("filter=" + urllib.parse.quote("{nope"), "M_NOT_JSON"),
            ("filter=" + urllib.parse.quote('{"room": []}'), "M_BAD_JSON"),
            ("set_presence=busy", "M_INVALID_PARAM"),
            ("timeout=soon", "M_INVALID_PARAM"),
            ("full_state=maybe", "M_INVALID_PARAM"),
        ]:
            status, body = await alice.call("GET", "/sync?" + query)
            assert (status, body["errcode"]) == (400, errcode), query


async def test_invite_join_leave_sections(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        room = await alice.create_room(name="Plans")
        bob_since = (await bob.sync())["next_batch"]

        await alice.invite(room, bob.user_id)
        invited = await bob.sync(bob_since, timeout_ms=LONG_POLL_MS)
        invite_state = invited["rooms"]["invite"][room]["invite_state"]["events"]
        by_type = {(e["type"], e["state_key"]): e for e in invite_state}
        assert (
            by_type[("m.room.member", bob.user_id)]["content"]["membership"] == "invite"
        )
        assert by_type[("m.room.name", "")]["content"]["name"] == "Plans"
        assert "event_id" not in by_type[("m.room.name", "")]
        # The initial sync of the invitee lists the invite too.
        assert room in (await bob.sync())["rooms"]["invite"]

        await alice.send(room, "before bob")
        await bob.join(room)
        joined = await bob.sync(invited["next_batch"])
        body = joined["rooms"]["join"][room]
        # Newly joined: full state, as on an initial sync.
        all_state = state_types(body) | {
            (e["type"], e["state_key"])
            for e in body["timeline"]["events"]
            if "state_key" in e
        }
        assert ("m.room.create", "") in all_state
        assert ("m.room.member", bob.user_id) in all_state
        assert body["summary"]["m.joined_member_count"] == 2
        assert room not in joined["rooms"]["invite"]

        await bob.leave(room)
        await alice.send(room, "after bob")
        left = await bob.sync(joined["next_batch"])
        leave_room = left["rooms"]["leave"][room]
        last = leave_room["timeline"]["events"][-1]
        assert (last["type"], last["content"]["membership"]) == (
            "m.room.member",
            "leave",
        )
        assert "after bob" not in timeline_bodies(left, room)
        assert room not in left["rooms"]["join"]

        # Initial syncs show left rooms only with include_leave.
        assert room not in (await bob.sync())["rooms"]["leave"]
        with_leave = await bob.sync(filter={"room": {"include_leave": True}})
        assert room in with_leave["rooms"]["leave"]
        assert "after bob" not in timeline_bodies(with_leave, room)

        # Forgetting drops it (the cached memberships are invalidated).
        await bob.ok("POST", f"/rooms/{urllib.parse.quote(room)}/forget", {})
        forgotten = await bob.sync(filter={"room": {"include_leave": True}})
        assert room not in forgotten["rooms"]["leave"]


async def test_limited_timeline_prev_batch_paginates_with_messages(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        room = await alice.create_room()
        since = (await alice.sync())["next_batch"]
        for i in range(6):
            await alice.send(room, f"m{i}")
        sync = await alice.sync(since, filter={"room": {"timeline": {"limit": 2}}})
        timeline = sync["rooms"]["join"][room]["timeline"]
        assert timeline["limited"] is True
        assert timeline_bodies(sync, room) == ["m4", "m5"]
        prev = urllib.parse.quote(timeline["prev_batch"])
        page = await alice.ok(
            "GET", f"/rooms/{room}/messages?dir=b&limit=3&from={prev}"
        )
        bodies = [e["content"]["body"] for e in page["chunk"] if "body" in e["content"]]
        assert bodies == ["m3", "m2", "m1"]


async def test_filters_endpoints_and_filtered_sync(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        flt = {
            "room": {
                "timeline": {"types": ["m.room.message"], "limit": 5},
                "state": {"types": ["m.room.name"]},
            },
            "presence": {"types": []},
        }
        created = await alice.ok("POST", f"/user/{alice.user_id}/filter", flt)
        filter_id = created["filter_id"]
        assert await alice.ok("GET", f"/user/{alice.user_id}/filter/{filter_id}") == flt
        # Re-uploading the same filter returns the same ID.
        again = await alice.ok("POST", f"/user/{alice.user_id}/filter", flt)
        assert again["filter_id"] == filter_id
        status, err = await bob.call("GET", f"/user/{alice.user_id}/filter/{filter_id}")
        assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
        status, err = await alice.call("GET", f"/user/{alice.user_id}/filter/77")
        assert (status, err["errcode"]) == (404, "M_NOT_FOUND")
        status, err = await alice.call(
            "POST",
            f"/user/{alice.user_id}/filter",
            {"room": {"timeline": {"limit": "x"}}},
        )
        assert (status, err["errcode"]) == (400, "M_BAD_JSON")

        room = await alice.create_room(name="Filtered")
        other = await alice.create_room(name="Other")
        await alice.send(room, "hello")
        sync = await alice.sync(filter=filter_id)
        body = sync["rooms"]["join"][room]
        assert {e["type"] for e in body["timeline"]["events"]} == {"m.room.message"}
        assert {e["type"] for e in body["state"]["events"]} == {"m.room.name"}
        assert sync["presence"]["events"] == []

        inline = {
            "room": {"not_rooms": [other]},
            "event_fields": ["type", "content.body"],
        }
        sync = await alice.sync(filter=inline)
        assert other not in sync["rooms"]["join"]
        msgs = [
            e
            for e in sync["rooms"]["join"][room]["timeline"]["events"]
            if e["type"] == "m.room.message"
        ]
        assert msgs == [{"type": "m.room.message", "content": {"body": "hello"}}]


async def test_lazy_loaded_members(tmp_path: Path, db_engine: EngineName) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        carol = await new_user(api, "carol")
        room = await alice.create_room(preset="public_chat")
        await bob.join(room)
        await carol.join(room)
        for i in range(3):
            await bob.send(room, f"b{i}")
        lazy = {
            "room": {"timeline": {"limit": 2}, "state": {"lazy_load_members": True}}
        }

        first = await carol.sync(filter=lazy)
        body = first["rooms"]["join"][room]
        members = {k for t, k in state_types(body) if t == "m.room.member"}
        assert members == {bob.user_id, carol.user_id}
        assert ("m.room.create", "") in state_types(body)

        # Bob again: his member event was already sent to this device.
        await bob.send(room, "b3")
        second = await carol.sync(first["next_batch"], filter=lazy)
        body = second["rooms"]["join"][room]
        assert not [e for e in body["state"]["events"] if e["type"] == "m.room.member"]

        # Alice speaks for the first time in carol's view: now her member event comes.
        await alice.send(room, "a0")
        third = await carol.sync(second["next_batch"], filter=lazy)
        body = third["rooms"]["join"][room]
        members = {k for t, k in state_types(body) if t == "m.room.member"}
        assert members == {alice.user_id}

        # Without lazy loading the full membership is there.
        full = await carol.sync()
        members = {
            k
            for t, k in state_types(full["rooms"]["join"][room])
            if t == "m.room.member"
        }
        timeline_members = {
            e["state_key"]
            for e in full["rooms"]["join"][room]["timeline"]["events"]
            if e["type"] == "m.room.member"
        }
        assert members | timeline_members == {alice.user_id, bob.user_id, carol.user_id}


async def test_full_state_and_multi_device(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        alice = await new_user(api, "alice")
        room = await alice.create_room(name="Both")
        alice2 = await another_device(alice, "LAPTOP")
        s1 = (await alice.sync())["next_batch"]
        s2 = (await alice2.sync())["next_batch"]
        polls = [
            asyncio.ensure_future(alice.sync(s1, timeout_ms=LONG_POLL_MS)),
            asyncio.ensure_future(alice2.sync(s2, timeout_ms=LONG_POLL_MS)),
        ]
        await asyncio.sleep(0.2)
        await alice.send(room, "to all devices")
        for poll in polls:
            result = await asyncio.wait_for(poll, PROMPT_SECONDS)
            assert timeline_bodies(result, room) == ["to all devices"]

        full = await alice.sync(s1, full_state="true")
        assert ("m.room.name", "") in state_types(full["rooms"]["join"][room])


async def test_use_state_after(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        alice = await new_user(api, "alice")
        room = await alice.create_room(name="Before")
        since = (await alice.sync())["next_batch"]
        await alice.ok("PUT", f"/rooms/{room}/state/m.room.name/", {"name": "After"})
        await alice.send(room, "after rename")
        plain = await alice.sync(since)
        body = plain["rooms"]["join"][room]
        assert "state_after" not in body
        # The rename is in the timeline, so not in `state` (state before the timeline).
        assert ("m.room.name", "") not in state_types(body)
        after = await alice.sync(since, use_state_after="true")
        body = after["rooms"]["join"][room]
        assert "state" not in body
        names = [e for e in body["state_after"]["events"] if e["type"] == "m.room.name"]
        assert [e["content"]["name"] for e in names] == ["After"]
