"""Lies a hostile federation peer can tell, and that the room survives each of them:
current state, the state served to other servers and every client view stay correct,
and the room keeps taking writes (`assert_room_intact`)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from aiohttp import web

from ranvier.core.events.event import StateKey
from ranvier.core.room_versions import StateResolution
from ranvier.storage.txn import Txn
from tests.federation.hostile.forge import break_signature, forge, strip_signature
from tests.federation.hostile.peer import HostilePeer
from tests.federation.hostile.scenario import (
    EVIL,
    HS,
    MALLORY,
    PL_KEY,
    Attack,
    JsonDict,
    assert_room_intact,
    attacked_room,
    current_state,
    rejected_ids,
    serve_peer,
    stored_status,
)

FAMILIES = ["1", "3", "10", "11", "12"]
EVE = "@eve:evil.test"


def key(a: Attack, k: StateKey) -> str:
    return a.room.state[k]


def member(user: str) -> StateKey:
    return ("m.room.member", user)


def honest_state(a: Attack, *, without: StateKey | None = None) -> list[str]:
    return sorted(eid for k, eid in a.room.state.items() if k != without)


def pl_content(a: Attack, **users: int) -> JsonDict:
    base: JsonDict = dict(a.room.events[key(a, PL_KEY)].content)
    merged = dict(base.get("users", {}))
    merged.update(users)
    base["users"] = merged
    return base


# -- forged signatures ----------------------------------------------------------------------
@pytest.mark.parametrize("room_version", FAMILIES)
@pytest.mark.parametrize("how", ["unknown_key", "garbage", "missing"])
async def test_forged_power_levels_from_the_creator_are_dropped(
    tmp_path: Path, room_version: str, how: str
) -> None:
    """A power-levels event claiming to come from alice (so it would pass auth), with a
    signature that is not her server's: pushed directly and hidden in gap state."""
    async with attacked_room(tmp_path, room_version=room_version) as a:
        real_pl = key(a, PL_KEY)
        hs_key = a.hs.peer.homeserver.server_keys.signing_key
        honest = a.room.build(
            a.peer,
            a.alice.user_id,
            "m.room.power_levels",
            pl_content(a, **{MALLORY: 100}),
            state_key="",
            record=False,
        )
        # Signed as hs1.test with the peer's key (its key ID is unknown to hs1.test).
        fake = forge(
            a.rv,
            server=HS,
            key=a.peer.key,
            room_id=a.room_id,
            sender=a.alice.user_id,
            etype="m.room.power_levels",
            content=pl_content(a, **{MALLORY: 100}),
            state_key="",
            prev=list(honest.prev_event_ids),
            auth=list(honest.auth_event_ids),
            depth=honest.depth,
            ts=honest.origin_server_ts,
            events=a.room.events,
        )
        if how == "garbage":
            pdu = break_signature(fake, HS)
            sigs = pdu["signatures"][HS]
            pdu["signatures"][HS] = {
                f"ed25519:{hs_key.key_id.split(':')[-1]}": next(iter(sigs.values()))
            }
        elif how == "missing":
            pdu = strip_signature(fake, HS)
        else:
            pdu = dict(fake.data)
        a.room.events[fake.event_id] = fake

        async def serve_forgery(request: web.Request) -> JsonDict:
            return {"origin": EVIL, "origin_server_ts": 0, "pdus": [pdu]}

        a.peer.script("event", serve_forgery)
        results = await a.send([pdu])
        assert "error" in results[fake.event_id]
        e = a.gap(MALLORY, [*honest_state(a, without=PL_KEY), fake.event_id], [])
        a.peer.unscript("event")
        a.room.events[e.event_id] = e
        await a.send([e])
        await assert_room_intact(
            a,
            expected={PL_KEY: real_pl},
            forbidden={fake.event_id},
            powers={a.alice.user_id: 100, MALLORY: 0},
        )


