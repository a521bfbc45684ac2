"""Redactions sent by another server (spec: room versions > Redactions; C-S API >
Redactions). Since v3 a redaction passes the auth rules whoever sends it, and the
receiving server applies it only if the two events' senders share a server or the
redaction's sender holds the `redact` level in the state before the redaction. In v1-v2
the auth rules themselves decide: an accepted redaction applies."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest

from ranvier.core.events.event import Event
from tests.federation.hostile.forge import forge
from tests.federation.hostile.scenario import (
    EVIL,
    MALLORY,
    PL_KEY,
    Attack,
    JsonDict,
    attacked_room,
)


def _pl_with(a: Attack, **users: int) -> JsonDict:
    base: JsonDict = dict(a.room.events[a.room.state[PL_KEY]].content)
    merged = dict(base.get("users", {}))
    merged.update(users)
    base["users"] = merged
    return base


def _redaction(a: Attack, target: str) -> Event:
    """Mallory's redaction of `target`, on the peer's tip, recorded as its new tip."""
    content: JsonDict = {"reason": "moderation"}
    if a.rv.redacts_in_content:
        content["redacts"] = target
    honest = a.room.build(a.peer, MALLORY, "m.room.redaction", content, record=False)
    event = forge(
        a.rv,
        server=EVIL,
        key=a.peer.key,
        room_id=a.room_id,
        sender=MALLORY,
        etype="m.room.redaction",
        content=content,
        prev=list(honest.prev_event_ids),
        auth=list(honest.auth_event_ids),
        depth=honest.depth,
        ts=honest.origin_server_ts,
        events=a.room.events,
        redacts=None if a.rv.redacts_in_content else target,
    )
    return a.room.add(event)


@pytest.mark.parametrize("room_version", ["1", "3", "10", "11", "12"])
async def test_remote_moderator_redaction_is_applied(
    tmp_path: Path, room_version: str, engine: str
) -> None:
    async with attacked_room(tmp_path, room_version=room_version, engine=engine) as a:
        await a.send_state("m.room.power_levels", _pl_with(a, **{MALLORY: 50}))
        target = await a.alice.send(a.room_id, "spam")
        await a.learn(target)
        redaction = _redaction(a, target)
        results = await a.send([redaction.data])
        assert "error" not in results.get(redaction.event_id, {}), results
        shown = await a.alice.ok(
            "GET", f"/rooms/{a.q()}/event/{urllib.parse.quote(target, safe='')}"
        )
        assert "body" not in shown["content"]
        assert shown["unsigned"]["redacted_by"] == redaction.event_id
        assert shown["unsigned"]["redacted_because"]["event_id"] == redaction.event_id


@pytest.mark.parametrize("room_version", ["3", "10", "12"])
async def test_power_is_judged_at_the_redaction(
    tmp_path: Path, room_version: str, engine: str
) -> None:
    """Mallory is demoted before her redaction: her old power does not count."""
    async with attacked_room(tmp_path, room_version=room_version, engine=engine) as a:
        await a.send_state("m.room.power_levels", _pl_with(a, **{MALLORY: 50}))
        target = await a.alice.send(a.room_id, "keep me")
        await a.learn(target)
        await a.send_state("m.room.power_levels", _pl_with(a, **{MALLORY: 0}))
        redaction = _redaction(a, target)
        await a.send([redaction.data])
        shown = await a.alice.ok(
            "GET", f"/rooms/{a.q()}/event/{urllib.parse.quote(target, safe='')}"
        )
        assert shown["content"].get("body") == "keep me"
        assert "redacted_by" not in shown["unsigned"]


async def test_local_redaction_serves_redacted_by(tmp_path: Path, engine: str) -> None:
    async with attacked_room(tmp_path, room_version="5", engine=engine) as a:
        target = await a.alice.send(a.room_id, "oops")
        out = await a.alice.ok(
            "PUT",
            f"/rooms/{a.q()}/redact/{urllib.parse.quote(target, safe='')}/t1",
            {"reason": "typo"},
        )
        shown = await a.alice.ok(
            "GET", f"/rooms/{a.q()}/event/{urllib.parse.quote(target, safe='')}"
        )
        assert shown["unsigned"]["redacted_by"] == out["event_id"]


@pytest.mark.parametrize("room_version", ["3", "10", "11"])
async def test_redaction_of_another_rooms_event_is_hidden(
    tmp_path: Path, room_version: str, engine: str
) -> None:
    """Mallory, a moderator here, redacts alice's event of another room: the redaction
    is neither applied nor shown to clients (SyTest 39redactions)."""
    async with attacked_room(tmp_path, room_version=room_version, engine=engine) as a:
        await a.send_state("m.room.power_levels", _pl_with(a, **{MALLORY: 100}))
        other = await a.alice.create_room(preset="private_chat")
        target = await a.alice.send(other, "elsewhere")
        redaction = _redaction(a, target)
        await a.send([redaction.data])
        q_other = urllib.parse.quote(other)
        shown = await a.alice.ok(
            "GET", f"/rooms/{q_other}/event/{urllib.parse.quote(target, safe='')}"
        )
        assert shown["content"].get("body") == "elsewhere"
        page = await a.alice.ok("GET", f"/rooms/{a.q()}/messages?dir=b&limit=50")
        assert redaction.event_id not in {e["event_id"] for e in page["chunk"]}
        synced = await a.alice.ok("GET", "/sync")
        timeline = synced["rooms"]["join"][a.room_id]["timeline"]["events"]
        assert redaction.event_id not in {e["event_id"] for e in timeline}
