"""Simplified sliding sync (MSC4186) through the real server, on both engines: lists
and ranges, room subscriptions, incremental responses, long-polls, `M_UNKNOWN_POS`,
required_state wildcards/`$LAZY`/`$ME`, list filters, left rooms and extensions."""

from __future__ import annotations

import asyncio
import urllib.parse
from pathlib import Path
from typing import Any

from ranvier.storage.txn import EngineName
from tests.helpers.accounts import accounts_server
from tests.helpers.sync import User, new_user

SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575"
JsonDict = dict[str, Any]


async def ss(
    user: User, body: JsonDict, pos: str | None = None, wait_ms: int = 0
) -> tuple[int, JsonDict]:
    query: dict[str, str] = {}
    if pos is not None:
        query["pos"] = pos
    if wait_ms:
        query["timeout"] = str(wait_ms)
    path = "/sync" + ("?" + urllib.parse.urlencode(query) if query else "")
    return await user.api.call("POST", path, token=user.token, json=body, prefix=SS)


async def ok(
    user: User, body: JsonDict, pos: str | None = None, wait_ms: int = 0
) -> JsonDict:
    status, out = await ss(user, body, pos, wait_ms)
    assert status == 200, out
    return out


def bodies(room: JsonDict) -> list[str]:
    return [
        e["content"]["body"]
        for e in room.get("timeline", [])
        if e["type"] == "m.room.message"
    ]


def state_keys(room: JsonDict) -> set[tuple[str, str]]:
    return {(e["type"], e["state_key"]) for e in room.get("required_state", [])}


LIST = {
    "all": {
        "ranges": [[0, 1]],
        "timeline_limit": 1,
        "required_state": [["m.room.name", ""], ["m.room.member", "$ME"]],
    }
}