async def test_tampered_content_same_id_is_redacted_not_trusted(
    tmp_path: Path, engine: str
) -> None:
    """v3+: the same event ID with other content fails its content hash and is kept
    redacted; v1 IDs are not hashes, so the first copy is the one kept."""
    async with attacked_room(tmp_path, room_version="10", engine=engine) as a:
        msg = a.room.build(
            a.peer, MALLORY, "m.room.message", {"body": "original", "msgtype": "m.text"}
        )
        tampered = dict(msg.data)
        tampered["content"] = {"body": "tampered", "msgtype": "m.text"}
        results = await a.send([tampered])
        assert results[msg.event_id] == {}
        # Now the honest copy: already known (redacted), not replaced.
        await a.send([msg])
        chunk = await a.alice.ok("GET", f"/rooms/{a.q()}/messages?dir=b&limit=50")
        shown = [e for e in chunk["chunk"] if e["event_id"] == msg.event_id]
        assert len(shown) == 1
        assert "body" not in shown[0]["content"]
        await assert_room_intact(a, expected={PL_KEY: key(a, PL_KEY)})


async def test_v1_same_event_id_with_other_content_keeps_the_first(
    tmp_path: Path, engine: str
) -> None:
    async with attacked_room(tmp_path, room_version="1", engine=engine) as a:
        first = a.room.build(
            a.peer, MALLORY, "m.room.message", {"body": "first", "msgtype": "m.text"}
        )
        second = forge(
            a.rv,
            server=EVIL,
            key=a.peer.key,
            room_id=a.room_id,
            sender=MALLORY,
            etype="m.room.message",
            content={"body": "second", "msgtype": "m.text"},
            prev=list(first.prev_event_ids),
            auth=list(first.auth_event_ids),
            depth=first.depth,
            ts=first.origin_server_ts,
            events=a.room.events,
        )
        pdu = dict(second.data)
        pdu["event_id"] = first.event_id
        pdu = dict(
            forge(  # re-sign with the reused ID
                a.rv,
                server=EVIL,
                key=a.peer.key,
                room_id=a.room_id,
                sender=MALLORY,
                etype="m.room.message",
                content={"body": "second", "msgtype": "m.text"},
                prev=list(first.prev_event_ids),
                auth=list(first.auth_event_ids),
                depth=first.depth,
                ts=first.origin_server_ts,
                events=a.room.events,
            ).data
        )
        pdu["event_id"] = first.event_id
        await a.send([first])
        await a.send([pdu])
        chunk = await a.alice.ok("GET", f"/rooms/{a.q()}/messages?dir=b&limit=50")
        bodies = [
            e["content"].get("body")
            for e in chunk["chunk"]
            if e["event_id"] == first.event_id
        ]
        assert bodies == ["first"]
        await assert_room_intact(a, expected={PL_KEY: key(a, PL_KEY)})


# -- auth events that do not match the state ---------------------------------------------------
@pytest.mark.parametrize("room_version", FAMILIES)
async def test_stale_auth_events_do_not_restore_revoked_power(
    tmp_path: Path, room_version: str
) -> None:
    """Mallory is promoted, then demoted; her name change on the current tip cites the
    promoting power levels as its auth events: rejected against the state before it."""
    async with attacked_room(tmp_path, room_version=room_version) as a:
        promote = await a.send_state(
            "m.room.power_levels", pl_content(a, **{MALLORY: 50})
        )
        demote = await a.send_state(
            "m.room.power_levels", pl_content(a, **{MALLORY: 0})
        )
        auth = [
            key(a, ("m.room.create", "")),
            promote.event_id,
            key(a, member(MALLORY)),
        ]
        if a.rv.room_id_from_create_event:
            auth = auth[1:]
        name = a.peer.forge(
            a.room, MALLORY, "m.room.name", {"name": "mine"}, state_key="", auth=auth
        )
        results = await a.send([name])
        # Processed: `{}` as Synapse answers; the rejection is stored.
        assert results == {name.event_id: {}}, results
        status = await stored_status(a, name.event_id)
        assert status is not None
        assert status.rejected_reason is not None
        await assert_room_intact(
            a,
            expected={PL_KEY: demote.event_id},
            forbidden={name.event_id},
            powers={a.alice.user_id: 100, MALLORY: 0},
        )
        assert ("m.room.name", "") not in await current_state(a)


