"""Relations, bundled aggregations and threads through the real server, on both
engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ranvier.storage.txn import EngineName
from tests.helpers.accounts import V1, accounts_server
from tests.helpers.rooms import User, make_user, q

JsonDict = dict[str, Any]


def _reply(parent: str, body: str, rel_type: str = "m.thread") -> JsonDict:
    return {
        "msgtype": "m.text",
        "body": body,
        "m.relates_to": {"rel_type": rel_type, "event_id": parent},
    }


def _edit(parent: str, body: str) -> JsonDict:
    return {
        "msgtype": "m.text",
        "body": f"* {body}",
        "m.new_content": {"msgtype": "m.text", "body": body},
        "m.relates_to": {"rel_type": "m.replace", "event_id": parent},
    }


async def _send(user: User, room_id: str, content: JsonDict, etype: str = "") -> str:
    status, out = await user.send_raw(room_id, content, etype or "m.room.message")
    assert status == 200, out
    event_id: str = out["event_id"]
    return event_id


async def _relations(user: User, room_id: str, tail: str) -> tuple[int, JsonDict]:
    return await user.call("GET", f"/rooms/{q(room_id)}/relations/{tail}", prefix=V1)


async def _event(user: User, room_id: str, event_id: str) -> JsonDict:
    status, out = await user.call("GET", f"/rooms/{q(room_id)}/event/{q(event_id)}")
    assert status == 200, out
    event: JsonDict = out
    return event


async def test_relations_pagination_and_filters(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await make_user(api, "alice")
        room = await alice.create_room()
        root = await alice.send(room, "root")
        replies = [await _send(alice, room, _reply(root, f"r{i}")) for i in range(5)]
        reaction = await _send(
            alice,
            room,
            {
                "m.relates_to": {
                    "rel_type": "m.annotation",
                    "event_id": root,
                    "key": "+",
                }
            },
            "m.reaction",
        )
        await alice.send(room, "unrelated")

        status, out = await _relations(alice, room, q(root))
        assert status == 200, out
        assert [e["event_id"] for e in out["chunk"]] == [reaction, *replies[::-1]]
        assert "next_batch" not in out

        status, page1 = await _relations(alice, room, f"{q(root)}/m.thread?limit=2")
        assert status == 200, page1
        assert [e["event_id"] for e in page1["chunk"]] == replies[:2:-1]
        token = page1["next_batch"]
        status, page2 = await _relations(
            alice, room, f"{q(root)}/m.thread?limit=2&from={token}"
        )
        assert [e["event_id"] for e in page2["chunk"]] == replies[2:0:-1]
        assert page2["prev_batch"] == token
        status, page3 = await _relations(
            alice, room, f"{q(root)}/m.thread?limit=2&from={page2['next_batch']}"
        )
        assert [e["event_id"] for e in page3["chunk"]] == replies[:1]
        assert "next_batch" not in page3

        status, forward = await _relations(alice, room, f"{q(root)}/m.thread?dir=f")
        assert [e["event_id"] for e in forward["chunk"]] == replies

        status, typed = await _relations(
            alice, room, f"{q(root)}/m.annotation/m.reaction"
        )
        assert [e["event_id"] for e in typed["chunk"]] == [reaction]
        status, none = await _relations(
            alice, room, f"{q(root)}/m.annotation/m.room.message"
        )
        assert none["chunk"] == []


async def test_relations_recurse(tmp_path: Path, db_engine: EngineName) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await make_user(api, "alice")
        room = await alice.create_room()
        root = await alice.send(room, "root")
        child = await _send(alice, room, _reply(root, "child", "m.reference"))
        grandchild = await _send(alice, room, _reply(child, "gc", "m.reference"))
        status, flat = await _relations(alice, room, q(root))
        assert [e["event_id"] for e in flat["chunk"]] == [child]
        assert "recursion_depth" not in flat
        status, deep = await _relations(alice, room, f"{q(root)}?recurse=true")
        assert status == 200, deep
        assert [e["event_id"] for e in deep["chunk"]] == [grandchild, child]
        assert deep["recursion_depth"] == 3


async def test_bundled_thread_edit_reference_and_redaction(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        room = await alice.create_room(preset="public_chat")
        assert (await bob.join(room))[0] == 200
        root = await alice.send(room, "root")
        await _send(alice, room, _reply(root, "one"))
        latest = await _send(alice, room, _reply(root, "two"))
        edit1 = await _send(alice, room, _edit(root, "root v2"))
        await _send(bob, room, _edit(root, "not bob's to edit"))
        ref = await _send(bob, room, _reply(root, "see", "m.reference"))
        # A relation from another room never counts.
        elsewhere = await alice.create_room()
        await _send(alice, elsewhere, _reply(root, "sneaky"))
        await _send(alice, elsewhere, _edit(root, "hijack"))

        seen_by_bob = await _event(bob, room, root)
        bundle = seen_by_bob["unsigned"]["m.relations"]
        thread = bundle["m.thread"]
        assert thread["count"] == 2
        assert thread["latest_event"]["event_id"] == latest
        assert thread["current_user_participated"] is False
        assert bundle["m.replace"]["event_id"] == edit1
        assert bundle["m.replace"]["content"]["m.new_content"]["body"] == "root v2"
        assert bundle["m.reference"] == {"chunk": [{"event_id": ref}]}
        seen_by_alice = await _event(alice, room, root)
        assert (
            seen_by_alice["unsigned"]["m.relations"]["m.thread"][
                "current_user_participated"
            ]
            is True
        )

        # Bundles also reach /messages.
        status, msgs = await alice.messages(room)
        by_id = {e["event_id"]: e for e in msgs["chunk"]}
        assert by_id[root]["unsigned"]["m.relations"]["m.thread"]["count"] == 2

        # A redacted relation leaves every aggregation.
        status, out = await alice.call(
            "PUT", f"/rooms/{q(room)}/redact/{q(latest)}/r1", {}
        )
        assert status == 200, out
        status, out = await alice.call(
            "PUT", f"/rooms/{q(room)}/redact/{q(edit1)}/r2", {}
        )
        assert status == 200, out
        after = (await _event(bob, room, root))["unsigned"]["m.relations"]
        assert after["m.thread"]["count"] == 1
        assert after["m.thread"]["latest_event"]["content"]["body"] == "one"
        assert "m.replace" not in after
        status, rel = await _relations(alice, room, f"{q(root)}/m.thread")
        assert len(rel["chunk"]) == 1


async def test_threads_list(tmp_path: Path, db_engine: EngineName) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        room = await alice.create_room(preset="public_chat")
        assert (await bob.join(room))[0] == 200
        t1 = await alice.send(room, "thread one")
        t2 = await bob.send(room, "thread two")
        t3 = await bob.send(room, "thread three")
        await _send(bob, room, _reply(t1, "a"))
        await _send(bob, room, _reply(t2, "b"))
        await _send(bob, room, _reply(t3, "c"))
        await _send(alice, room, _reply(t1, "d"))  # t1 is now the most recent

        path = f"/rooms/{q(room)}/threads"
        status, out = await alice.call("GET", path, prefix=V1)
        assert status == 200, out
        assert [e["event_id"] for e in out["chunk"]] == [t1, t3, t2]
        assert out["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["count"] == 2

        status, page = await alice.call("GET", f"{path}?limit=2", prefix=V1)
        assert [e["event_id"] for e in page["chunk"]] == [t1, t3]
        status, rest = await alice.call(
            "GET", f"{path}?limit=2&from={page['next_batch']}", prefix=V1
        )
        assert [e["event_id"] for e in rest["chunk"]] == [t2]
        assert "next_batch" not in rest

        status, mine = await alice.call(
            "GET", f"{path}?include=participated", prefix=V1
        )
        assert [e["event_id"] for e in mine["chunk"]] == [t1]
        status, bobs = await bob.call("GET", f"{path}?include=participated", prefix=V1)
        assert [e["event_id"] for e in bobs["chunk"]] == [t1, t3, t2]


async def test_relations_visibility_and_bad_input(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_, api):
        alice = await make_user(api, "alice")
        eve = await make_user(api, "eve")
        room = await alice.create_room()  # private
        root = await alice.send(room, "root")
        await _send(alice, room, _reply(root, "secret"))

        status, out = await _relations(eve, room, q(root))
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")
        status, out = await eve.call("GET", f"/rooms/{q(room)}/threads", prefix=V1)
        assert (status, out["errcode"]) == (403, "M_FORBIDDEN")

        status, out = await _relations(alice, room, q("$nope"))
        assert (status, out["errcode"]) == (404, "M_NOT_FOUND")
        other = await alice.create_room()
        status, out = await _relations(alice, other, q(root))
        assert (status, out["errcode"]) == (404, "M_NOT_FOUND")

        for query in ("dir=x", "limit=-1", "limit=abc", "recurse=maybe", "from=zzz"):
            status, out = await _relations(alice, room, f"{q(root)}?{query}")
            assert (status, out["errcode"]) == (400, "M_INVALID_PARAM"), query
        for query in ("include=mine", "from=zzz", "limit=x"):
            status, out = await alice.call(
                "GET", f"/rooms/{q(room)}/threads?{query}", prefix=V1
            )
            assert (status, out["errcode"]) == (400, "M_INVALID_PARAM"), query


@pytest.mark.parametrize(
    "relates_to",
    [
        "not an object",
        {"rel_type": "m.thread"},
        {"rel_type": 5, "event_id": "$x"},
        {"event_id": "$x"},
        {"m.in_reply_to": {"event_id": "$x"}},
    ],
)
async def test_malformed_relations_are_not_indexed(
    tmp_path: Path, relates_to: Any
) -> None:
    async with accounts_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        room = await alice.create_room()
        root = await alice.send(room, "root")
        if isinstance(relates_to, dict) and "event_id" in relates_to:
            relates_to = {**relates_to, "event_id": root}
        await _send(alice, room, {"body": "x", "m.relates_to": relates_to})
        status, out = await _relations(alice, room, q(root))
        assert status == 200, out
        assert out["chunk"] == []
        assert "m.relations" not in (await _event(alice, room, root))["unsigned"]
