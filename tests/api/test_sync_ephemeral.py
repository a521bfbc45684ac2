"""Per-user and ephemeral data through the real server and into /sync: typing, receipts
and read markers, unread counts, account data and tags, presence, to-device, device
lists."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ranvier.storage.txn import EngineName
from tests.helpers.accounts import accounts_server
from tests.helpers.sync import another_device, ephemeral, new_user

LONG_POLL_MS = 30_000
PROMPT_SECONDS = 15


async def test_typing(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        eve = await new_user(api, "eve")
        room = await alice.create_room(preset="public_chat")
        await bob.join(room)
        since = (await bob.sync())["next_batch"]

        poll = asyncio.ensure_future(bob.sync(since, timeout_ms=LONG_POLL_MS))
        await asyncio.sleep(0.2)
        await alice.ok(
            "PUT",
            f"/rooms/{room}/typing/{alice.user_id}",
            {"typing": True, "timeout": 10**9},
        )
        woken = await asyncio.wait_for(poll, PROMPT_SECONDS)
        [typing] = ephemeral(woken, room, "m.typing")
        assert typing["content"]["user_ids"] == [alice.user_id]
        # The initial sync shows who is typing right now.
        assert ephemeral(await bob.sync(), room, "m.typing")[0]["content"][
            "user_ids"
        ] == [alice.user_id]

        await alice.ok(
            "PUT", f"/rooms/{room}/typing/{alice.user_id}", {"typing": False}
        )
        stopped = await bob.sync(woken["next_batch"])
        assert ephemeral(stopped, room, "m.typing")[0]["content"]["user_ids"] == []

        status, err = await eve.call(
            "PUT", f"/rooms/{room}/typing/{eve.user_id}", {"typing": True}
        )
        assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
        status, err = await bob.call(
            "PUT", f"/rooms/{room}/typing/{alice.user_id}", {"typing": True}
        )
        assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
        status, err = await bob.call("PUT", f"/rooms/{room}/typing/{bob.user_id}", {})
        assert (status, err["errcode"]) == (400, "M_MISSING_PARAM")


async def test_receipts_read_markers_and_unread_counts(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        room = await alice.create_room(preset="public_chat")
        await bob.join(room)
        alice_since = (await alice.sync())["next_batch"]
        await bob.send(room, "one")
        second = await bob.send(room, "two")
        bob_since = (await bob.sync())["next_batch"]

        unread = await alice.sync(alice_since)
        assert (
            unread["rooms"]["join"][room]["unread_notifications"]["notification_count"]
            == 2
        )

        poll = asyncio.ensure_future(bob.sync(bob_since, timeout_ms=LONG_POLL_MS))
        await asyncio.sleep(0.2)
        await alice.ok("POST", f"/rooms/{room}/receipt/m.read/{second}", {})
        woken = await asyncio.wait_for(poll, PROMPT_SECONDS)
        receipt_events = ephemeral(woken, room, "m.receipt")
        assert receipt_events, woken
        content = receipt_events[0]["content"]
        assert alice.user_id in content[second]["m.read"]
        assert isinstance(content[second]["m.read"][alice.user_id]["ts"], int)

        read = await alice.sync(unread["next_batch"])
        assert (
            read["rooms"]["join"][room]["unread_notifications"]["notification_count"]
            == 0
        )

        # Private receipts reach only their author.
        third = await bob.send(room, "three")
        await alice.ok("POST", f"/rooms/{room}/receipt/m.read.private/{third}", {})
        bob_view = await bob.sync(woken["next_batch"])
        assert not any(
            "m.read.private" in per
            for e in ephemeral(bob_view, room, "m.receipt")
            for per in e["content"].values()
        )
        alice_view = await alice.sync(read["next_batch"])
        private = [
            e for e in ephemeral(alice_view, room, "m.receipt") if third in e["content"]
        ]
        assert alice.user_id in private[0]["content"][third]["m.read.private"]

        # Threaded receipts carry their thread ID.
        await alice.ok(
            "POST", f"/rooms/{room}/receipt/m.read/{third}", {"thread_id": "main"}
        )
        bob_view2 = await bob.sync(bob_view["next_batch"])
        [threaded] = ephemeral(bob_view2, room, "m.receipt")
        assert (
            threaded["content"][third]["m.read"][alice.user_id]["thread_id"] == "main"
        )

        # Read markers: m.fully_read becomes room account data.
        await alice.ok(
            "POST",
            f"/rooms/{room}/read_markers",
            {"m.fully_read": third, "m.read": third},
        )
        marker = await alice.sync(alice_view["next_batch"])
        [fully_read] = [
            e
            for e in marker["rooms"]["join"][room]["account_data"]["events"]
            if e["type"] == "m.fully_read"
        ]
        assert fully_read["content"] == {"event_id": third}
        await alice.ok("POST", f"/rooms/{room}/receipt/m.fully_read/{second}", {})

        for path, body, code in [
            (f"/rooms/{room}/receipt/m.bogus/{third}", {}, "M_INVALID_PARAM"),
            (
                f"/rooms/{room}/receipt/m.read/{third}",
                {"thread_id": "x"},
                "M_INVALID_PARAM",
            ),
            (f"/rooms/{room}/receipt/m.read/$nope", {}, "M_NOT_FOUND"),
            (f"/rooms/{room}/receipt/m.read/{third}", {"thread_id": 5}, "M_BAD_JSON"),
        ]:
            status, err = await alice.call("POST", path, body)
            assert err["errcode"] == code, (path, status, err)


async def test_account_data_and_tags(tmp_path: Path, db_engine: EngineName) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        room = await alice.create_room()
        since = (await alice.sync())["next_batch"]
        me = alice.user_id

        poll = asyncio.ensure_future(alice.sync(since, timeout_ms=LONG_POLL_MS))
        await asyncio.sleep(0.2)
        await alice.ok("PUT", f"/user/{me}/account_data/org.example.settings", {"a": 1})
        woken = await asyncio.wait_for(poll, PROMPT_SECONDS)
        assert woken["account_data"]["events"] == [
            {"type": "org.example.settings", "content": {"a": 1}}
        ]
        assert await alice.ok(
            "GET", f"/user/{me}/account_data/org.example.settings"
        ) == {"a": 1}
        await alice.ok(
            "PUT", f"/user/{me}/rooms/{room}/account_data/org.example.r", {"b": 2}
        )
        await alice.ok("PUT", f"/user/{me}/rooms/{room}/tags/u.work", {"order": 0.5})
        await alice.ok("PUT", f"/user/{me}/rooms/{room}/tags/m.favourite", {})
        tags = await alice.ok("GET", f"/user/{me}/rooms/{room}/tags")
        assert tags == {"tags": {"u.work": {"order": 0.5}, "m.favourite": {}}}
        await alice.ok("DELETE", f"/user/{me}/rooms/{room}/tags/m.favourite")

        later = await alice.sync(woken["next_batch"])
        room_data = {
            e["type"]: e["content"]
            for e in later["rooms"]["join"][room]["account_data"]["events"]
        }
        assert room_data == {
            "org.example.r": {"b": 2},
            "m.tag": {"tags": {"u.work": {"order": 0.5}}},
        }
        # An initial sync carries all of it.
        initial = await alice.sync()
        assert {"type": "org.example.settings", "content": {"a": 1}} in initial[
            "account_data"
        ]["events"]

        checks = [
            (
                "GET",
                f"/user/{me}/account_data/org.example.none",
                None,
                404,
                "M_NOT_FOUND",
            ),
            ("PUT", f"/user/{me}/account_data/m.fully_read", {}, 405, "M_BAD_JSON"),
            ("PUT", f"/user/{me}/account_data/m.push_rules", {}, 405, "M_BAD_JSON"),
            (
                "GET",
                f"/user/{me}/rooms/bad/account_data/x",
                None,
                400,
                "M_INVALID_PARAM",
            ),
            (
                "PUT",
                f"/user/{me}/rooms/{room}/tags/t",
                {"order": "1"},
                400,
                "M_BAD_JSON",
            ),
        ]
        for method, path, body, status, code in checks:
            got, err = await alice.call(method, path, body)
            assert (got, err["errcode"]) == (status, code), path
        status, err = await bob.call(
            "GET", f"/user/{me}/account_data/org.example.settings"
        )
        assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
        status, err = await bob.call("PUT", f"/user/{me}/rooms/{room}/tags/x", {})
        assert (status, err["errcode"]) == (403, "M_FORBIDDEN")


async def test_presence(tmp_path: Path, db_engine: EngineName) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        stranger = await new_user(api, "stranger")
        room = await alice.create_room(preset="public_chat")
        await bob.join(room)
        bob_since = (await bob.sync(set_presence="offline"))["next_batch"]

        poll = asyncio.ensure_future(
            bob.sync(bob_since, timeout_ms=LONG_POLL_MS, set_presence="offline")
        )
        await asyncio.sleep(0.2)
        await alice.ok(
            "PUT",
            f"/presence/{alice.user_id}/status",
            {"presence": "unavailable", "status_msg": "lunch"},
        )
        woken = await asyncio.wait_for(poll, PROMPT_SECONDS)
        events = {e["sender"]: e for e in woken["presence"]["events"]}
        assert events[alice.user_id]["type"] == "m.presence"
        assert events[alice.user_id]["content"]["presence"] == "unavailable"
        assert events[alice.user_id]["content"]["status_msg"] == "lunch"

        status = await bob.ok("GET", f"/presence/{alice.user_id}/status")
        assert status["presence"] == "unavailable"
        assert isinstance(status["last_active_ago"], int)
        code, err = await stranger.call("GET", f"/presence/{alice.user_id}/status")
        assert (code, err["errcode"]) == (403, "M_FORBIDDEN")
        code, err = await bob.call(
            "PUT", f"/presence/{alice.user_id}/status", {"presence": "online"}
        )
        assert (code, err["errcode"]) == (403, "M_FORBIDDEN")
        code, err = await alice.call(
            "PUT", f"/presence/{alice.user_id}/status", {"presence": "busy"}
        )
        assert (code, err["errcode"]) == (400, "M_INVALID_PARAM")

        # Syncing marks a user online (unless told otherwise).
        await alice.sync(set_presence="online")
        assert (await bob.ok("GET", f"/presence/{alice.user_id}/status"))[
            "presence"
        ] == "online"


async def test_to_device_once_per_device(tmp_path: Path, db_engine: EngineName) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        phone = await another_device(alice, "PHONE")
        bob = await new_user(api, "bob")
        since_a = (await alice.sync())["next_batch"]
        since_p = (await phone.sync())["next_batch"]

        poll = asyncio.ensure_future(phone.sync(since_p, timeout_ms=LONG_POLL_MS))
        await asyncio.sleep(0.2)
        msg = {"messages": {alice.user_id: {"PHONE": {"secret": 1}}}}
        await bob.ok("PUT", "/sendToDevice/m.test/txn1", msg)
        # A retried request (same txn ID) is not delivered twice.
        await bob.ok("PUT", "/sendToDevice/m.test/txn1", msg)
        woken = await asyncio.wait_for(poll, PROMPT_SECONDS)
        assert woken["to_device"]["events"] == [
            {"type": "m.test", "sender": bob.user_id, "content": {"secret": 1}}
        ]
        # The other device gets nothing.
        assert (await alice.sync(since_a))["to_device"]["events"] == []
        # Not acknowledged yet: the same `since` delivers it again...
        again = await phone.sync(since_p)
        assert len(again["to_device"]["events"]) == 1
        # ...and syncing past it acknowledges (deletes) it.
        after = await phone.sync(woken["next_batch"])
        assert after["to_device"]["events"] == []
        assert (await phone.sync(since_p))["to_device"]["events"] == []

        await bob.ok(
            "PUT",
            "/sendToDevice/m.test/txn2",
            {
                "messages": {
                    alice.user_id: {"*": {"all": True}},
                    "@x:elsewhere": {"D": {}},
                }
            },
        )
        got_a = await alice.sync(since_a)
        got_p = await phone.sync(after["next_batch"])
        for got in (got_a, got_p):
            assert [e["content"] for e in got["to_device"]["events"]] == [{"all": True}]

        code, err = await bob.call("PUT", "/sendToDevice/m.test/txn3", {})
        assert (code, err["errcode"]) == (400, "M_MISSING_PARAM")
        code, err = await bob.call(
            "PUT", "/sendToDevice/m.test/txn4", {"messages": {alice.user_id: {"X": 1}}}
        )
        assert (code, err["errcode"]) == (400, "M_BAD_JSON")


async def test_device_lists_on_device_deletion(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        room = await alice.create_room(preset="public_chat")
        since = (await alice.sync())["next_batch"]
        await bob.join(room)
        joined = await alice.sync(since)
        assert bob.user_id in joined["device_lists"]["changed"]

        phone = await another_device(bob, "PHONE")
        await phone.ok("POST", "/logout", {})
        changed = await alice.sync(joined["next_batch"])
        assert bob.user_id in changed["device_lists"]["changed"]

        await bob.leave(room)
        left = await alice.sync(changed["next_batch"])
        assert bob.user_id in left["device_lists"]["left"]
        assert bob.user_id not in left["device_lists"]["changed"]