@pytest.mark.parametrize("room_version", FAMILIES)
async def test_auth_events_citing_a_rejected_event(
    tmp_path: Path, room_version: str
) -> None:
    """Mallory's name change cites her own made-up power levels X (rejected when
    fetched through `/event_auth`): rejected too."""
    async with attacked_room(tmp_path, room_version=room_version) as a:
        real_pl = key(a, PL_KEY)
        x = a.peer.forge(
            a.room,
            MALLORY,
            "m.room.power_levels",
            pl_content(a, **{MALLORY: 100}),
            state_key="",
        )
        auth = [key(a, ("m.room.create", "")), x.event_id, key(a, member(MALLORY))]
        if a.rv.room_id_from_create_event:
            auth = auth[1:]
        name = a.peer.forge(
            a.room, MALLORY, "m.room.name", {"name": "mine"}, state_key="", auth=auth
        )
        results = await a.send([name])
        # Processed: `{}` as Synapse answers; both are stored as rejected.
        assert results == {name.event_id: {}}, results
        for event_id in (x.event_id, name.event_id):
            status = await stored_status(a, event_id)
            assert status is not None
            assert status.rejected_reason is not None
        await assert_room_intact(
            a,
            expected={PL_KEY: real_pl},
            forbidden={x.event_id, name.event_id},
            powers={a.alice.user_id: 100, MALLORY: 0},
        )


# -- state that leaves things out --------------------------------------------------------------
@pytest.mark.parametrize("room_version", FAMILIES)
@pytest.mark.parametrize(
    "dropped",
    [
        PL_KEY,
        ("m.room.create", ""),
        ("m.room.join_rules", ""),
        ("m.room.member", "@alice:hs1.test"),
    ],
    ids=["power_levels", "create", "join_rules", "creator_member"],
)
async def test_gap_state_that_drops_a_key_does_not_remove_it(
    tmp_path: Path, room_version: str, dropped: StateKey
) -> None:
    async with attacked_room(tmp_path, room_version=room_version) as a:
        before = await current_state(a)
        e = a.gap(MALLORY, honest_state(a, without=dropped), [])
        await a.send([e])
        await assert_room_intact(
            a,
            expected={dropped: before[dropped], PL_KEY: before[PL_KEY]},
            powers={a.alice.user_id: 100, MALLORY: 0},
        )


# -- forks through state resolution ------------------------------------------------------------
@pytest.mark.parametrize("room_version", FAMILIES)
async def test_fork_from_before_a_ban_does_not_undo_it(
    tmp_path: Path, room_version: str
) -> None:
    async with attacked_room(tmp_path, room_version=room_version) as a:
        eve_join = a.room.build(
            a.peer, EVE, "m.room.member", {"membership": "join"}, state_key=EVE
        )
        assert (await a.send([eve_join]))[eve_join.event_id] == {}
        fork_point = list(a.room.extremities)
        status, out = await a.alice.call(
            "POST", f"/rooms/{a.q()}/ban", {"user_id": EVE, "reason": "spam"}
        )
        assert status == 200, out
        ban_id = (await current_state(a))[member(EVE)]
        await a.learn(ban_id)
        # Eve, on a fork from before the ban, changes her member event...
        rejoin = a.room.build(
            a.peer,
            EVE,
            "m.room.member",
            {"membership": "join", "displayname": "back"},
            state_key=EVE,
            prev=fork_point,
            record=False,
        )
        a.room.events[rejoin.event_id] = rejoin
        # ...and mallory merges the fork into the room's tip.
        merge = a.room.build(
            a.peer,
            MALLORY,
            "m.room.message",
            {"body": "merge", "msgtype": "m.text"},
            prev=[rejoin.event_id, *a.room.extremities],
        )
        results = await a.send([rejoin, merge])
        assert results[merge.event_id] == {}, results
        spam = a.peer.forge(
            a.room,
            EVE,
            "m.room.message",
            {"body": "I'm back", "msgtype": "m.text"},
            auth=[
                *list(a.room.events[rejoin.event_id].auth_event_ids),
                rejoin.event_id,
            ],
        )
        await a.send([spam])
        await assert_room_intact(
            a, expected={member(EVE): ban_id}, forbidden={spam.event_id}
        )


@pytest.mark.parametrize("room_version", FAMILIES)
async def test_fork_from_before_a_demotion_does_not_raise_power(
    tmp_path: Path, room_version: str
) -> None:
    async with attacked_room(tmp_path, room_version=room_version) as a:
        await a.send_state("m.room.power_levels", pl_content(a, **{MALLORY: 50}))
        fork_point = list(a.room.extremities)
        demote = await a.send_state(
            "m.room.power_levels", pl_content(a, **{MALLORY: 0})
        )
        promote_id = a.room.events[fork_point[0]].event_id
        raised = dict(a.room.events[promote_id].content)
        raised["users"] = {**raised["users"], EVE: 50}
        raised["events"] = {**raised.get("events", {}), "m.room.name": 0}
        fork_pl = a.room.build(
            a.peer,
            MALLORY,
            "m.room.power_levels",
            raised,
            state_key="",
            prev=fork_point,
            record=False,
        )
        a.room.events[fork_pl.event_id] = fork_pl
        merge = a.room.build(
            a.peer,
            MALLORY,
            "m.room.message",
            {"body": "merge", "msgtype": "m.text"},
            prev=[fork_pl.event_id, *a.room.extremities],
        )
        results = await a.send([fork_pl, merge])
        assert results[merge.event_id] == {}, results
        await assert_room_intact(
            a,
            expected={PL_KEY: demote.event_id},
            powers={a.alice.user_id: 100, MALLORY: 0},
        )


