"""The sliding sync `threads` extension (MSC4360) through the real server, on both
engines: initial and incremental thread updates, `include_roots`, `prev_batch`
(usable with `/relations`), `limit`, the unstable name, history visibility and
ignored users."""

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
LIST = {"all": {"ranges": [[0, 9]], "timeline_limit": 1, "required_state": []}}


async def ss(
    user: User, body: JsonDict, pos: str | None = None, wait_ms: int = 0
) -> JsonDict:
    query = {"pos": pos} if pos else {}
    if wait_ms:
        query["timeout"] = str(wait_ms)
    path = "/sync" + ("?" + urllib.parse.urlencode(query) if query else "")
    status, out = await user.api.call(
        "POST", path, token=user.token, json=body, prefix=SS
    )
    assert status == 200, out
    return out


def req(**threads: Any) -> JsonDict:
    return {"lists": LIST, "extensions": {"threads": {"enabled": True, **threads}}}


async def reply(user: User, room: str, root: str, body: str) -> str:
    sent = await user.ok(
        "PUT",
        f"/rooms/{room}/send/m.room.message/r-{body}",
        {
            "msgtype": "m.text",
            "body": body,
            "m.relates_to": {"rel_type": "m.thread", "event_id": root},
        },
    )
    event_id: str = sent["event_id"]
    return event_id


