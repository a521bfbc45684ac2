"""Pushers over the client API and their delivery: a local aiohttp server plays the
push gateway, aiosmtpd is a real SMTP server for notification e-mail."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller

from ranvier.storage.txn import EngineName
from tests.helpers.accounts import accounts_server
from tests.helpers.sync import User, new_user

JsonDict = dict[str, Any]
NOTIFY = "/_matrix/push/v1/notify"
LOOPBACK_ALLOWED = {"federation": {"ip_range_allowlist": ["127.0.0.0/8"]}}


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


@dataclass
class Gateway:
    url: str
    received: asyncio.Queue[JsonDict] = field(default_factory=asyncio.Queue)
    # Answers to give, in order; then 200 {"rejected": []}.
    script: list[tuple[int, JsonDict]] = field(default_factory=list)

    async def next(self) -> JsonDict:
        return await asyncio.wait_for(self.received.get(), 10)


@asynccontextmanager
async def push_gateway() -> AsyncIterator[Gateway]:
    gateway = Gateway(url="")

    async def notify(request: web.Request) -> web.Response:
        gateway.received.put_nowait(await request.json())
        status, body = (
            gateway.script.pop(0) if gateway.script else (200, {"rejected": []})
        )
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_post(NOTIFY, notify)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        gateway.url = f"http://127.0.0.1:{runner.addresses[0][1]}{NOTIFY}"
        yield gateway
    finally:
        await runner.cleanup()


def http_pusher(url: str, pushkey: str = "KEY", **data: Any) -> JsonDict:
    return {
        "kind": "http",
        "app_id": "com.example.app",
        "pushkey": pushkey,
        "app_display_name": "Example",
        "device_display_name": "Phone",
        "lang": "en",
        "data": {"url": url, **data},
    }


async def dm(alice: User, bob: User) -> str:
    room = await alice.create_room(preset="private_chat", name="Tea time")
    await alice.invite(room, bob.user_id)
    await bob.join(room)
    return room


async def say(user: User, room: str, body: str, txn: str) -> str:
    out = await user.ok(
        "PUT",
        f"/rooms/{q(room)}/send/m.room.message/{txn}",
        {"msgtype": "m.text", "body": body},
    )
    event_id: str = out["event_id"]
    return event_id


async def test_pusher_api(tmp_path: Path, db_engine: EngineName) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (_hs, api):
        bob = await new_user(api, "bob")
        carol = await new_user(api, "carol")
        url = "https://push.example.org" + NOTIFY
        assert await bob.ok("GET", "/pushers") == {"pushers": []}
        await bob.ok("POST", "/pushers/set", http_pusher(url, format="event_id_only"))
        listed = (await bob.ok("GET", "/pushers"))["pushers"]
        assert listed == [
            {
                "pushkey": "KEY",
                "kind": "http",
                "app_id": "com.example.app",
                "app_display_name": "Example",
                "device_display_name": "Phone",
                "lang": "en",
                "data": {"url": url, "format": "event_id_only"},
            }
        ]
        # Updating keeps one pusher.
        await bob.ok("POST", "/pushers/set", {**http_pusher(url), "profile_tag": "t"})
        listed = (await bob.ok("GET", "/pushers"))["pushers"]
        assert len(listed) == 1
        assert listed[0]["profile_tag"] == "t"

        # The same app and pushkey for another user: appended, or taken over.
        await carol.ok("POST", "/pushers/set", {**http_pusher(url), "append": True})
        assert len((await bob.ok("GET", "/pushers"))["pushers"]) == 1
        await carol.ok("POST", "/pushers/set", http_pusher(url))
        assert (await bob.ok("GET", "/pushers"))["pushers"] == []
        assert len((await carol.ok("GET", "/pushers"))["pushers"]) == 1
        # kind null deletes.
        await carol.ok(
            "POST",
            "/pushers/set",
            {"kind": None, "app_id": "com.example.app", "pushkey": "KEY"},
        )
        assert (await carol.ok("GET", "/pushers"))["pushers"] == []

        # Logging out deletes the device's pushers.
        await bob.ok("POST", "/pushers/set", http_pusher(url))
        await bob.ok("POST", "/logout", {})
        again = await new_user(api, "dave")
        assert (await again.ok("GET", "/pushers"))["pushers"] == []


async def test_pusher_errors(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        bob = await new_user(api, "bob")
        good = http_pusher("https://push.example.org" + NOTIFY)
        cases: list[tuple[Any, int, str]] = [
            ({k: v for k, v in good.items() if k != "kind"}, 400, "M_MISSING_PARAM"),
            ({k: v for k, v in good.items() if k != "pushkey"}, 400, "M_MISSING_PARAM"),
            ({k: v for k, v in good.items() if k != "lang"}, 400, "M_MISSING_PARAM"),
            ({k: v for k, v in good.items() if k != "data"}, 400, "M_MISSING_PARAM"),
            ({**good, "kind": "carrier_pigeon"}, 400, "M_INVALID_PARAM"),
            ({**good, "kind": 5}, 400, "M_BAD_JSON"),
            ({**good, "data": {}}, 400, "M_INVALID_PARAM"),
            (
                {**good, "data": {"url": "https://push.example.org/other"}},
                400,
                "M_INVALID_PARAM",
            ),
            (
                {**good, "data": {"url": "ftp://push.example.org" + NOTIFY}},
                400,
                "M_INVALID_PARAM",
            ),
            ({**good, "data": {"url": 3}}, 400, "M_INVALID_PARAM"),
            ({**good, "app_id": "x" * 65}, 400, "M_INVALID_PARAM"),
            ({**good, "pushkey": "k" * 513}, 400, "M_INVALID_PARAM"),
            ({**good, "append": "yes"}, 400, "M_BAD_JSON"),
            (
                {
                    **good,
                    "kind": "email",
                    "app_id": "m.email",
                    "pushkey": "b@example.org",
                },
                400,
                "M_UNKNOWN",
            ),
            ("not an object", 400, "M_NOT_JSON"),
        ]
        for body, status, errcode in cases:
            got, err = await bob.call("POST", "/pushers/set", body)
            assert (got, err.get("errcode")) == (status, errcode), (body, err)
        assert (await bob.ok("GET", "/pushers"))["pushers"] == []
        for query in ("limit=x", "limit=-1"):
            got, err = await bob.call("GET", f"/notifications?{query}")
            assert (got, err["errcode"]) == (400, "M_INVALID_PARAM")


async def test_http_pusher_delivers_to_the_gateway(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with (
        push_gateway() as gateway,
        accounts_server(tmp_path, engine=db_engine, overrides=LOOPBACK_ALLOWED) as (
            _hs,
            api,
        ),
    ):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        await alice.ok(
            "PUT",
            f"/profile/{q(alice.user_id)}/displayname",
            {"displayname": "Alice A."},
        )
        room = await dm(alice, bob)
        await bob.ok("POST", "/pushers/set", http_pusher(gateway.url, custom=7))
        # Nothing from before the pusher existed (the invite) is sent.
        event_id = await say(alice, room, "hello there", "p1")
        note = (await gateway.next())["notification"]
        assert note["event_id"] == event_id
        assert note["room_id"] == room
        assert note["type"] == "m.room.message"
        assert note["sender"] == alice.user_id
        assert note["sender_display_name"] == "Alice A."
        assert note["room_name"] == "Tea time"
        assert note["content"] == {"msgtype": "m.text", "body": "hello there"}
        assert note["counts"] == {"unread": 1}
        assert note["prio"] == "high"
        [device] = note["devices"]
        assert device["app_id"] == "com.example.app"
        assert device["pushkey"] == "KEY"
        assert isinstance(device["pushkey_ts"], int)
        assert device["data"] == {"custom": 7}
        assert device["tweaks"] == {"sound": "default"}

        # A read receipt updates the badge.
        await bob.ok("POST", f"/rooms/{q(room)}/receipt/m.read/{q(event_id)}", {})
        badge = (await gateway.next())["notification"]
        assert badge["counts"] == {"unread": 0}
        assert "event_id" not in badge

        # Failures are retried (the pusher holds its position).
        gateway.script = [(502, {}), (200, {"rejected": []})]
        second = await say(alice, room, "are you there?", "p2")
        assert (await gateway.next())["notification"]["event_id"] == second
        retried = (await gateway.next())["notification"]
        assert retried["event_id"] == second
        assert retried["counts"] == {"unread": 1}

        # event_id_only: just the IDs, counts, priority and devices.
        await bob.ok(
            "POST",
            "/pushers/set",
            http_pusher(gateway.url, format="event_id_only"),
        )
        await bob.ok("POST", f"/rooms/{q(room)}/receipt/m.read/{q(second)}", {})
        assert (await gateway.next())["notification"]["counts"] == {"unread": 0}
        third = await say(alice, room, "secret", "p3")
        short = (await gateway.next())["notification"]
        assert short["event_id"] == third
        assert set(short) == {"event_id", "room_id", "counts", "prio", "devices"}
        assert short["devices"][0]["data"] == {"format": "event_id_only"}

        # A rejected pushkey removes the pusher.
        gateway.script = [(200, {"rejected": ["KEY"]})]
        await say(alice, room, "gone?", "p4")
        await gateway.next()
        for _ in range(50):
            if not (await bob.ok("GET", "/pushers"))["pushers"]:
                break
            await asyncio.sleep(0.1)
        assert (await bob.ok("GET", "/pushers"))["pushers"] == []


async def test_invites_are_pushed_with_synapse_fields(
    tmp_path: Path, db_engine: EngineName
) -> None:
    """The invite's push carries Synapse's legacy `id` and `membership`; a room named
    only by its canonical alias is pushed with the alias as `room_name`."""
    async with (
        push_gateway() as gateway,
        accounts_server(tmp_path, engine=db_engine, overrides=LOOPBACK_ALLOWED) as (
            _hs,
            api,
        ),
    ):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        await bob.ok("POST", "/pushers/set", http_pusher(gateway.url))
        room = await alice.create_room(preset="private_chat", room_alias_name="tea")
        alias = "#tea:" + alice.user_id.split(":", 1)[1]
        await alice.invite(room, bob.user_id)
        note = (await gateway.next())["notification"]
        assert note["type"] == "m.room.member"
        assert note["id"] == note["event_id"]
        assert note["membership"] == "invite"
        assert note["user_is_target"] is True
        assert note["sender"] == alice.user_id
        assert note["room_name"] == alias
        assert note["room_alias"] == alias
        await bob.join(room)
        event_id = await say(alice, room, "hello", "i1")
        while (note := (await gateway.next())["notification"]).get("type") is None:
            pass  # a badge update
        assert note["id"] == note["event_id"] == event_id
        assert note["room_name"] == alias


async def test_gateways_on_blocked_addresses_are_not_contacted(tmp_path: Path) -> None:
    async with push_gateway() as gateway, accounts_server(tmp_path) as (_hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        room = await dm(alice, bob)
        await bob.ok("POST", "/pushers/set", http_pusher(gateway.url))
        await say(alice, room, "hello", "b1")
        await asyncio.sleep(1.5)
        assert gateway.received.empty()


# -- e-mail ---------------------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def test_email_notifications_for_unread_messages(tmp_path: Path) -> None:
    with smtp_server() as (inbox, port):
        overrides = {
            "email": {
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "tls": "none",
                "notif_from": "Ranvier <noreply@localhost>",
                "notif_delay": 1,
            }
        }
        async with accounts_server(tmp_path, overrides=overrides) as (_hs, api):
            alice = await new_user(api, "alice")
            bob = await new_user(api, "bob")
            room = await dm(alice, bob)
            pusher = {
                "kind": "email",
                "app_id": "m.email",
                "pushkey": "bob@example.org",
                "app_display_name": "E-mail",
                "device_display_name": "bob@example.org",
                "lang": "en",
                "data": {},
            }
            status, err = await bob.call(
                "POST", "/pushers/set", {**pusher, "app_id": "com.example"}
            )
            assert (status, err["errcode"]) == (400, "M_INVALID_PARAM")
            status, err = await bob.call(
                "POST", "/pushers/set", {**pusher, "pushkey": "not-an-address"}
            )
            assert (status, err["errcode"]) == (400, "M_INVALID_PARAM")
            await bob.ok("POST", "/pushers/set", pusher)

            # Read before the delay is over: no mail.
            first = await say(alice, room, "read in time", "e1")
            await bob.ok("POST", f"/rooms/{q(room)}/receipt/m.read/{q(first)}", {})
            await asyncio.sleep(2.5)
            assert inbox.messages == []

            # Left unread: one mail with both messages, after the delay.
            await say(alice, room, "are you <there>?", "e2")
            await say(alice, room, "hello??", "e3")
            for _ in range(100):
                if inbox.messages:
                    break
                await asyncio.sleep(0.1)
            [(rcpt, message)] = inbox.messages
            assert rcpt == ["bob@example.org"]
            assert message["To"] == "bob@example.org"
            assert message["From"] == "Ranvier <noreply@localhost>"
            assert message["Subject"] == "[Ranvier] 2 new messages in Tea time"
            plain = message.get_body(preferencelist=("plain",))
            html = message.get_body(preferencelist=("html",))
            assert plain is not None
            assert html is not None
            text = plain.get_content()
            assert "are you <there>?" in text
            assert "hello??" in text
            assert "read in time" not in text
            assert "are you &lt;there&gt;?" in html.get_content()
            assert "alice: hello??" in text  # the display name in the room

            # Nothing is mailed twice.
            await asyncio.sleep(1.5)
            assert len(inbox.messages) == 1