# -- ACL-banned servers -------------------------------------------------------------------------
async def test_acl_banned_server_cannot_write_or_read(
    tmp_path: Path, engine: str
) -> None:
    async with attacked_room(tmp_path, room_version="10", engine=engine) as a:
        sent = await a.alice.ok(
            "PUT",
            f"/rooms/{a.q()}/state/m.room.server_acl/",
            {"allow": ["*"], "deny": [EVIL]},
        )
        acl_id = sent["event_id"]
        msg = a.room.build(
            a.peer, MALLORY, "m.room.message", {"body": "denied", "msgtype": "m.text"}
        )
        name = a.room.build(
            a.peer, MALLORY, "m.room.name", {"name": "x"}, state_key="", record=False
        )
        results = await a.send([msg, name])
        assert "ACL" in results[msg.event_id]["error"]
        assert "ACL" in results[name.event_id]["error"]
        q = f"?event_id={a.room.extremities[-1]}"
        status, _ = await a.peer.request(
            a.hs, "GET", f"/_matrix/federation/v1/state_ids/{a.room_id}{q}"
        )
        assert status == 403
        await assert_room_intact(
            a,
            expected={("m.room.server_acl", ""): acl_id},
            forbidden={msg.event_id, name.event_id},
            check_served=False,
        )


# -- too much -----------------------------------------------------------------------------------
async def test_huge_auth_chain_is_bounded(tmp_path: Path, engine: str) -> None:
    """An event citing an unknown auth event whose `/event_auth` answer has 3000
    events: more than one transaction may fetch (1000), so nothing is stored."""
    async with attacked_room(tmp_path, room_version="10", engine=engine) as a:
        base = a.room.build(
            a.peer, MALLORY, "m.room.message", {"body": "x"}, record=False
        )
        chain = [
            a.peer.forge(
                a.room, MALLORY, "m.room.message", {"body": f"c{i}"}, remember=False
            )
            for i in range(3000)
        ]
        bait = a.peer.forge(
            a.room,
            MALLORY,
            "m.room.message",
            {"body": "bait"},
            auth=[*base.auth_event_ids, chain[0].event_id],
        )
        a.peer.answer("event_auth", {"auth_chain": [c.data for c in chain]})
        started = time.monotonic()
        results = await a.send([bait])
        assert time.monotonic() - started < 20
        assert "error" in results[bait.event_id]
        assert a.peer.hits["event_auth"] == 1
        stored = await rejected_ids(a)
        assert chain[0].event_id not in stored
        await assert_room_intact(a, expected={PL_KEY: key(a, PL_KEY)})


async def test_deep_missing_events_and_state_are_bounded(
    tmp_path: Path, engine: str
) -> None:
    """`/get_missing_events` answers 300 events (ignoring the limit of 10) and
    `/state_ids` names 40,000 unknown events: at most 10 are used, the state fetch is
    refused by the budget, the event is not accepted, the room is unharmed."""
    async with attacked_room(tmp_path, room_version="10", engine=engine) as a:
        junk = [
            a.peer.forge(
                a.room,
                MALLORY,
                "m.room.message",
                {"body": f"j{i}"},
                prev=[a.nowhere()],
                depth=5,
                remember=False,
            )
            for i in range(300)
        ]
        e = a.gap(MALLORY, [f"${i:043d}" for i in range(40_000)], [])
        a.peer.answer("get_missing_events", {"events": [j.data for j in junk]})
        started = time.monotonic()
        results = await a.send([e])
        assert time.monotonic() - started < 30
        assert "error" in results[e.event_id]
        await assert_room_intact(a, expected={PL_KEY: key(a, PL_KEY)})


