"""Push rules over the client API, `m.push_rules` in sync, notification counts from
push rules (mentions, threads, read receipts) and `GET /notifications`."""

from __future__ import annotations

import asyncio
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from ranvier.storage.txn import EngineName
from tests.helpers.accounts import accounts_server
from tests.helpers.sync import User, new_user

JsonDict = dict[str, Any]
RULES = "/pushrules/global"


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def counts(sync: JsonDict, room: str) -> JsonDict:
    unread: JsonDict = sync["rooms"]["join"][room]["unread_notifications"]
    return unread


def push_rules_data(sync: JsonDict) -> JsonDict | None:
    for event in sync["account_data"]["events"]:
        if event["type"] == "m.push_rules":
            content: JsonDict = event["content"]
            return content
    return None


async def poll_for_room(user: User, since: str, room: str) -> JsonDict:
    """Long-poll until a sync carries `room` (presence may wake it before)."""
    while True:
        synced = await user.sync(since, timeout_ms=30_000)
        if room in synced["rooms"]["join"]:
            return synced
        since = synced["next_batch"]


async def send(user: User, room: str, content: JsonDict, txn: str) -> str:
    out = await user.ok(
        "PUT",
        f"/rooms/{q(room)}/send/m.room.message/{txn}",
        {"msgtype": "m.text", **content},
    )
    event_id: str = out["event_id"]
    return event_id


