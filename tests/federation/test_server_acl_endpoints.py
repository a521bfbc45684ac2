"""Server ACLs on every room-scoped federation endpoint (spec: S-S API > Server Access
Control Lists): a denied origin gets 403 `M_FORBIDDEN` from the membership handshakes,
invites, history, state and auth endpoints, its PDUs in `/send` fail, and the ACL is
checked before anything else about the request (a malformed or otherwise wrong request
from a denied server still answers the ACL's 403, not another error)."""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.federation.client import federation_path
from tests.helpers.federation import (
    FakeRemote,
    FedServer,
    RemoteRoom,
    acting_as,
    running_federation,
)
from tests.helpers.sync import User

JsonDict = dict[str, Any]
BOB = "@bob:hs2.test"
V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"
VERSIONS = "&".join(f"ver={v}" for v in KNOWN_ROOM_VERSIONS)


@dataclass
class Denied:
    hs1: FedServer
    alice: User
    hs2: FakeRemote
    room: RemoteRoom
    last: str


@pytest.fixture
async def denied(tmp_path: Path) -> AsyncIterator[Denied]:
    """hs2 joined alice's room on hs1, then the room's ACL denied hs2."""
    async with running_federation(tmp_path, ["hs1.test", "hs2.test"]) as f:
        hs1 = f["hs1.test"]
        alice = await hs1.user("alice")
        room_id = await alice.create_room(preset="public_chat")
        async with acting_as(f["hs2.test"]) as hs2:
            room, _ = await hs2.join(hs1, room_id, BOB)
            last = await alice.send(room_id, "before the ban")
            await alice.ok(
                "PUT",
                f"/rooms/{urllib.parse.quote(room_id)}/state/m.room.server_acl",
                {"allow": ["*"], "deny": ["hs2.test"]},
            )
            yield Denied(hs1, alice, hs2, room, last)


def p(template: str, *params: str) -> str:
    return federation_path(template, *params)


def requests(d: Denied) -> list[tuple[str, str, Any]]:
    """(method, path, body) of each ACL-checked endpoint; bodies are deliberately
    wrong (bad events, wrong IDs): the ACL must answer before they are looked at."""
    r = d.room.room_id
    e = d.last
    bad_event = {"type": "m.room.member", "content": {"membership": 15}}
    return [
        ("GET", p(f"{V1}/make_join/{{}}/{{}}", r, BOB) + f"?{VERSIONS}", None),
        ("GET", p(f"{V1}/make_join/{{}}/{{}}", r, "@x:elsewhere.test"), None),
        ("GET", p(f"{V1}/make_leave/{{}}/{{}}", r, BOB), None),
        ("GET", p(f"{V1}/make_knock/{{}}/{{}}", r, BOB) + f"?{VERSIONS}", None),
        ("PUT", p(f"{V1}/send_join/{{}}/{{}}", r, "$x"), bad_event),
        ("PUT", p(f"{V2}/send_join/{{}}/{{}}", r, "$x"), bad_event),
        ("PUT", p(f"{V1}/send_leave/{{}}/{{}}", r, "$x"), bad_event),
        ("PUT", p(f"{V2}/send_leave/{{}}/{{}}", r, "$x"), bad_event),
        ("PUT", p(f"{V1}/send_knock/{{}}/{{}}", r, "$x"), bad_event),
        ("PUT", p(f"{V1}/invite/{{}}/{{}}", r, "$x"), bad_event),
        ("PUT", p(f"{V2}/invite/{{}}/{{}}", r, "$x"), {"room_version": "nope"}),
        ("GET", p(f"{V1}/state/{{}}", r) + f"?event_id={urllib.parse.quote(e)}", None),
        ("GET", p(f"{V1}/state_ids/{{}}", r) + "?event_id=%24unknown", None),
        ("GET", p(f"{V1}/backfill/{{}}", r) + "?v=%24unknown&limit=5", None),
        ("GET", p(f"{V1}/event_auth/{{}}/{{}}", r, "$unknown"), None),
        (
            "POST",
            p(f"{V1}/get_missing_events/{{}}", r),
            {"earliest_events": [], "latest_events": [e]},
        ),
        ("GET", p(f"{V1}/event/{{}}", e), None),
        ("GET", p(f"{V1}/timestamp_to_event/{{}}", r) + "?ts=0&dir=f", None),
    ]


async def test_denied_server_gets_403_everywhere(denied: Denied) -> None:
    d = denied
    for method, path, body in requests(d):
        status, out = await d.hs2.request(d.hs1, method, path, body)
        assert (status, out.get("errcode")) == (403, "M_FORBIDDEN"), (path, out)
        assert "ACL" in out["error"], (path, out)


async def test_denied_server_pdus_fail_in_send(denied: Denied) -> None:
    d = denied
    ev = d.room.build(d.hs2, BOB, "m.room.message", {"body": "banned"})
    status, out = await d.hs2.send_transaction(d.hs1, [ev])
    assert status == 200
    assert "ACL" in out["pdus"][ev.event_id]["error"]


async def test_allowed_server_passes_the_acl(denied: Denied) -> None:
    """Control: the same requests from a server the ACL allows are not refused by it
    (they fail or succeed on their own merits)."""
    d = denied
    await d.alice.ok(
        "PUT",
        f"/rooms/{urllib.parse.quote(d.room.room_id)}/state/m.room.server_acl",
        {"allow": ["*"], "deny": []},
    )
    for method, path, body in requests(d):
        status, out = await d.hs2.request(d.hs1, method, path, body)
        assert "ACL" not in (out or {}).get("error", ""), (path, status, out)