# -- time ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("room_version", ["3", "10"])
async def test_timestamps_far_in_the_future(tmp_path: Path, room_version: str) -> None:
    """An event dated 100 years ahead: since v5 the signing key must be valid at the
    event's timestamp, which it is not, so it is refused; before v5 it is just an
    event (the spec has no bound). Either way it changes no state and breaks no view."""
    async with attacked_room(tmp_path, room_version=room_version) as a:
        future = int(time.time() * 1000) + 100 * 365 * 86_400_000
        msg = a.room.build(
            a.peer,
            MALLORY,
            "m.room.message",
            {"body": "from the future", "msgtype": "m.text"},
            ts=future,
        )
        name = a.room.build(
            a.peer,
            MALLORY,
            "m.room.name",
            {"name": "future"},
            state_key="",
            ts=future,
            record=False,
        )
        results = await a.send([msg, name])
        if a.rv.enforce_key_validity:
            assert "valid key" in results[msg.event_id]["error"]
            assert "error" in results[name.event_id]
        else:
            assert results[msg.event_id] == {}
            # Processed (mallory may not name the room): `{}`, stored as rejected.
            assert results[name.event_id] == {}
            status = await stored_status(a, name.event_id)
            assert status is not None
            assert status.rejected_reason is not None
        await assert_room_intact(
            a, expected={PL_KEY: key(a, PL_KEY)}, forbidden={name.event_id}
        )


# -- events of another room ---------------------------------------------------------------------
@pytest.mark.parametrize("room_version", FAMILIES)
async def test_gap_state_naming_another_rooms_power_levels(
    tmp_path: Path, room_version: str
) -> None:
    """The peer's `/state_ids` names a power-levels event Ranvier has from ANOTHER room
    (one where mallory has power 100 and alice 0): it must not become this room's."""
    async with attacked_room(tmp_path, room_version=room_version) as a:
        real_pl = key(a, PL_KEY)
        other = await a.alice.create_room(
            preset="public_chat", room_version=room_version
        )
        users = {MALLORY: 100}
        if not a.rv.privileged_creators:
            users[a.alice.user_id] = 0
        sent = await a.alice.ok(
            "PUT", f"/rooms/{other}/state/m.room.power_levels/", {"users": users}
        )
        e = a.gap(MALLORY, [*honest_state(a, without=PL_KEY), sent["event_id"]], [])
        await a.send([e])
        await assert_room_intact(
            a,
            expected={PL_KEY: real_pl},
            forbidden={sent["event_id"]},
            powers={a.alice.user_id: 100, MALLORY: 0},
        )


@pytest.mark.parametrize("room_version", FAMILIES)
async def test_prev_events_in_another_room(tmp_path: Path, room_version: str) -> None:
    """Mallory's event cites, as its prev event, the tip of ANOTHER room Ranvier has
    (where she has power 100): the other room's state must not leak into this one."""
    async with attacked_room(tmp_path, room_version=room_version) as a:
        real_pl = key(a, PL_KEY)
        other = await a.alice.create_room(
            preset="public_chat", room_version=room_version
        )
        users = {MALLORY: 100}
        if not a.rv.privileged_creators:
            users[a.alice.user_id] = 0
        sent = await a.alice.ok(
            "PUT", f"/rooms/{other}/state/m.room.power_levels/", {"users": users}
        )
        await a.peer.join(a.hs, other, MALLORY)
        foreign = await a.peer.fetch_event(a.hs, sent["event_id"], a.rv)
        a.room.events[foreign.event_id] = foreign
        msg = a.peer.forge(
            a.room,
            MALLORY,
            "m.room.message",
            {"body": "bridge", "msgtype": "m.text"},
            prev=[foreign.event_id, *a.room.extremities],
        )
        await a.send([msg])
        await assert_room_intact(
            a,
            expected={PL_KEY: real_pl},
            forbidden={foreign.event_id},
            powers={a.alice.user_id: 100, MALLORY: 0},
        )


# -- events out of nowhere ------------------------------------------------------------------
@pytest.mark.parametrize("room_version", FAMILIES)
async def test_state_event_without_prev_events(
    tmp_path: Path, room_version: str
) -> None:
    """A power-levels event with no prev events (a second DAG root) must not be
    authorised by the empty state it claims to start from."""
    async with attacked_room(tmp_path, room_version=room_version) as a:
        real_pl = key(a, PL_KEY)
        x = a.peer.forge(
            a.room,
            MALLORY,
            "m.room.power_levels",
            pl_content(a, **{MALLORY: 100}),
            state_key="",
            prev=[],
        )
        await a.send([x.data])
        await assert_room_intact(
            a,
            expected={PL_KEY: real_pl},
            forbidden={x.event_id},
            powers={a.alice.user_id: 100, MALLORY: 0},
        )