async def test_push_rules_api_and_account_data(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        bob = await new_user(api, "bob")
        everything = await bob.ok("GET", "/pushrules/")
        ruleset = everything["global"]
        assert await bob.ok("GET", "/pushrules/global/") == ruleset
        assert [r["rule_id"] for r in ruleset["override"]][:2] == [
            ".m.rule.master",
            ".m.rule.suppress_notices",
        ]
        # The legacy localpart rule Synapse still ships (core/push/defaults.py).
        assert ruleset["content"] == [
            {
                "rule_id": ".m.rule.contains_user_name",
                "default": True,
                "enabled": True,
                "pattern": "bob",
                "actions": [
                    "notify",
                    {"set_tweak": "sound", "value": "default"},
                    {"set_tweak": "highlight"},
                ],
            }
        ]
        assert ruleset["underride"][-1]["rule_id"] == ".m.rule.encrypted"
        master = await bob.ok("GET", f"{RULES}/override/.m.rule.master")
        assert master == {
            "rule_id": ".m.rule.master",
            "default": True,
            "enabled": False,
            "actions": [],
            "conditions": [],
        }

        # The ruleset is account data, on initial sync and via the API.
        initial = await bob.sync()
        assert push_rules_data(initial) == everything
        me = q(bob.user_id)
        assert (
            await bob.ok("GET", f"/user/{me}/account_data/m.push_rules") == everything
        )
        status, err = await bob.call("PUT", f"/user/{me}/account_data/m.push_rules", {})
        assert (status, err["errcode"]) == (405, "M_BAD_JSON")

        # Create, place, read, change and delete rules.
        cake = {
            "actions": ["notify"],
            "conditions": [
                {"kind": "event_match", "key": "content.body", "pattern": "cake"}
            ],
        }
        await bob.ok("PUT", f"{RULES}/override/cake", cake)
        await bob.ok("PUT", f"{RULES}/override/pie", cake)
        await bob.ok("PUT", f"{RULES}/override/tart?after=cake", cake)
        await bob.ok("PUT", f"{RULES}/override/scone?before=pie", cake)
        ids = [
            r["rule_id"]
            for r in (await bob.ok("GET", "/pushrules/"))["global"]["override"]
        ]
        assert ids[:6] == [
            ".m.rule.master",
            "scone",
            "pie",
            "cake",
            "tart",
            ".m.rule.suppress_notices",
        ]
        rule = await bob.ok("GET", f"{RULES}/override/cake")
        assert rule == {"rule_id": "cake", "default": False, "enabled": True, **cake}
        await bob.ok("PUT", f"{RULES}/content/lie", {"pattern": "lie", "actions": []})
        assert (await bob.ok("GET", f"{RULES}/content/lie"))["pattern"] == "lie"

        await bob.ok(
            "PUT", f"{RULES}/underride/.m.rule.message/enabled", {"enabled": False}
        )
        assert await bob.ok("GET", f"{RULES}/underride/.m.rule.message/enabled") == {
            "enabled": False
        }
        await bob.ok("PUT", f"{RULES}/override/cake/enabled", {"enabled": False})
        assert (await bob.ok("GET", f"{RULES}/override/cake"))["enabled"] is False
        await bob.ok(
            "PUT", f"{RULES}/override/.m.rule.reaction/actions", {"actions": ["notify"]}
        )
        assert await bob.ok("GET", f"{RULES}/override/.m.rule.reaction/actions") == {
            "actions": ["notify"]
        }
        await bob.ok("DELETE", f"{RULES}/override/pie")
        status, err = await bob.call("GET", f"{RULES}/override/pie")
        assert (status, err["errcode"]) == (404, "M_NOT_FOUND")

        # Changes reach incremental syncs as account data.
        later = await bob.sync(initial["next_batch"])
        content = push_rules_data(later)
        assert content is not None
        ids = [r["rule_id"] for r in content["global"]["override"]]
        assert "pie" not in ids
        assert "tart" in ids


async def test_push_rules_kind_listing_and_path_shapes(tmp_path: Path) -> None:
    """Synapse's (and SyTest's) shapes: `.../{kind}/` lists one kind; room rules may
    be named by alias; malformed paths under /pushrules/ are 400 M_UNRECOGNIZED."""
    async with accounts_server(tmp_path) as (_hs, api):
        bob = await new_user(api, "bob")
        await bob.ok(
            "PUT", f"{RULES}/room/{q('#a:example.com')}", {"actions": ["notify"]}
        )
        await bob.ok(
            "PUT",
            f"{RULES}/room/{q('#b:example.com')}?before={q('#a:example.com')}",
            {"actions": ["notify"]},
        )
        rooms = await bob.call("GET", f"{RULES}/room/")
        assert rooms[0] == 200
        listed: Any = rooms[1]
        assert [r["rule_id"] for r in listed] == ["#b:example.com", "#a:example.com"]
        assert listed[0]["default"] is False
        assert listed[0]["enabled"] is True
        await bob.ok("PUT", f"{RULES}/sender/{q('@x:example.com')}", {"actions": []})
        status, underride_body = await bob.call("GET", f"{RULES}/underride/")
        assert status == 200
        underride: Any = underride_body
        assert any(r["rule_id"] == ".m.rule.message" for r in underride)
        status, err = await bob.call("GET", f"{RULES}/sideways/")
        assert (status, err["errcode"]) == (400, "M_INVALID_PARAM")
        for method, path in [
            ("PUT", "/pushrules/"),
            ("PUT", f"/pushrules/not_a_scope/room/{q('#a:x')}"),
            ("PUT", "/pushrules/global"),
            ("PUT", f"{RULES}/room"),
            ("PUT", f"{RULES}/room/"),
            ("PUT", f"{RULES}/override/.m.rule.master/not_an_attr"),
            ("GET", "/pushrules/global"),
            ("GET", f"{RULES}/room"),
            ("GET", "/pushrules/not_a_scope/"),
            ("GET", f"{RULES}/override/.m.rule.master/not_an_attr"),
            ("DELETE", "/pushrules/global/room/"),
        ]:
            status, err = await bob.call(method, path, {} if method == "PUT" else None)
            assert (status, err.get("errcode")) == (400, "M_UNRECOGNIZED"), (
                method,
                path,
            )
        status, err = await bob.call("GET", "/pushrules")
        assert status == 404
        status, err = await bob.call("GET", f"{RULES}/override/not_a_rule")
        assert (status, err["errcode"]) == (404, "M_NOT_FOUND")


async def test_push_rules_errors(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        bob = await new_user(api, "bob")
        await bob.ok("PUT", f"{RULES}/override/mine", {"actions": []})
        cases: list[tuple[str, str, Any, int, str]] = [
            ("GET", f"{RULES}/override/nope", None, 404, "M_NOT_FOUND"),
            ("GET", f"{RULES}/override/.m.rule.call", None, 404, "M_NOT_FOUND"),
            ("GET", f"{RULES}/sideways/x", None, 400, "M_INVALID_PARAM"),
            ("PUT", f"{RULES}/sideways/x", {"actions": []}, 400, "M_INVALID_PARAM"),
            (
                "PUT",
                f"{RULES}/override/.m.rule.mine",
                {"actions": []},
                400,
                "M_UNKNOWN",
            ),
            (
                "PUT",
                f"{RULES}/override/.m.rule.master",
                {"actions": []},
                400,
                "M_UNKNOWN",
            ),
            (
                "PUT",
                f"{RULES}/override/x?before=nope",
                {"actions": []},
                400,
                "M_UNKNOWN",
            ),
            (
                "PUT",
                f"{RULES}/override/x?after=.m.rule.master",
                {"actions": []},
                400,
                "M_UNKNOWN",
            ),
            ("PUT", f"{RULES}/override/x", {}, 400, "M_MISSING_PARAM"),
            (
                "PUT",
                f"{RULES}/override/x",
                {"actions": ["boom"]},
                400,
                "M_INVALID_PARAM",
            ),
            ("PUT", f"{RULES}/override/x", {"actions": 1}, 400, "M_INVALID_PARAM"),
            (
                "PUT",
                f"{RULES}/override/x",
                {"actions": [], "conditions": [{"kind": "event_match"}]},
                400,
                "M_INVALID_PARAM",
            ),
            ("PUT", f"{RULES}/content/x", {"actions": []}, 400, "M_MISSING_PARAM"),
            ("PUT", f"{RULES}/override/x", [1], 400, "M_NOT_JSON"),
            ("DELETE", f"{RULES}/override/nope", None, 404, "M_NOT_FOUND"),
            ("DELETE", f"{RULES}/underride/.m.rule.message", None, 400, "M_UNKNOWN"),
            ("GET", f"{RULES}/override/nope/enabled", None, 404, "M_NOT_FOUND"),
            (
                "PUT",
                f"{RULES}/override/nope/enabled",
                {"enabled": True},
                404,
                "M_NOT_FOUND",
            ),
            ("PUT", f"{RULES}/override/mine/enabled", {}, 400, "M_MISSING_PARAM"),
            (
                "PUT",
                f"{RULES}/override/mine/enabled",
                {"enabled": "yes"},
                400,
                "M_BAD_JSON",
            ),
            (
                "PUT",
                f"{RULES}/override/nope/actions",
                {"actions": []},
                404,
                "M_NOT_FOUND",
            ),
            ("PUT", f"{RULES}/override/mine/actions", {}, 400, "M_MISSING_PARAM"),
            (
                "PUT",
                f"{RULES}/override/mine/actions",
                {"actions": [3]},
                400,
                "M_INVALID_PARAM",
            ),
            (
                "GET",
                f"{RULES}/underride/.m.rule.master/actions",
                None,
                404,
                "M_NOT_FOUND",
            ),
        ]
        for method, path, body, status, errcode in cases:
            got_status, err = await bob.call(method, path, body)
            assert (got_status, err.get("errcode")) == (status, errcode), (
                method,
                path,
                err,
            )
        status, err = await api.call("GET", "/pushrules/")
        assert (status, err["errcode"]) == (401, "M_MISSING_TOKEN")
        # Nothing was stored by the failed requests.
        ids = [
            r["rule_id"]
            for r in (await bob.ok("GET", "/pushrules/"))["global"]["override"]
        ]
        assert ids[:3] == [".m.rule.master", "mine", ".m.rule.suppress_notices"]


async def test_mentions_counts_threads_and_receipts(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        carol = await new_user(api, "carol")
        room = await alice.create_room(preset="public_chat")
        await bob.join(room)
        await carol.join(room)
        since = (await bob.sync())["next_batch"]

        # A plain message in a group notifies; an intentional mention highlights.
        plain = await send(alice, room, {"body": "hello all"}, "t1")
        mention = await send(
            alice,
            room,
            {"body": "bob: look", "m.mentions": {"user_ids": [bob.user_id]}},
            "t2",
        )
        await send(alice, room, {"body": "fyi", "msgtype": "m.notice"}, "t3")
        synced = await bob.sync(since)
        assert counts(synced, room) == {"notification_count": 2, "highlight_count": 1}
        # The sender is never notified of their own messages.
        assert counts(await alice.sync(), room) == {
            "notification_count": 0,
            "highlight_count": 0,
        }

        # A long-polling sync sees the count of the event that woke it.
        poll = asyncio.ensure_future(poll_for_room(bob, synced["next_batch"], room))
        await asyncio.sleep(0.1)
        third = await send(
            alice,
            room,
            {"body": "again", "m.mentions": {"user_ids": [bob.user_id]}},
            "t4",
        )
        woken = await asyncio.wait_for(poll, 15)
        assert counts(woken, room) == {"notification_count": 3, "highlight_count": 2}

        # /notifications, newest first, paginated, highlights only.
        listed = await bob.ok("GET", "/notifications")
        ids = [n["event"]["event_id"] for n in listed["notifications"]]
        assert ids == [third, mention, plain]
        first = listed["notifications"][0]
        assert first["room_id"] == room
        assert first["read"] is False
        assert "profile_tag" in first
        assert isinstance(first["ts"], int)
        assert {"set_tweak": "highlight"} in first["actions"]
        page = await bob.ok("GET", "/notifications?limit=2")
        assert [n["event"]["event_id"] for n in page["notifications"]] == [
            third,
            mention,
        ]
        rest = await bob.ok("GET", f"/notifications?from={page['next_token']}&limit=2")
        assert [n["event"]["event_id"] for n in rest["notifications"]] == [plain]
        assert "next_token" not in rest
        only = await bob.ok("GET", "/notifications?only=highlight")
        assert [n["event"]["event_id"] for n in only["notifications"]] == [
            third,
            mention,
        ]
        status, err = await bob.call("GET", "/notifications?from=abc")
        assert (status, err["errcode"]) == (400, "M_INVALID_PARAM")

        # A read receipt clears the counts.
        await bob.ok("POST", f"/rooms/{q(room)}/receipt/m.read/{q(mention)}", {})
        after_read = await bob.sync(woken["next_batch"])
        assert counts(after_read, room) == {
            "notification_count": 1,
            "highlight_count": 1,
        }
        listed = await bob.ok("GET", "/notifications")
        assert [n["read"] for n in listed["notifications"]] == [False, True, True]
        await bob.ok("POST", f"/rooms/{q(room)}/receipt/m.read/{q(third)}", {})
        cleared = await bob.sync(after_read["next_batch"])
        assert counts(cleared, room) == {"notification_count": 0, "highlight_count": 0}

        # Threads: counted apart when the filter asks for it.
        reply = await send(
            alice,
            room,
            {
                "body": "in thread",
                "m.relates_to": {"rel_type": "m.thread", "event_id": plain},
            },
            "t5",
        )
        await send(alice, room, {"body": "main again"}, "t6")
        threaded_filter = {"room": {"timeline": {"unread_thread_notifications": True}}}
        threaded = await bob.sync(filter=threaded_filter)
        joined = threaded["rooms"]["join"][room]
        assert joined["unread_notifications"] == {
            "notification_count": 1,
            "highlight_count": 0,
        }
        assert joined["unread_thread_notifications"] == {
            plain: {"notification_count": 1, "highlight_count": 0}
        }
        assert counts(await bob.sync(), room)["notification_count"] == 2
        # Reading the thread leaves the main timeline unread, and vice versa.
        await bob.ok(
            "POST",
            f"/rooms/{q(room)}/receipt/m.read/{q(reply)}",
            {"thread_id": plain},
        )
        threaded = await bob.sync(filter=threaded_filter)
        joined = threaded["rooms"]["join"][room]
        assert joined["unread_thread_notifications"] == {}
        assert joined["unread_notifications"]["notification_count"] == 1


async def test_direct_chats_and_invites_notify(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        room = await alice.create_room(preset="private_chat")
        await alice.invite(room, bob.user_id)
        invites = await bob.ok("GET", "/notifications")
        assert [n["event"]["type"] for n in invites["notifications"]] == [
            "m.room.member"
        ]
        assert {"set_tweak": "sound", "value": "default"} in invites["notifications"][
            0
        ]["actions"]
        await bob.join(room)
        await send(alice, room, {"body": "just us"}, "d1")
        listed = await bob.ok("GET", "/notifications?limit=1")
        assert listed["notifications"][0]["event"]["content"]["body"] == "just us"
        assert {"set_tweak": "sound", "value": "default"} in listed["notifications"][0][
            "actions"
        ]
        # Muting the room with a room rule stops notifications.
        await bob.ok("PUT", f"{RULES}/room/{q(room)}", {"actions": []})
        await send(alice, room, {"body": "muted"}, "d2")
        sync = await bob.sync()
        assert counts(sync, room)["notification_count"] == 1


async def test_events_persisted_before_a_stop_are_evaluated_after_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with accounts_server(tmp_path) as (hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        room = await alice.create_room(preset="public_chat")
        await bob.join(room)
        push = hs.running.homeserver.push
        assert push is not None
        # Committed, but the server stops (or crashes) before the evaluator gets it.
        monkeypatch.setattr(push.core.evaluator, "on_new_event", _lost)
        await send(alice, room, {"body": "just before the stop"}, "s1")
        assert counts(await bob.sync(), room)["notification_count"] == 0
    async with accounts_server(tmp_path) as (hs, api):
        bob = User(api, bob.user_id, bob.token, bob.device_id)
        assert counts(await bob.sync(), room) == {
            "notification_count": 1,
            "highlight_count": 0,
        }
        # Forget how far evaluation got: the next start evaluates everything again.
        push = hs.running.homeserver.push
        assert push is not None
        await push.core.store.add_push_actions([], 0)
    async with accounts_server(tmp_path) as (hs, api):
        bob = User(api, bob.user_id, bob.token, bob.device_id)
        assert counts(await bob.sync(), room)["notification_count"] == 1
        listed = await bob.ok("GET", "/notifications")
        assert [n["event"]["content"].get("body") for n in listed["notifications"]] == [
            "just before the stop"
        ]


def _lost(*_args: object, **_kwargs: object) -> None:
    return None
