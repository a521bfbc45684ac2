"""Serving history, state and membership handshakes between Ranvier servers in one
process: hs1 is resident, hs2 joins (hand-built, signed with hs2's real key), hs3 is a
bystander; hs2 and hs3 read through their own `FederationClient`.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ranvier.core.crypto.signing import signature_key_ids
from ranvier.core.events.builder import finalize_local_event
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.federation.client import FederationClient, federation_path
from ranvier.federation.errors import FederationError
from tests.helpers.federation import (
    FedServer,
    RemoteRoom,
    acting_as,
    fake_remote,
    running_federation,
)
from tests.helpers.sync import User

JsonDict = dict[str, Any]
BOB = "@bob:hs2.test"


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def client_of(server: FedServer) -> FederationClient:
    fed = server.peer.homeserver.federation
    assert fed is not None
    return fed.client


@dataclass
class Three:
    hs1: FedServer
    hs2: FedServer
    hs3: FedServer
    alice: User


@pytest.fixture
async def three(tmp_path: Path) -> AsyncIterator[Three]:
    async with running_federation(tmp_path, ["hs1.test", "hs2.test", "hs3.test"]) as f:
        hs1 = f["hs1.test"]
        yield Three(hs1, f["hs2.test"], f["hs3.test"], await hs1.user("alice"))


def bodies(pdus: list[JsonDict]) -> list[str | None]:
    return [p["content"].get("body") for p in pdus if p["type"] == "m.room.message"]


async def test_history_served_with_visibility(three: Three) -> None:
    t = three
    room_id = await t.alice.create_room(preset="public_chat")
    await t.alice.ok(
        "PUT",
        f"/rooms/{q(room_id)}/state/m.room.history_visibility",
        {"history_visibility": "joined"},
    )
    secret = await t.alice.send(room_id, "secret before")
    async with acting_as(t.hs2) as hs2:
        room, joined = await hs2.join(t.hs1, room_id, BOB)
    assert {"m.room.create", "m.room.member"} <= {p["type"] for p in joined["state"]}
    assert joined["servers_in_room"] == ["hs1.test", "hs2.test"]
    after = await t.alice.send(room_id, "after join")
    c2 = client_of(t.hs2)
    back = await c2.get_json(
        "hs1.test",
        federation_path("/_matrix/federation/v1/backfill/{}", room_id),
        args={"v": after, "limit": 50},
    )
    assert bodies(back["pdus"]) == ["after join", None]  # deepest first; redacted
    one = await c2.get_json(
        "hs1.test", federation_path("/_matrix/federation/v1/event/{}", secret)
    )
    assert "body" not in one["pdus"][0]["content"]
    missing = await c2.post_json(
        "hs1.test",
        federation_path("/_matrix/federation/v1/get_missing_events/{}", room_id),
        {"earliest_events": [room.extremities[0]], "latest_events": [after]},
    )
    assert missing["events"] == []  # the join is `after`'s only prev event
    ids = await c2.get_json(
        "hs1.test",
        federation_path("/_matrix/federation/v1/state_ids/{}", room_id),
        args={"event_id": after},
    )
    full = await c2.get_json(
        "hs1.test",
        federation_path("/_matrix/federation/v1/state/{}", room_id),
        args={"event_id": after},
    )
    assert room.extremities[0] in ids["pdu_ids"]
    assert sorted(p["type"] for p in full["pdus"]) == sorted(
        room.events[e].type for e in ids["pdu_ids"]
    )
    auth = await c2.get_json(
        "hs1.test",
        federation_path("/_matrix/federation/v1/event_auth/{}/{}", room_id, after),
    )
    assert "m.room.create" in {p["type"] for p in auth["auth_chain"]}
    # hs3 has nobody in the room: refused.
    with pytest.raises(FederationError) as err:
        await client_of(t.hs3).get_json(
            "hs1.test",
            federation_path("/_matrix/federation/v1/backfill/{}", room_id),
            args={"v": after, "limit": 5},
        )
    assert err.value.status == 403


async def test_get_missing_events_and_timestamp(three: Three) -> None:
    t = three
    room_id = await t.alice.create_room(preset="public_chat")
    async with acting_as(t.hs2) as hs2:
        room, _ = await hs2.join(t.hs1, room_id, BOB)
    sent = [await t.alice.send(room_id, f"m{i}") for i in range(4)]
    c2 = client_of(t.hs2)
    missing = await c2.post_json(
        "hs1.test",
        federation_path("/_matrix/federation/v1/get_missing_events/{}", room_id),
        {
            "earliest_events": [room.extremities[0]],
            "latest_events": [sent[-1]],
            "limit": 2,
        },
    )
    assert bodies(missing["events"]) == ["m1", "m2"]
    found = await c2.get_json(
        "hs1.test",
        federation_path("/_matrix/federation/v1/timestamp_to_event/{}", room_id),
        args={"ts": 0, "dir": "f"},
    )
    assert found["event_id"].startswith("$")


async def test_make_join_version_negotiation_and_bad_send_join(three: Three) -> None:
    t = three
    room_id = await t.alice.create_room(preset="public_chat")
    async with acting_as(t.hs2) as hs2:
        path = federation_path("/_matrix/federation/v1/make_join/{}/{}", room_id, BOB)
        status, out = await hs2.request(t.hs1, "GET", path + "?ver=1&ver=2")
        assert status == 400
        assert out["errcode"] == "M_INCOMPATIBLE_ROOM_VERSION"
        assert out["room_version"] == "12"
        other = federation_path(
            "/_matrix/federation/v1/make_join/{}/{}", room_id, "@x:hs3.test"
        )
        status, out = await hs2.request(t.hs1, "GET", other + "?ver=12")
        assert status == 403, out
        status, out = await hs2.request(
            t.hs1,
            "PUT",
            federation_path("/_matrix/federation/v2/send_join/{}/{}", room_id, "$nope"),
            {"type": "m.room.member"},
        )
        assert status == 400, out


async def test_leave_and_knock_handshakes(three: Three) -> None:
    t = three
    room_id = await t.alice.create_room(preset="public_chat", room_version="10")
    async with acting_as(t.hs2) as hs2:
        room, _ = await hs2.join(t.hs1, room_id, BOB)
        path = federation_path("/_matrix/federation/v1/make_leave/{}/{}", room_id, BOB)
        status, made = await hs2.request(t.hs1, "GET", path)
        assert status == 200, made
        leave = room.build(hs2, BOB, "m.room.member", {"membership": "leave"},
                           state_key=BOB)  # fmt: skip
        status, out = await hs2.request(
            t.hs1,
            "PUT",
            federation_path(
                "/_matrix/federation/v2/send_leave/{}/{}", room_id, leave.event_id
            ),
            leave.data,
        )
        assert (status, out) == (200, {})
        await t.alice.ok(
            "PUT",
            f"/rooms/{q(room_id)}/state/m.room.join_rules",
            {"join_rule": "knock"},
        )
        kate = "@kate:hs2.test"
        knock_path = federation_path(
            "/_matrix/federation/v1/make_knock/{}/{}", room_id, kate
        )
        status, made = await hs2.request(t.hs1, "GET", knock_path + "?ver=10")
        assert status == 200, made
        assert made["event"]["content"]["membership"] == "knock"
        knock = finalize_local_event(made["event"], room.rv, hs2.name, hs2.key)
        status, out = await hs2.request(
            t.hs1,
            "PUT",
            federation_path(
                "/_matrix/federation/v1/send_knock/{}/{}", room_id, knock.event_id
            ),
            knock.data,
        )
        assert status == 200, out
        types = {e["type"] for e in out["knock_room_state"]}
        assert {"m.room.create", "m.room.join_rules"} <= types
    members = await t.alice.ok("GET", f"/rooms/{q(room_id)}/members")
    by_user = {e["state_key"]: e["content"]["membership"] for e in members["chunk"]}
    assert by_user[BOB] == "leave"
    assert by_user[kate] == "knock"


async def test_restricted_join_is_countersigned(three: Three) -> None:
    t = three
    space = await t.alice.create_room(preset="public_chat", room_version="10")
    restricted = await t.alice.create_room(
        preset="private_chat",
        room_version="10",
        initial_state=[
            {
                "type": "m.room.join_rules",
                "state_key": "",
                "content": {
                    "join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": space}],
                },
            }
        ],
    )
    async with acting_as(t.hs2) as hs2:
        path = federation_path(
            "/_matrix/federation/v1/make_join/{}/{}", restricted, BOB
        )
        status, out = await hs2.request(t.hs1, "GET", path + "?ver=10")
        assert status == 403, out  # bob is in no allowed room yet
        await hs2.join(t.hs1, space, BOB)
        _, joined = await hs2.join(t.hs1, restricted, BOB)
    event = joined["event"]
    assert event["content"]["join_authorised_via_users_server"] == t.alice.user_id
    assert signature_key_ids(event, "hs1.test")
    members = await t.alice.ok("GET", f"/rooms/{q(restricted)}/joined_members")
    assert BOB in members["joined"]


async def test_invite_of_local_user_reaches_sync(three: Three) -> None:
    t = three
    carol = await t.hs1.user("carol")
    async with fake_remote({"hs1.test": t.hs1}, "remote.test") as remote:
        rv = KNOWN_ROOM_VERSIONS["10"]
        room = RemoteRoom("!r:remote.test", rv)
        bob = "@bob:remote.test"
        room.build(remote, bob, "m.room.create", {"creator": bob}, state_key="")
        room.build(remote, bob, "m.room.member", {"membership": "join"}, state_key=bob)
        room.build(remote, bob, "m.room.power_levels", {"users": {bob: 100}},
                   state_key="")  # fmt: skip
        room.build(remote, bob, "m.room.name", {"name": "Remote room"}, state_key="")
        invite = room.build(remote, bob, "m.room.member", {"membership": "invite"},
                            state_key=carol.user_id)  # fmt: skip
        stripped = [
            {"type": "m.room.name", "state_key": "", "sender": bob,
             "content": {"name": "Remote room"}},
        ]  # fmt: skip
        path = federation_path(
            "/_matrix/federation/v2/invite/{}/{}", room.room_id, invite.event_id
        )
        body = {"room_version": "10", "event": invite.data,
                "invite_room_state": stripped}  # fmt: skip
        status, out = await remote.request(t.hs1, "PUT", path, body)
        assert status == 200, out
        assert signature_key_ids(out["event"], "hs1.test")
        status, out = await remote.request(
            t.hs1, "PUT", path, {**body, "room_version": "99"}
        )
        assert (status, out["errcode"]) == (400, "M_INCOMPATIBLE_ROOM_VERSION")
        wrong = room.build(remote, bob, "m.room.member", {"membership": "invite"},
                           state_key="@nobody:hs1.test")  # fmt: skip
        status, out = await remote.request(
            t.hs1,
            "PUT",
            federation_path(
                "/_matrix/federation/v2/invite/{}/{}", room.room_id, wrong.event_id
            ),
            {**body, "event": wrong.data},
        )
        # An unknown local user: countersigned like Synapse (SyTest relies on it),
        # nothing stored.
        assert status == 200, out
        assert signature_key_ids(out["event"], "hs1.test")
    sync = await carol.sync()
    invite_state = sync["rooms"]["invite"][room.room_id]["invite_state"]["events"]
    assert {e["type"] for e in invite_state} == {"m.room.name", "m.room.member"}


async def test_queries(three: Three) -> None:
    t = three
    await t.alice.ok("PUT", f"/profile/{q(t.alice.user_id)}/displayname",
                     {"displayname": "Alice"})  # fmt: skip
    room_id = await t.alice.create_room(
        preset="public_chat", room_alias_name="lobby", visibility="public"
    )
    c2 = client_of(t.hs2)
    found = await c2.get_json(
        "hs1.test",
        "/_matrix/federation/v1/query/directory",
        args={"room_alias": "#lobby:hs1.test"},
    )
    assert found == {"room_id": room_id, "servers": ["hs1.test"]}
    profile = await c2.get_json(
        "hs1.test",
        "/_matrix/federation/v1/query/profile",
        args={"user_id": t.alice.user_id, "field": "displayname"},
    )
    assert profile == {"displayname": "Alice"}
    public = await c2.get_json("hs1.test", "/_matrix/federation/v1/publicRooms")
    assert [r["room_id"] for r in public["chunk"]] == [room_id]
    searched = await c2.post_json(
        "hs1.test",
        "/_matrix/federation/v1/publicRooms",
        {"filter": {"generic_search_term": "nothing like it"}},
    )
    assert searched["chunk"] == []
    hierarchy = await c2.get_json(
        "hs1.test", federation_path("/_matrix/federation/v1/hierarchy/{}", room_id)
    )
    assert hierarchy["room"]["room_id"] == room_id
    assert hierarchy["children"] == []
    for args in ({"room_alias": "#nope:hs1.test"}, {"room_alias": "#x:hs2.test"}):
        with pytest.raises(FederationError) as err:
            await c2.get_json(
                "hs1.test", "/_matrix/federation/v1/query/directory", args=args
            )
        assert err.value.status in (400, 404)
    with pytest.raises(FederationError) as err:
        await c2.get_json(
            "hs1.test",
            "/_matrix/federation/v1/openid/userinfo",
            args={"access_token": "nope"},
        )
    assert (err.value.status, err.value.errcode) == (401, "M_UNKNOWN_TOKEN")


async def test_accepted_join_is_sent_to_the_other_servers(three: Three) -> None:
    t = three
    room_id = await t.alice.create_room(preset="public_chat")
    async with fake_remote({"hs1.test": t.hs1}, "remote.test") as remote:
        await remote.join(t.hs1, room_id, "@rem:remote.test")
        async with acting_as(t.hs2) as hs2:
            _, joined = await hs2.join(t.hs1, room_id, BOB)
        join_id = joined["event"]
        for _ in range(100):
            pdus = [p for txn in remote.received for p in txn["pdus"]]
            if any(p.get("state_key") == BOB for p in pdus):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"join never reached remote.test: {remote.received}")
    assert join_id["content"]["membership"] == "join"