@pytest.mark.parametrize("room_version", FAMILIES)
async def test_forged_create_event_in_gap_state(
    tmp_path: Path, room_version: str
) -> None:
    """The gap state swaps the room's create event for one mallory made (she would be
    the creator): it fails its checks and is left out."""
    async with attacked_room(tmp_path, room_version=room_version) as a:
        create_key: StateKey = ("m.room.create", "")
        real_create = key(a, create_key)
        content: JsonDict = {"creator": MALLORY, "room_version": room_version}
        if not a.rv.implicit_room_creator:
            content = {"creator": MALLORY}
        fake = forge(
            a.rv,
            server=EVIL,
            key=a.peer.key,
            room_id=None if a.rv.room_id_from_create_event else a.room_id,
            sender=MALLORY,
            etype="m.room.create",
            content=content,
            state_key="",
            prev=[],
            auth=[],
            depth=1,
            ts=1,
        )
        a.room.events[fake.event_id] = fake
        e = a.gap(MALLORY, [*honest_state(a, without=create_key), fake.event_id], [])
        await a.send([e])
        await assert_room_intact(
            a,
            expected={create_key: real_create, PL_KEY: key(a, PL_KEY)},
            forbidden={fake.event_id},
        )


@pytest.mark.parametrize("room_version", ["1", "10"])
async def test_unprivileged_redaction_of_anothers_event(
    tmp_path: Path, room_version: str
) -> None:
    async with attacked_room(tmp_path, room_version=room_version) as a:
        target = await a.alice.send(a.room_id, "keep me")
        await a.learn(target)
        content: JsonDict = {"reason": "mine now"}
        if a.rv.redacts_in_content:
            content["redacts"] = target
        redaction = a.room.build(a.peer, MALLORY, "m.room.redaction", content)
        pdu = dict(redaction.data)
        if not a.rv.redacts_in_content:
            pdu = dict(
                forge(
                    a.rv,
                    server=EVIL,
                    key=a.peer.key,
                    room_id=a.room_id,
                    sender=MALLORY,
                    etype="m.room.redaction",
                    content=content,
                    prev=list(redaction.prev_event_ids),
                    auth=list(redaction.auth_event_ids),
                    depth=redaction.depth,
                    ts=redaction.origin_server_ts,
                    events=a.room.events,
                    redacts=target,
                ).data
            )
        await a.send([pdu])
        shown = await a.alice.ok("GET", f"/rooms/{a.q()}/event/{target}")
        assert shown["content"].get("body") == "keep me"
        await assert_room_intact(a, expected={PL_KEY: key(a, PL_KEY)})


@pytest.mark.parametrize("room_version", FAMILIES)
async def test_state_injected_through_a_gap_and_a_soft_failed_event(
    tmp_path: Path, room_version: str
) -> None:
    """Mallory was promoted once and demoted since. The gap state at C names the old
    promoting power levels, so her room name E1 on top of it passes the state before
    it; E1 soft-fails against current state, and her message
    E2 cites E1, so E1's state reaches state resolution. Since v2 the name (a key
    current state lacks) is conflicted and fails the iterative auth checks."""
    async with attacked_room(tmp_path, room_version=room_version) as a:
        promote = await a.send_state(
            "m.room.power_levels", pl_content(a, **{MALLORY: 50})
        )
        await a.send_state("m.room.power_levels", pl_content(a, **{MALLORY: 0}))
        create = key(a, ("m.room.create", ""))
        join = key(a, member(MALLORY))
        e = a.gap(MALLORY, [create, join, promote.event_id], [])
        d_id = e.prev_event_ids[0]
        auth = [create, promote.event_id, join]
        if a.rv.room_id_from_create_event:
            auth = auth[1:]
        acl = a.peer.forge(
            a.room, MALLORY, "m.room.name", {"name": "mallory's"},
            state_key="", prev=[d_id], auth=auth,
            depth=12,
        )  # fmt: skip
        after = a.peer.forge(
            a.room, MALLORY, "m.room.message", {"body": "x", "msgtype": "m.text"},
            prev=[acl.event_id], depth=13,
        )  # fmt: skip
        a.peer.answer(
            "get_missing_events", {"events": [a.room.events[d_id].data, acl.data]}
        )
        await a.send([after])
        if a.rv.state_res is StateResolution.V1:
            # v1 keeps a key only one state set holds (docs/security.md, limits).
            state = await current_state(a)
            assert state.get(("m.room.name", "")) == acl.event_id
            return
        await assert_room_intact(
            a, expected={PL_KEY: key(a, PL_KEY)}, forbidden={acl.event_id}
        )
        assert ("m.room.name", "") not in await current_state(a)