async def test_threads_initial_and_incremental(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        room = await alice.create_room(name="Threads")
        await alice.invite(room, bob.user_id)
        await bob.join(room)
        root = await alice.send(room, "root")
        first = await reply(bob, room, root, "one")
        second = await reply(bob, room, root, "two")
        other = await alice.send(room, "other root")
        await reply(alice, room, other, "only")

        # Disabled (or absent): nothing.
        off = await ss(alice, {"lists": LIST})
        assert "threads" not in off["extensions"]

        initial = await ss(alice, req(include_roots=True))
        ext = initial["extensions"]["threads"]
        assert set(ext["updates"][room]) == {root, other}
        update = ext["updates"][room][root]
        assert update["thread_root"]["event_id"] == root
        bundled = update["thread_root"]["unsigned"]["m.relations"]["m.thread"]
        assert bundled["count"] == 2
        assert bundled["latest_event"]["event_id"] == second
        assert "prev_batch" not in ext
        # One new event only: no per-thread prev_batch.
        assert "prev_batch" not in ext["updates"][room][other]
        # The per-thread prev_batch backpaginates /relations from before the latest.
        token = urllib.parse.quote(update["prev_batch"])
        q = urllib.parse.quote
        status, rel = await alice.api.call(
            "GET",
            f"/rooms/{q(room)}/relations/{q(root)}/m.thread?dir=b&from={token}",
            token=alice.token,
            prefix="/_matrix/client/v1",
        )
        assert status == 200, rel
        assert [e["event_id"] for e in rel["chunk"]] == [first]

        # `limit` keeps the latest thread, and says more were left out.
        limited = await ss(alice, {**req(limit=1, include_roots=True), "conn_id": "b"})
        only = limited["extensions"]["threads"]
        assert list(only["updates"][room]) == [other]
        assert "prev_batch" in only
        # Without roots: no thread_root, and the thread whose only new event is in
        # the timeline (limit 1: "only") is left out.
        bare = (await ss(alice, {**req(), "conn_id": "c"}))["extensions"]["threads"]
        assert list(bare["updates"][room]) == [root]
        assert set(bare["updates"][room][root]) == {"prev_batch"}

        # Unscoped, every joined room counts, even with no list; scoped to a list
        # that does not exist, none.
        nolist = await ss(
            alice, {"conn_id": "d", "extensions": {"threads": {"enabled": True}}}
        )
        assert set(nolist["extensions"]["threads"]["updates"][room]) == {root, other}
        scoped = {
            "conn_id": "e",
            "lists": LIST,
            "extensions": {"threads": {"enabled": True, "lists": ["nope"]}},
        }
        assert "threads" not in (await ss(alice, scoped))["extensions"]

        # Incremental: nothing new, nothing sent.
        pos = initial["pos"]
        again = await ss(alice, req(include_roots=True), pos)
        assert "threads" not in again["extensions"]
        pos = again["pos"]

        # A reply that comes down the timeline: left out without include_roots...
        third = await reply(bob, room, root, "three")
        seen = await ss(alice, req(), pos)
        assert seen["rooms"][room]["timeline"][-1]["event_id"] == third
        assert "threads" not in seen["extensions"]
        # ... and sent with it.
        with_roots = await ss(alice, req(include_roots=True), pos)
        got = with_roots["extensions"]["threads"]["updates"]
        assert list(got) == [room]
        assert list(got[room]) == [root]
        assert "prev_batch" not in got[room][root]
        assert (
            got[room][root]["thread_root"]["unsigned"]["m.relations"]["m.thread"][
                "latest_event"
            ]["event_id"]
            == third
        )

        # Two replies, only the latest in the (limit 1) timeline: sent, with
        # prev_batch, under the unstable name too.
        pos = with_roots["pos"]
        await reply(bob, room, other, "four")
        fifth = await reply(bob, room, other, "five")
        unstable = {
            "lists": LIST,
            "extensions": {"io.element.msc4360.threads": {"enabled": True}},
        }
        missed = await ss(alice, unstable, pos)
        assert missed["rooms"][room]["timeline"][-1]["event_id"] == fifth
        ext = missed["extensions"]["io.element.msc4360.threads"]
        assert list(ext["updates"][room]) == [other]
        assert "prev_batch" in ext["updates"][room][other]
        assert "thread_root" not in ext["updates"][room][other]

        # A long-poll with no lists answers for a thread reply alone.
        bare_body = {"conn_id": "f", "extensions": {"threads": {"enabled": True}}}
        start = await ss(alice, bare_body)
        poll = asyncio.create_task(ss(alice, bare_body, start["pos"], wait_ms=10_000))
        await asyncio.sleep(0.3)
        assert not poll.done()
        await reply(bob, room, root, "woken")
        woke = await asyncio.wait_for(poll, 8)
        assert list(woke["extensions"]["threads"]["updates"][room]) == [root]


async def test_threads_visibility_and_ignored(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        carol = await new_user(api, "carol")
        dave = await new_user(api, "dave")
        room = await alice.create_room(name="Hidden")
        await alice.ok(
            "PUT",
            f"/rooms/{room}/state/m.room.history_visibility/",
            {"history_visibility": "joined"},
        )
        await alice.invite(room, bob.user_id)
        await bob.join(room)
        root = await alice.send(room, "root")
        await reply(bob, room, root, "early")

        # Carol is no member: nothing, even when subscribing to the room.
        body = req(include_roots=True)
        body["room_subscriptions"] = {room: {"timeline_limit": 1}}
        none = await ss(carol, body)
        assert "threads" not in none["extensions"]

        # Dave joins after the thread: its events predate him (`joined`).
        await alice.invite(room, dave.user_id)
        await dave.join(room)
        joined = await ss(dave, req(include_roots=True))
        assert "threads" not in joined["extensions"]
        # A new reply in that thread: its root is still hidden from him (as on
        # /relations and /threads), so it is not his; a thread started after his
        # join is.
        await reply(bob, room, root, "later")
        fresh = await alice.send(room, "fresh root")
        await reply(bob, room, fresh, "fresh reply")
        news = await ss(dave, req(include_roots=True), joined["pos"])
        updates = news["extensions"]["threads"]["updates"]
        assert list(updates[room]) == [fresh]
        assert updates[room][fresh]["thread_root"]["event_id"] == fresh

        # Alice ignores Bob: a thread whose new events are all Bob's is left out.
        await alice.ok(
            "PUT",
            f"/user/{alice.user_id}/account_data/m.ignored_user_list",
            {"ignored_users": {bob.user_id: {}}},
        )
        ignoring = await ss(alice, req(include_roots=True))
        assert "threads" not in ignoring["extensions"]
        await reply(alice, room, root, "mine")
        mine = await ss(alice, req(include_roots=True), ignoring["pos"])
        assert list(mine["extensions"]["threads"]["updates"][room]) == [root]
