"""Room creation, sending and reading through the real in-process server."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.helpers.rooms import User, make_user, q, rooms_server


async def test_create_room_presets_and_initial_state(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        status, out = await alice.call(
            "POST",
            "/createRoom",
            {
                "preset": "public_chat",
                "visibility": "public",
                "room_alias_name": "lobby",
                "name": "Lobby",
                "topic": "Say hi",
                "invite": [bob.user_id],
                "is_direct": False,
                "initial_state": [
                    {"type": "m.room.avatar", "content": {"url": "mxc://x/y"}},
                ],
                "creation_content": {"m.federate": True},
                "power_level_content_override": {"events_default": 10},
            },
        )
        assert status == 200, out
        room_id = out["room_id"]
        assert out["room_alias"] == "#lobby:localhost"
        status, state = await alice.call("GET", f"/rooms/{q(room_id)}/state")
        assert status == 200
        by_type = {(e["type"], e["state_key"]): e for e in state}
        create = by_type[("m.room.create", "")]
        assert create["content"]["room_version"] == "12"
        assert create["content"]["m.federate"] is True
        assert by_type[("m.room.join_rules", "")]["content"] == {"join_rule": "public"}
        assert by_type[("m.room.name", "")]["content"] == {"name": "Lobby"}
        assert by_type[("m.room.topic", "")]["content"]["topic"] == "Say hi"
        assert by_type[("m.room.canonical_alias", "")]["content"] == {
            "alias": "#lobby:localhost"
        }
        assert by_type[("m.room.power_levels", "")]["content"]["events_default"] == 10
        assert (
            by_type[("m.room.member", bob.user_id)]["content"]["membership"] == "invite"
        )
        assert ("m.room.guest_access", "") not in by_type
        # The spec's order: create, creator join, power levels, alias, preset, ...
        status, msgs = await alice.messages(room_id, "dir=f&limit=50")
        types = [e["type"] for e in msgs["chunk"]]
        assert types[:4] == [
            "m.room.create",
            "m.room.member",
            "m.room.power_levels",
            "m.room.canonical_alias",
        ]
        assert types[-1] == "m.room.member"
        status, listed = await api.call("GET", "/publicRooms")
        assert status == 200
        assert [r["room_id"] for r in listed["chunk"]] == [room_id]
        assert listed["chunk"][0]["name"] == "Lobby"


@pytest.mark.parametrize("version", [str(v) for v in range(1, 13)])
async def test_every_room_version_works(tmp_path: Path, version: str) -> None:
    async with rooms_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        room_id = await alice.create_room(room_version=version, preset="public_chat")
        assert (await bob.join(room_id))[0] == 200
        await bob.send(room_id, "from bob")
        event_id = await alice.send(room_id, "from alice")
        status, _ = await alice.call(
            "PUT", f"/rooms/{q(room_id)}/redact/{q(event_id)}/r1", {"reason": "oops"}
        )
        assert status == 200
        assert await bob.timeline_bodies(room_id) == ["from bob"]
        # Synapse's legacy POST form without a transaction ID (SyTest 32room-versions).
        own = await bob.send(room_id, "again")
        status, body = await bob.call(
            "POST", f"/rooms/{q(room_id)}/redact/{q(own)}", {}
        )
        assert status == 200, body
        assert body["event_id"].startswith("$")
        assert await bob.timeline_bodies(room_id) == ["from bob"]


async def test_create_room_errors(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        cases = [
            ({"room_version": "99"}, 400, "M_UNSUPPORTED_ROOM_VERSION"),
            ({"preset": "nope"}, 400, "M_INVALID_PARAM"),
            ({"visibility": "secret"}, 400, "M_INVALID_PARAM"),
            ({"invite": "notalist"}, 400, "M_BAD_JSON"),
            ({"invite": ["not a user"]}, 400, "M_INVALID_PARAM"),
            ({"initial_state": [{"type": "m.room.name"}]}, 400, "M_BAD_JSON"),
            ({"initial_state": ["x"]}, 400, "M_BAD_JSON"),
            ({"room_alias_name": "bad:alias"}, 400, "M_INVALID_PARAM"),
            ({"name": 5}, 400, "M_BAD_JSON"),
            (
                {"power_level_content_override": {"users": {"@alice:localhost": 10}}},
                400,
                "M_INVALID_ROOM_STATE",
            ),
        ]
        for body, status, errcode in cases:
            got, out = await alice.call("POST", "/createRoom", body)
            assert (got, out.get("errcode")) == (status, errcode), body
        await alice.create_room(room_alias_name="taken")
        got, out = await alice.call("POST", "/createRoom", {"room_alias_name": "taken"})
        assert (got, out["errcode"]) == (400, "M_ROOM_IN_USE")
        got, out = await alice.call("POST", "/createRoom", data=b"[1]")
        assert got == 400
        # A failed creation leaves nothing behind.
        got, joined = await alice.call("GET", "/joined_rooms")
        assert len(joined["joined_rooms"]) == 1


async def test_send_is_idempotent_and_echoes_transaction_id(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        room_id = await alice.create_room()
        s1, first = await alice.send_raw(room_id, {"body": "once"}, txn="same")
        s2, second = await alice.send_raw(room_id, {"body": "twice?"}, txn="same")
        assert (s1, s2) == (200, 200)
        assert first == second
        assert await alice.timeline_bodies(room_id) == ["once"]
        status, ev = await alice.call(
            "GET", f"/rooms/{q(room_id)}/event/{q(first['event_id'])}"
        )
        assert ev["unsigned"]["transaction_id"] == "same"
        # Another device of the same user does not get the transaction ID.
        other = await api.login("alice")
        other_user = User(api, alice.user_id, other["access_token"], other["device_id"])
        status, ev = await other_user.call(
            "GET", f"/rooms/{q(room_id)}/event/{q(first['event_id'])}"
        )
        assert status == 200
        assert "transaction_id" not in ev["unsigned"]
        # ... and may reuse the same transaction ID for a new event.
        s3, third = await other_user.send_raw(room_id, {"body": "other"}, txn="same")
        assert s3 == 200
        assert third != first


async def test_state_events_and_empty_state_key(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        room_id = await alice.create_room(name="first")
        status, out = await alice.put_state(room_id, "m.room.name", {"name": "second"})
        assert status == 200
        _again_status, again = await alice.put_state(
            room_id, "m.room.name", {"name": "second"}
        )
        assert again == out  # unchanged state: no new event
        # No state key at all (no trailing slash) is the empty state key too.
        status, _ = await alice.call(
            "PUT", f"/rooms/{q(room_id)}/state/m.room.topic", {"topic": "t"}
        )
        assert status == 200
        status, content = await alice.call(
            "GET", f"/rooms/{q(room_id)}/state/m.room.name/"
        )
        assert (status, content) == (200, {"name": "second"})
        status, content = await alice.call(
            "GET", f"/rooms/{q(room_id)}/state/m.room.topic"
        )
        assert content == {"topic": "t"}
        status, event = await alice.call(
            "GET", f"/rooms/{q(room_id)}/state/m.room.name/?format=event"
        )
        assert event["content"] == {"name": "second"}
        assert event["unsigned"]["prev_content"] == {"name": "first"}
        status, out = await alice.put_state(
            room_id, "com.example.thing", {"a": 1}, "k/with/slash"
        )
        assert status == 200
        status, content = await alice.call(
            "GET", f"/rooms/{q(room_id)}/state/com.example.thing/{q('k/with/slash')}"
        )
        assert (status, content) == (200, {"a": 1})
        status, err = await alice.call(
            "GET", f"/rooms/{q(room_id)}/state/m.room.nothing/"
        )
        assert (status, err["errcode"]) == (404, "M_NOT_FOUND")


async def test_too_large_and_malformed_sends(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        room_id = await alice.create_room()
        status, out = await alice.send_raw(room_id, {"body": "x" * 70_000})
        assert (status, out["errcode"]) == (413, "M_TOO_LARGE")
        status, out = await alice.send_raw(room_id, [1, 2])
        assert (status, out["errcode"]) == (400, "M_NOT_JSON")
        status, out = await alice.call(
            "PUT", f"/rooms/{q(room_id)}/send/m.room.message/t", data=b"{nope"
        )
        assert (status, out["errcode"]) == (400, "M_NOT_JSON")
        status, out = await alice.send_raw(room_id, {"n": 1.5})
        assert (status, out["errcode"]) == (400, "M_BAD_JSON")
        status, out = await alice.send_raw("!nope:localhost", {"body": "x"})
        assert (status, out["errcode"]) == (404, "M_NOT_FOUND")
        status, out = await alice.send_raw("garbage", {"body": "x"})
        assert status in (400, 404)
        assert out["errcode"].startswith("M_")


async def test_power_levels_enforced_for_announcements(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (_, api):
        admin = await make_user(api, "admin")
        mod = await make_user(api, "mod")
        reader = await make_user(api, "reader")
        room_id = await admin.create_room(
            preset="public_chat",
            # Room v12: the creator has infinite power and is not listed.
            power_level_content_override={
                "events_default": 50,
                "users": {mod.user_id: 50},
            },
        )
        for u in (mod, reader):
            assert (await u.join(room_id))[0] == 200
        await mod.send(room_id, "announcement")
        status, out = await reader.send_raw(room_id, {"body": "me too"})
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        assert "power" in out["error"].lower() or "level" in out["error"].lower()
        status, out = await reader.put_state(room_id, "m.room.name", {"name": "x"})
        assert status == 403
        # Redactions: own events are fine, other people's need the redact level.
        mine = await mod.send(room_id, "mine")
        status, out = await reader.call(
            "PUT", f"/rooms/{q(room_id)}/redact/{q(mine)}/r1", {}
        )
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        status, _ = await mod.call(
            "PUT", f"/rooms/{q(room_id)}/redact/{q(mine)}/r2", {}
        )
        assert status == 200
        assert await reader.timeline_bodies(room_id) == ["announcement"]
        status, out = await mod.call(
            "PUT", f"/rooms/{q(room_id)}/redact/{q('$nothere')}/r3", {}
        )
        assert status == 404


async def test_messages_pagination_and_filters(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        room_id = await alice.create_room(preset="public_chat")
        await bob.join(room_id)
        for i in range(7):
            await (alice if i % 2 == 0 else bob).send(room_id, f"m{i}")
        seen: list[str] = []
        token = None
        for _ in range(10):
            query = "dir=b&limit=3" + (f"&from={token}" if token else "")
            status, page = await alice.messages(room_id, query)
            assert status == 200
            seen.extend(
                e["content"]["body"]
                for e in page["chunk"]
                if e["type"] == "m.room.message"
            )
            token = page.get("end")
            if token is None:
                break
        assert seen == [f"m{i}" for i in reversed(range(7))]
        flt = orjson.dumps(
            {
                "senders": [bob.user_id],
                "types": ["m.room.message"],
                "lazy_load_members": True,
            }
        ).decode()
        status, page = await alice.messages(room_id, f"dir=b&limit=50&filter={q(flt)}")
        assert [e["content"]["body"] for e in page["chunk"]] == ["m5", "m3", "m1"]
        assert {e["state_key"] for e in page["state"]} == {bob.user_id}
        flt = orjson.dumps(
            {"not_types": ["m.room.mem*"], "types": ["m.room.*"]}
        ).decode()
        status, page = await alice.messages(room_id, f"dir=f&limit=50&filter={q(flt)}")
        assert all(e["type"] != "m.room.member" for e in page["chunk"])
        # A sync-style stream token works as `from`.
        status, page = await alice.messages(
            room_id, "dir=b&limit=2&from=s999999_0_0_0_0_0_0"
        )
        assert [e["content"]["body"] for e in page["chunk"]] == ["m6", "m5"]
        status, page = await alice.messages(
            room_id, f"dir=f&limit=2&from={page['end']}"
        )
        assert [e["content"]["body"] for e in page["chunk"]] == ["m5", "m6"]
        for bad in ("dir=x", "dir=b&limit=-1", "dir=b&limit=abc", "dir=b&from=zzz",
                    "dir=b&filter=%7Bnope", "dir=b&filter=%7B%22types%22%3A5%7D"):  # fmt: skip
            status, out = await alice.messages(room_id, bad)
            assert status == 400, (bad, out)
            assert out["errcode"] in (
                "M_INVALID_PARAM",
                "M_BAD_JSON",
                "M_MISSING_PARAM",
            )


async def test_context_event_members_and_timestamps(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        room_id = await alice.create_room(preset="public_chat")
        await bob.join(room_id)
        ids = [await alice.send(room_id, f"c{i}") for i in range(5)]
        status, ctx = await alice.call(
            "GET", f"/rooms/{q(room_id)}/context/{q(ids[2])}?limit=4"
        )
        assert status == 200
        assert ctx["event"]["event_id"] == ids[2]
        assert [e["event_id"] for e in ctx["events_before"]] == [ids[1], ids[0]]
        assert [e["event_id"] for e in ctx["events_after"]] == [ids[3], ids[4]]
        assert any(e["type"] == "m.room.create" for e in ctx["state"])
        status, page = await alice.messages(
            room_id, f"dir=b&limit=2&from={ctx['start']}"
        )
        assert [e.get("event_id") for e in page["chunk"]][:1] == [ids[0]] or page[
            "chunk"
        ]
        status, ev = await alice.call("GET", f"/rooms/{q(room_id)}/event/{q(ids[0])}")
        assert ev["content"]["body"] == "c0"
        status, err = await alice.call("GET", f"/rooms/{q(room_id)}/event/{q('$nope')}")
        assert (status, err["errcode"]) == (404, "M_NOT_FOUND")
        status, members = await alice.call("GET", f"/rooms/{q(room_id)}/members")
        assert {m["state_key"] for m in members["chunk"]} == {
            alice.user_id,
            bob.user_id,
        }
        status, members = await alice.call(
            "GET", f"/rooms/{q(room_id)}/members?not_membership=join"
        )
        assert members["chunk"] == []
        status, err = await alice.call(
            "GET", f"/rooms/{q(room_id)}/members?membership=x"
        )
        assert status == 400
        status, joined = await alice.call("GET", f"/rooms/{q(room_id)}/joined_members")
        assert set(joined["joined"]) == {alice.user_id, bob.user_id}
        assert joined["joined"][bob.user_id]["display_name"] == "bob"
        status, found = await alice.call(
            "GET",
            f"/rooms/{q(room_id)}/timestamp_to_event?ts=0&dir=f",
            prefix="/_matrix/client/v1",
        )
        assert status == 200
        assert found["event_id"].startswith("$")
        status, err = await alice.call(
            "GET",
            f"/rooms/{q(room_id)}/timestamp_to_event?dir=f",
            prefix="/_matrix/client/v1",
        )
        assert (status, err["errcode"]) == (400, "M_MISSING_PARAM")
        status, err = await alice.call(
            "GET",
            f"/rooms/{q(room_id)}/timestamp_to_event?ts=99999999999999&dir=f",
            prefix="/_matrix/client/v1",
        )
        assert status == 404