# -- griefing honest servers ----------------------------------------------------------------
async def test_honest_event_served_without_its_auth_chain_is_not_rejected_for_good(
    tmp_path: Path, engine: str
) -> None:
    """good.test's gary changes his member event twice (G0, then G1 citing G0) and has
    not sent them yet. The peer names G1 in gap state, without G0. Ranvier cannot
    check G1 and must not store it as rejected: when good.test sends G0 and G1, and
    then a message authorised by G1, all are accepted."""
    gary = "@gary:good.test"
    async with (
        attacked_room(tmp_path, room_version="10", engine=engine) as a,
        serve_peer({HS: a.hs}, HostilePeer("good.test")) as good,
    ):
        good_room, _ = await good.join(a.hs, a.room_id, gary)
        g0 = good_room.build(
            good, gary, "m.room.member", {"membership": "join", "displayname": "a"},
            state_key=gary,
        )  # fmt: skip
        # A later timestamp: resolution v2 orders same-power events by timestamp, then
        # ID, not by their DAG order.
        g1 = good_room.build(
            good, gary, "m.room.member", {"membership": "join", "displayname": "b"},
            state_key=gary, ts=g0.origin_server_ts + 1,
        )  # fmt: skip
        assert g0.event_id in g1.auth_event_ids
        a.room.events[g1.event_id] = g1
        e = a.gap(MALLORY, [*honest_state(a), g1.event_id], [])
        await a.send([e])
        status, out = await good.send_transaction(a.hs, [g0, g1])
        assert status == 200, out
        assert out["pdus"] == {g0.event_id: {}, g1.event_id: {}}, out
        hello = good_room.build(
            good, gary, "m.room.message", {"body": "hello", "msgtype": "m.text"}
        )
        status, out = await good.send_transaction(a.hs, [hello])
        assert out["pdus"][hello.event_id] == {}, out
        assert (await current_state(a))[member(gary)] == g1.event_id
        chunk = await a.alice.ok("GET", f"/rooms/{a.q()}/messages?dir=b&limit=50")
        assert hello.event_id in {ev["event_id"] for ev in chunk["chunk"]}
        await assert_room_intact(a, expected={member(gary): g1.event_id})


async def test_honest_event_relayed_without_its_auth_chain_is_not_rejected_for_good(
    tmp_path: Path, engine: str
) -> None:
    """The peer relays good.test's message G1 in its own transaction and answers its
    `/event_auth` with nothing (G1's auth event G0 is gary's unsent member event). G1
    must not be stored as rejected: when good.test sends G0 and G1, G1 is shown."""
    gary = "@gary:good.test"
    async with (
        attacked_room(tmp_path, room_version="10", engine=engine) as a,
        serve_peer({HS: a.hs}, HostilePeer("good.test")) as good,
    ):
        good_room, _ = await good.join(a.hs, a.room_id, gary)
        known_tip = list(good_room.extremities)
        g0 = good_room.build(
            good, gary, "m.room.member", {"membership": "join", "displayname": "a"},
            state_key=gary,
        )  # fmt: skip
        # On a tip Ranvier has (no gap to fill), authorised by the unsent G0.
        g1 = good_room.build(
            good, gary, "m.room.message", {"body": "hi", "msgtype": "m.text"},
            prev=known_tip,
        )  # fmt: skip
        assert g0.event_id in g1.auth_event_ids
        a.peer.answer("event_auth", {"auth_chain": []})
        a.peer.answer("get_missing_events", {"events": []})
        results = await a.send([g1])
        assert "error" in results[g1.event_id]
        status, out = await good.send_transaction(a.hs, [g0, g1])
        assert status == 200, out
        assert out["pdus"] == {g0.event_id: {}, g1.event_id: {}}, out
        chunk = await a.alice.ok("GET", f"/rooms/{a.q()}/messages?dir=b&limit=50")
        assert g1.event_id in {ev["event_id"] for ev in chunk["chunk"]}
        await assert_room_intact(a, expected={member(gary): g0.event_id})


