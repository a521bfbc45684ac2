"""Inbound room federation end to end: a Ranvier resident room, joined and written to by
a scripted remote server through the real endpoints (make_join/send_join, /send, EDUs).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ranvier.core.events.event import Event
from ranvier.storage.txn import Txn
from tests.helpers.federation import (
    FakeRemote,
    FedServer,
    RemoteRoom,
    fake_remote,
    running_federation,
)
from tests.helpers.sync import User, timeline_bodies

JsonDict = dict[str, Any]
BOB = "@bob:remote.test"


@dataclass
class Setup:
    hs1: FedServer
    remote: FakeRemote
    alice: User
    room_id: str
    room: RemoteRoom


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    async with (
        running_federation(tmp_path, ["hs1.test"]) as fed,
        fake_remote(fed, "remote.test") as remote,
    ):
        hs1 = fed["hs1.test"]
        alice = await hs1.user("alice")
        room_id = await alice.create_room(preset="public_chat")
        await alice.send(room_id, "before bob")
        room, _ = await remote.join(hs1, room_id, BOB)
        yield Setup(hs1, remote, alice, room_id, room)


async def stored_rejection(s: Setup, event_id: str) -> str | None:
    def txn_fn(txn: Txn) -> str | None:
        txn.execute(
            "SELECT rejected_reason FROM events WHERE event_id = ?", (event_id,)
        )
        row = txn.fetchone()
        return str(row[0]) if row is not None and row[0] is not None else None

    db = s.hs1.peer.homeserver.db
    return await db.run_read_txn("test_stored_rejection", txn_fn)


def message(s: Setup, body: str, **kw: Any) -> Event:
    return s.room.build(s.remote, BOB, "m.room.message", {"body": body}, **kw)


async def bodies(user: User, room_id: str) -> list[str]:
    status, out = await user.call(
        "GET", f"/rooms/{urllib.parse.quote(room_id)}/messages?dir=b&limit=50"
    )
    assert status == 200, out
    return [
        e["content"].get("body", "<redacted>")
        for e in reversed(out["chunk"])
        if e["type"] == "m.room.message"
    ]


async def test_remote_join_and_message_reach_local_sync(setup: Setup) -> None:
    s = setup
    members = await s.alice.ok(
        "GET", f"/rooms/{urllib.parse.quote(s.room_id)}/joined_members"
    )
    assert BOB in members["joined"]
    first = await s.alice.sync()
    ev = message(s, "hello from remote")
    status, out = await s.remote.send_transaction(s.hs1, [ev])
    assert status == 200, out
    assert out == {"pdus": {ev.event_id: {}}}
    later = await s.alice.sync(first["next_batch"])
    assert timeline_bodies(later, s.room_id) == ["hello from remote"]


async def test_replayed_transaction_gets_the_same_answer(setup: Setup) -> None:
    s = setup
    ev = message(s, "once")
    bad = message(s, "bad sig", record=False)
    bad.data["signatures"] = {"remote.test": {"ed25519:fake": "AAAA"}}
    first = await s.remote.send_transaction(s.hs1, [ev, bad.data], txn_id="dup")
    again = await s.remote.send_transaction(s.hs1, [ev, bad.data], txn_id="dup")
    assert first == again
    assert first[1]["pdus"][ev.event_id] == {}
    assert "error" in first[1]["pdus"][bad.event_id]
    assert (await bodies(s.alice, s.room_id)).count("once") == 1


async def test_bad_signature_dropped_and_room_still_works(setup: Setup) -> None:
    s = setup
    forged = message(s, "forged", record=False)
    forged.data["signatures"]["remote.test"] = {"ed25519:fake": "A" * 86}
    status, out = await s.remote.send_transaction(s.hs1, [forged.data])
    assert status == 200
    assert "signature" in out["pdus"][forged.event_id]["error"]
    ok = message(s, "still fine")
    status, out = await s.remote.send_transaction(s.hs1, [ok])
    assert out["pdus"][ok.event_id] == {}
    assert await bodies(s.alice, s.room_id) == ["before bob", "still fine"]


async def test_wrong_content_hash_is_redacted(setup: Setup) -> None:
    s = setup
    ev = message(s, "secret")
    ev.data["content"] = {"body": "changed in transit", "msgtype": "m.text"}
    status, out = await s.remote.send_transaction(s.hs1, [ev])
    assert status == 200
    assert out["pdus"][ev.event_id] == {}
    assert await bodies(s.alice, s.room_id) == ["before bob", "<redacted>"]


async def test_auth_failures_rejected_and_soft_failed(setup: Setup) -> None:
    s = setup
    stranger = s.room.build(
        s.remote, "@eve:remote.test", "m.room.message", {"body": "not a member"},
        record=False,
    )  # fmt: skip
    name = s.room.build(
        s.remote, BOB, "m.room.name", {"name": "bob's room"}, state_key="",
        record=False,
    )  # fmt: skip
    status, out = await s.remote.send_transaction(s.hs1, [stranger, name])
    assert status == 200
    # Processed, so `{}` (as Synapse answers); stored as rejected, never shown.
    assert out["pdus"] == {stranger.event_id: {}, name.event_id: {}}, out
    assert await stored_rejection(s, stranger.event_id)
    assert await stored_rejection(s, name.event_id)
    # Soft fail: alice bans bob; bob's event built before he learns of it passes the
    # state before it but not the current state: accepted, never shown.
    tip = list(s.room.extremities)
    await s.alice.ok(
        "POST",
        f"/rooms/{urllib.parse.quote(s.room_id)}/ban",
        {"user_id": BOB},
    )
    late = message(s, "after ban", prev=tip)
    status, out = await s.remote.send_transaction(s.hs1, [late])
    assert out["pdus"][late.event_id] == {}
    assert "after ban" not in await bodies(s.alice, s.room_id)
    await s.alice.send(s.room_id, "room works")
    assert (await bodies(s.alice, s.room_id))[-1] == "room works"


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        (b"{not json", "M_NOT_JSON"),
        (b"[]", "M_BAD_JSON"),
        (b'{"pdus": 5}', "M_BAD_JSON"),
    ],
)
async def test_garbage_transactions(setup: Setup, body: bytes, errcode: str) -> None:
    s = setup
    status, out = await s.remote.request(
        s.hs1, "PUT", "/_matrix/federation/v1/send/garbage", None, raw_body=body
    )
    assert status in (400, 401), out
    if status == 400:
        assert out["errcode"] == errcode


async def test_too_many_pdus_and_oversized_events(setup: Setup) -> None:
    s = setup
    many = [message(s, f"m{i}", record=False) for i in range(51)]
    status, out = await s.remote.send_transaction(s.hs1, many)
    assert status == 400, out
    big = message(s, "big", record=False)
    big.data["content"] = {"body": "x" * 70_000}  # same ID: redaction drops it
    junk: JsonDict = {"room_id": s.room_id, "type": "m.room.message"}
    status, out = await s.remote.send_transaction(s.hs1, [big, junk, 7])
    assert status == 200, out
    assert "error" in out["pdus"][big.event_id]
    ok = message(s, "after junk")
    status, out = await s.remote.send_transaction(s.hs1, [ok])
    assert out["pdus"][ok.event_id] == {}
    assert (await bodies(s.alice, s.room_id))[-1] == "after junk"


async def test_unknown_room_is_an_error_result(setup: Setup) -> None:
    s = setup
    pdu = dict(message(s, "elsewhere", record=False).data)
    pdu["room_id"] = "!nowhere:remote.test"
    pdu["event_id"] = "$hint:remote.test"
    status, out = await s.remote.send_transaction(s.hs1, [pdu])
    assert status == 200
    assert out["pdus"]["$hint:remote.test"]["error"]


async def test_missing_prev_events_fetched_with_get_missing_events(
    setup: Setup,
) -> None:
    s = setup
    gap = [message(s, f"gap {i}") for i in range(3)]
    tip = message(s, "tip")
    status, out = await s.remote.send_transaction(s.hs1, [tip])
    assert status == 200
    assert out["pdus"][tip.event_id] == {}, out
    assert any("get_missing_events" in r for r in s.remote.requests)
    assert await bodies(s.alice, s.room_id) == [
        "before bob",
        *(e.content["body"] for e in gap),
        "tip",
    ]


async def test_deep_gap_filled_from_remote_state(setup: Setup) -> None:
    s = setup
    for i in range(15):  # more than one get_missing_events page
        message(s, f"old {i}")
    rename = s.room.build(
        s.remote, BOB, "m.room.member", {"membership": "join", "displayname": "Bob"},
        state_key=BOB,
    )  # fmt: skip
    tip = message(s, "deep tip")
    status, out = await s.remote.send_transaction(s.hs1, [tip])
    assert status == 200
    assert out["pdus"][tip.event_id] == {}, out
    assert any("/state_ids/" in r for r in s.remote.requests)
    assert (await bodies(s.alice, s.room_id))[-1] == "deep tip"
    state = await s.alice.ok(
        "GET",
        f"/rooms/{urllib.parse.quote(s.room_id)}/state/m.room.member/"
        + urllib.parse.quote(BOB),
    )
    assert state["displayname"] == "Bob"
    assert rename.event_id


async def test_server_acl_denies_pdus_and_edus(setup: Setup) -> None:
    s = setup
    await s.alice.ok(
        "PUT",
        f"/rooms/{urllib.parse.quote(s.room_id)}/state/m.room.server_acl",
        {"allow": ["*"], "deny": ["remote.test"]},
    )
    ev = message(s, "denied")
    typing = {
        "edu_type": "m.typing",
        "content": {"room_id": s.room_id, "user_id": BOB, "typing": True},
    }
    status, out = await s.remote.send_transaction(s.hs1, [ev], [typing])
    assert status == 200
    assert "ACL" in out["pdus"][ev.event_id]["error"]
    assert "denied" not in await bodies(s.alice, s.room_id)
    sync = await s.alice.sync()
    ephemeral = sync["rooms"]["join"][s.room_id]["ephemeral"]["events"]
    assert not [
        e for e in ephemeral if e["type"] == "m.typing" and e["content"]["user_ids"]
    ]


async def test_edus_typing_receipts_presence(setup: Setup) -> None:
    s = setup
    ev = message(s, "read me")
    await s.remote.send_transaction(s.hs1, [ev])
    first = await s.alice.sync()
    edus = [
        {
            "edu_type": "m.typing",
            "content": {"room_id": s.room_id, "user_id": BOB, "typing": True},
        },
        {
            "edu_type": "m.receipt",
            "content": {
                s.room_id: {
                    "m.read": {BOB: {"event_ids": [ev.event_id], "data": {"ts": 1}}}
                }
            },
        },
        {
            "edu_type": "m.typing",  # not bob's server: dropped
            "content": {"room_id": s.room_id, "user_id": "@x:hs1.test", "typing": True},
        },
        {"edu_type": "m.presence", "content": {"push": [{"user_id": BOB,
         "presence": "online", "last_active_ago": 5, "currently_active": True}]}},
        {"edu_type": "m.unknown", "content": {}},
        {"edu_type": "m.receipt", "content": "garbage"},
    ]  # fmt: skip
    status, out = await s.remote.send_transaction(s.hs1, [], edus)
    assert status == 200, out
    later = await s.alice.sync(first["next_batch"])
    ephemeral = later["rooms"]["join"][s.room_id]["ephemeral"]["events"]
    by_type = {e["type"]: e["content"] for e in ephemeral}
    assert by_type["m.typing"]["user_ids"] == [BOB]
    assert BOB in by_type["m.receipt"][ev.event_id]["m.read"]
    presence = {e["sender"]: e for e in later["presence"]["events"]}
    assert presence[BOB]["content"]["presence"] == "online"


async def test_to_device_edu_reaches_local_device(setup: Setup) -> None:
    s = setup
    first = await s.alice.sync()
    edu = {
        "edu_type": "m.direct_to_device",
        "content": {
            "sender": BOB,
            "type": "m.room_key_request",
            "message_id": "m1",
            "messages": {s.alice.user_id: {"*": {"hello": "world"}}},
        },
    }
    await s.remote.send_transaction(s.hs1, [], [edu])
    await s.remote.send_transaction(s.hs1, [], [edu])  # same message_id: once
    later = await s.alice.sync(first["next_batch"])
    events = later["to_device"]["events"]
    assert events == [
        {"type": "m.room_key_request", "sender": BOB, "content": {"hello": "world"}}
    ]


async def test_malformed_edus_are_dropped_not_stored(setup: Setup) -> None:
    """NUL characters and over-deep nesting can't be stored on both engines or sent back
    out; such EDUs are dropped while the rest of the transaction is handled."""
    s = setup
    first = await s.alice.sync()
    deep: Any = {"x": 1}
    for _ in range(200):
        deep = {"d": deep}

    def to_device(message_id: str, content: Any) -> dict[str, Any]:
        return {
            "edu_type": "m.direct_to_device",
            "content": {
                "sender": BOB,
                "type": "m.test",
                "message_id": message_id,
                "messages": {s.alice.user_id: {"*": content}},
            },
        }

    edus = [
        to_device("nul", {"body": "a\x00b"}),
        to_device("deep", deep),
        to_device("ok", {"body": "fine"}),
    ]
    status, out = await s.remote.send_transaction(s.hs1, [], edus)
    assert status == 200, out
    later = await s.alice.sync(first["next_batch"])
    assert later["to_device"]["events"] == [
        {"type": "m.test", "sender": BOB, "content": {"body": "fine"}}
    ]