async def test_lists_ranges_incremental_and_long_poll(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        rooms = [await alice.create_room(name=f"R{i}") for i in range(3)]
        for i, room in enumerate(rooms):
            await alice.send(room, f"m{i}")
        await alice.send(rooms[0], "newest")

        first = await ok(alice, {"lists": LIST})
        assert first["lists"]["all"]["count"] == 3
        # Newest activity first: R0 (just sent), then R2.
        assert set(first["rooms"]) == {rooms[0], rooms[2]}
        r0 = first["rooms"][rooms[0]]
        assert r0["initial"] is True
        assert r0["name"] == "R0"
        assert bodies(r0) == ["newest"]
        assert r0["limited"] is True
        assert r0["num_live"] == 0
        assert r0["joined_count"] == 1
        assert r0["invited_count"] == 0
        assert r0["notification_count"] == 0
        assert r0["membership"] == "join"
        assert r0["lists"] == ["all"]
        assert state_keys(r0) == {("m.room.name", ""), ("m.room.member", alice.user_id)}
        assert isinstance(r0["bump_stamp"], int)
        assert r0["bump_stamp"] > first["rooms"][rooms[2]]["bump_stamp"]
        prev_batch = r0["prev_batch"]
        status, msgs = await alice.call(
            "GET",
            f"/rooms/{rooms[0]}/messages?dir=b&limit=1&from={urllib.parse.quote(prev_batch)}",
        )
        assert status == 200
        assert msgs["chunk"][0]["content"]["body"] == "m0"

        # Nothing new: no rooms.
        again = await ok(alice, {"lists": LIST}, first["pos"])
        assert again["rooms"] == {}
        assert again["lists"]["all"]["count"] == 3

        # Scroll: a wider range sends only the room not sent yet.
        wider = {"all": {**LIST["all"], "ranges": [[0, 2]]}}
        scrolled = await ok(alice, {"lists": wider}, again["pos"])
        assert set(scrolled["rooms"]) == {rooms[1]}
        assert scrolled["rooms"][rooms[1]]["initial"] is True

        # Long-poll woken by a new message; only the new event, counted as live.
        poll = asyncio.ensure_future(
            ok(alice, {"lists": wider}, scrolled["pos"], wait_ms=30_000)
        )
        await asyncio.sleep(0.3)
        assert not poll.done()
        await alice.send(rooms[1], "live")
        woken = await asyncio.wait_for(poll, 15)
        room = woken["rooms"][rooms[1]]
        assert "initial" not in room
        assert bodies(room) == ["live"]
        assert room["num_live"] == 1
        assert room["limited"] is False
        assert "name" not in room

        # Retrying an older pos after a newer one was used is refused.
        status, err = await ss(alice, {"lists": wider}, first["pos"])
        assert (status, err["errcode"]) == (400, "M_UNKNOWN_POS")
        status, err = await ss(alice, {"lists": wider}, "999999")
        assert (status, err["errcode"]) == (400, "M_UNKNOWN_POS")
        status, err = await ss(alice, {"lists": wider}, "nonsense")
        assert (status, err["errcode"]) == (400, "M_UNKNOWN_POS")


async def test_retry_with_the_same_pos_resends(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        room = await alice.create_room(name="Tea")
        first = await ok(alice, {"lists": LIST})
        await alice.send(room, "one")
        lost = await ok(alice, {"lists": LIST}, first["pos"])
        assert bodies(lost["rooms"][room]) == ["one"]
        # The client never saw `lost`: the same pos gives the same data again.
        retry = await ok(alice, {"lists": LIST}, first["pos"])
        assert bodies(retry["rooms"][room]) == ["one"]
        # ... and `lost`'s pos is no longer valid.
        status, err = await ss(alice, {"lists": LIST}, lost["pos"])
        assert (status, err["errcode"]) == (400, "M_UNKNOWN_POS")
        after = await ok(alice, {"lists": LIST}, retry["pos"])
        assert after["rooms"] == {}


async def test_out_of_range_rooms_catch_up(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        a = await alice.create_room(name="A")
        b = await alice.create_room(name="B")
        one = {"all": {**LIST["all"], "ranges": [[0, 0]], "timeline_limit": 5}}
        first = await ok(alice, {"lists": one})
        assert set(first["rooms"]) == {b}
        # A changes: it moves to the top and comes with its initial data.
        await alice.send(a, "a1")
        second = await ok(alice, {"lists": one}, first["pos"])
        assert set(second["rooms"]) == {a}
        assert second["rooms"][a]["initial"] is True
        # B changes while out of range, then comes back: only what it missed.
        await alice.send(b, "b1")
        await alice.send(b, "b2")
        both = {"all": {**one["all"], "ranges": [[0, 1]]}}
        await alice.send(a, "a2")
        third = await ok(alice, {"lists": one}, second["pos"])
        assert set(third["rooms"]) == {a}
        fourth = await ok(alice, {"lists": both}, third["pos"])
        assert set(fourth["rooms"]) == {b}
        assert bodies(fourth["rooms"][b]) == ["b1", "b2"]
        assert "initial" not in fourth["rooms"][b]


async def test_subscriptions_lazy_members_and_state_expansion(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        carol = await new_user(api, "carol")
        room = await alice.create_room(name="Club", topic="Chess")
        for u in (bob, carol):
            await alice.invite(room, u.user_id)
            await u.join(room)
        await bob.send(room, "from bob")
        sub = {
            room: {
                "timeline_limit": 1,
                "required_state": [["m.room.member", "$LAZY"], ["m.room.create", ""]],
            }
        }
        first = await ok(alice, {"room_subscriptions": sub})
        got = first["rooms"][room]
        assert "lists" not in got
        keys = state_keys(got)
        assert ("m.room.create", "") in keys
        assert ("m.room.member", bob.user_id) in keys
        assert ("m.room.topic", "") not in keys
        assert got["joined_count"] == 3
        # Sticky: the subscription holds without being sent again.
        await carol.send(room, "from carol")
        second = await ok(alice, {}, first["pos"])
        got = second["rooms"][room]
        assert bodies(got) == ["from carol"]
        assert state_keys(got) == {("m.room.member", carol.user_id)}
        # Asking for more state sends the newly covered state at once.
        wider = {room: {"timeline_limit": 1, "required_state": [["*", "*"]]}}
        third = await ok(alice, {"room_subscriptions": wider}, second["pos"])
        keys = state_keys(third["rooms"][room])
        assert ("m.room.topic", "") in keys
        assert ("m.room.member", alice.user_id) in keys
        # A state change matching the wildcard comes as a delta.
        await alice.ok("PUT", f"/rooms/{room}/state/m.room.topic/", {"topic": "Go"})
        fourth = await ok(alice, {}, third["pos"])
        assert state_keys(fourth["rooms"][room]) == {("m.room.topic", "")}
        # Unsubscribed: changes no longer come.
        fifth = await ok(alice, {"unsubscribe_rooms": [room]}, fourth["pos"])
        await bob.send(room, "unseen")
        sixth = await ok(alice, {}, fifth["pos"])
        assert sixth["rooms"] == {}


async def test_filters_invites_dms_and_leaves(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        plain = await bob.create_room(name="Plain")
        enc = await bob.create_room(
            name="Secret",
            initial_state=[
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ],
        )
        space = await bob.create_room(
            name="Space", creation_content={"type": "m.space"}
        )
        dm = await bob.create_room(is_direct=True, invite=[alice.user_id])
        space_invite = await bob.create_room(
            creation_content={"type": "m.space"}, invite=[alice.user_id]
        )
        for r in (plain, enc, space):
            await bob.invite(r, alice.user_id)
            await alice.join(r)
        await alice.ok(
            "PUT", f"/user/{alice.user_id}/account_data/m.direct", {bob.user_id: [dm]}
        )
        await alice.ok(
            "PUT", f"/user/{alice.user_id}/rooms/{plain}/tags/m.favourite", {}
        )
        await bob.ok(
            "PUT",
            f"/rooms/{space}/state/m.space.child/{urllib.parse.quote(plain)}",
            {"via": ["localhost"]},
        )

        def lst(**filters: Any) -> JsonDict:
            return {"ranges": [[0, 20]], "timeline_limit": 0, "filters": filters}

        out = await ok(
            alice,
            {
                "lists": {
                    "invites": lst(is_invite=True),
                    "dms": lst(is_dm=True),
                    "encrypted": lst(is_encrypted=True),
                    "spaces": lst(room_types=["m.space"]),
                    "not_spaces": lst(not_room_types=["m.space"], is_invite=False),
                    "fav": lst(tags=["m.favourite"]),
                    "not_fav": lst(not_tags=["m.favourite"], is_invite=False),
                    "in_space": lst(spaces=[space]),
                }
            },
        )

        def ids(name: str) -> set[str]:
            return {
                r for r, body in out["rooms"].items() if name in body.get("lists", [])
            }

        assert ids("invites") == {dm, space_invite}
        assert ids("dms") == {dm}
        assert ids("encrypted") == {enc}
        assert ids("spaces") == {space, space_invite}
        assert ids("not_spaces") == {plain, enc}
        assert ids("fav") == {plain}
        assert ids("not_fav") == {enc, space}
        assert ids("in_space") == {plain}
        assert out["lists"]["not_spaces"]["count"] == 2
        invite = out["rooms"][dm]
        assert invite["membership"] == "invite"
        assert invite["is_dm"] is True
        assert "timeline" not in invite
        assert ("m.room.member", alice.user_id) in {
            (e["type"], e["state_key"]) for e in invite["invite_state"]
        }

        # Join the invite: sent again, now as a joined room (initial).
        everything = {"all": {"ranges": [[0, 20]], "timeline_limit": 5}}
        base = await ok(alice, {"lists": everything}, out["pos"])
        await alice.join(dm)
        joined = await ok(alice, {"lists": everything}, base["pos"])
        assert joined["rooms"][dm]["membership"] == "join"
        assert joined["rooms"][dm]["initial"] is True
        # Kicked: appears once with its membership, then stays quiet.
        await bob.ok("POST", f"/rooms/{enc}/kick", {"user_id": alice.user_id})
        await bob.send(enc, "after the kick")
        kicked = await ok(alice, {"lists": everything}, joined["pos"])
        assert kicked["rooms"][enc]["membership"] == "leave"
        assert "after the kick" not in bodies(kicked["rooms"][enc])
        await bob.send(enc, "still after")
        quiet = await ok(alice, {"lists": everything}, kicked["pos"])
        assert enc not in quiet["rooms"]


async def test_extensions(tmp_path: Path, db_engine: EngineName) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        room = await alice.create_room(name="Ext")
        await alice.invite(room, bob.user_id)
        await bob.join(room)
        event = await bob.send(room, "read me")
        await alice.ok("POST", f"/rooms/{room}/receipt/m.read/{event}", {})
        await alice.ok(
            "PUT", f"/user/{alice.user_id}/rooms/{room}/account_data/x.y", {"a": 1}
        )
        await alice.ok("PUT", f"/user/{alice.user_id}/account_data/x.global", {"g": 1})
        await bob.ok(
            "PUT",
            "/sendToDevice/m.test/t1",
            {"messages": {alice.user_id: {alice.device_id: {"n": 1}}}},
        )
        exts = {
            "to_device": {"enabled": True},
            "e2ee": {"enabled": True},
            "account_data": {"enabled": True},
            "receipts": {"enabled": True},
            "typing": {"enabled": True},
        }
        body = {"lists": LIST, "extensions": exts}
        first = await ok(alice, body)
        ext = first["extensions"]
        assert [m["content"] for m in ext["to_device"]["events"]] == [{"n": 1}]
        assert "device_one_time_keys_count" in ext["e2ee"]
        assert "x.global" in {e["type"] for e in ext["account_data"]["global"]}
        assert ext["account_data"]["rooms"][room] == [
            {"type": "x.y", "content": {"a": 1}}
        ]
        receipt = ext["receipts"]["rooms"][room]
        assert receipt["type"] == "m.receipt"
        assert alice.user_id in receipt["content"][event]["m.read"]

        # to_device: acknowledged by `since`, then gone.
        since = ext["to_device"]["next_batch"]
        body2 = {
            "lists": LIST,
            "extensions": {**exts, "to_device": {"enabled": True, "since": since}},
        }
        second = await ok(alice, body2, first["pos"])
        assert second["extensions"]["to_device"]["events"] == []
        again = await ok(
            alice,
            {"lists": LIST, "extensions": {"to_device": {"enabled": True}}},
            second["pos"],
        )
        assert again["extensions"]["to_device"]["events"] == []

        # typing, scoped by rooms: a list that does not cover the room gets nothing.
        await bob.ok(
            "PUT",
            f"/rooms/{room}/typing/{bob.user_id}",
            {"typing": True, "timeout": 30000},
        )
        typed = await ok(alice, body2, again["pos"])
        assert typed["extensions"]["typing"]["rooms"][room]["content"]["user_ids"] == [
            bob.user_id
        ]
        scoped = {
            "lists": LIST,
            "extensions": {
                "typing": {"enabled": True, "lists": ["other"], "rooms": []}
            },
        }
        carol = await new_user(api, "carol")
        await carol.ok("PUT", f"/user/{carol.user_id}/account_data/x", {})
        # e2ee device_lists: a new member's devices count as changed.
        await alice.invite(room, carol.user_id)
        await carol.join(room)
        changed = await ok(alice, body2, typed["pos"])
        assert carol.user_id in changed["extensions"]["e2ee"]["device_lists"]["changed"]
        await bob.ok("PUT", f"/rooms/{room}/typing/{bob.user_id}", {"typing": False})
        none = await ok(alice, scoped, changed["pos"])
        assert none["extensions"]["typing"]["rooms"] == {}


async def test_versions_advertises_sliding_sync(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        status, body = await api.call("GET", "/versions", prefix="/_matrix/client")
        assert status == 200
        assert body["unstable_features"]["org.matrix.simplified_msc3575"] is True