# -- backfill -------------------------------------------------------------------------------
@pytest.mark.parametrize("room_version", ["1", "10"])
async def test_backfill_with_lying_state(tmp_path: Path, room_version: str) -> None:
    """After a gap, C is only an outlier; alice's `/messages` backfills it from the peer,
    whose state at C now names a made-up power-levels event X (rejected) and another
    room's power levels. Neither may enter the backfilled event's state."""
    async with attacked_room(tmp_path, room_version=room_version) as a:
        real_pl = key(a, PL_KEY)
        e = a.gap(MALLORY, honest_state(a), [])
        c_id = a.room.events[e.prev_event_ids[0]].prev_event_ids[0]
        await a.send([e])
        x = a.peer.forge(a.room, MALLORY, "m.room.power_levels",
                         pl_content(a, **{MALLORY: 100}), state_key="",
                         prev=[a.nowhere()], depth=1)  # fmt: skip
        other = await a.alice.create_room(
            preset="public_chat", room_version=room_version
        )
        sent = await a.alice.ok(
            "PUT", f"/rooms/{other}/state/m.room.power_levels/",
            {"users": {MALLORY: 100}},
        )  # fmt: skip
        lie = [*honest_state(a, without=PL_KEY), x.event_id]
        a.peer.answer("state_ids", {"pdu_ids": [*lie, sent["event_id"]],
                                    "auth_chain_ids": []})  # fmt: skip
        a.peer.answer("state", {"pdus": [x.data], "auth_chain": []})
        a.peer.answer("backfill", {"origin": EVIL, "origin_server_ts": 0,
                                   "pdus": [a.room.events[c_id].data]})  # fmt: skip
        await a.alice.ok("GET", f"/rooms/{a.q()}/messages?dir=b&limit=100")
        assert a.peer.hits["backfill"] >= 1

        def txn_fn(txn: Txn) -> tuple[bool, dict[StateKey, str]] | None:
            txn.execute("SELECT outlier FROM events WHERE event_id = ?", (c_id,))
            row = txn.fetchone()
            txn.execute(
                "SELECT s.type, s.state_key, s.event_id FROM event_state_groups AS g "
                "JOIN state_group_entries AS s ON s.state_group = g.state_group_after "
                "WHERE g.event_id = ?",
                (c_id,),
            )
            entries = {(str(t), str(k)): str(v) for t, k, v in txn.fetchall()}
            return (bool(row[0]), entries) if row else None

        found = await a.hs.peer.homeserver.db.run_read_txn("test_c", txn_fn)
        assert found is not None
        outlier, entries = found
        assert not outlier  # backfilled into the timeline
        assert x.event_id not in entries.values()
        assert sent["event_id"] not in entries.values()
        await assert_room_intact(
            a, expected={PL_KEY: real_pl}, forbidden={x.event_id},
            powers={a.alice.user_id: 100, MALLORY: 0},
        )  # fmt: skip


async def test_backfilled_event_citing_another_room(
    tmp_path: Path, engine: str
) -> None:
    """A backfill answer carries an event whose prev event is another room's: it is
    rejected with no state, so the other room's state never becomes this room's."""
    async with attacked_room(tmp_path, room_version="10", engine=engine) as a:
        e = a.gap(MALLORY, honest_state(a), [])
        await a.send([e])
        other = await a.alice.create_room(preset="public_chat", room_version="10")
        await a.peer.join(a.hs, other, MALLORY)
        tip = await a.alice.send(other, "over there")
        foreign = await a.peer.fetch_event(a.hs, tip, a.rv)
        a.room.events[foreign.event_id] = foreign
        bridge = a.peer.forge(a.room, MALLORY, "m.room.message",
                              {"body": "bridge", "msgtype": "m.text"},
                              prev=[foreign.event_id], depth=2)  # fmt: skip
        a.peer.answer("backfill", {"origin": EVIL, "origin_server_ts": 0,
                                   "pdus": [bridge.data]})  # fmt: skip
        await a.alice.ok("GET", f"/rooms/{a.q()}/messages?dir=b&limit=100")
        assert a.peer.hits["backfill"] >= 1
        assert bridge.event_id in await rejected_ids(a)
        await assert_room_intact(a, expected={PL_KEY: key(a, PL_KEY)})
