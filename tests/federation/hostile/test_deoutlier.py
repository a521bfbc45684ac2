"""Events Ranvier first stored as outliers that later arrive as timeline events
(de-outliering): an accepted outlier joins the DAG, the timeline and the current state
through the same checks as a new event, its one row upgraded; a rejected outlier stays
rejected; an accepted outlier that fails as a timeline event stays an accepted outlier
(a peer's lie about the state before it must not withdraw it)."""

from __future__ import annotations

from pathlib import Path

import orjson

from ranvier.core.events.builder import finalize_local_event
from ranvier.core.events.event import Event, StateKey
from ranvier.core.events.local_builder import build_unsigned_pdu
from ranvier.storage.txn import Txn
from tests.federation.hostile.scenario import (
    EVIL,
    MALLORY,
    PL_KEY,
    Attack,
    JsonDict,
    StoredStatus,
    assert_room_intact,
    attacked_room,
    current_state,
    stored_status,
)

MEMBER: StateKey = ("m.room.member", MALLORY)


def message_citing(a: Attack, member: Event) -> Event:
    """Mallory's message on Ranvier's tip, authorised by `member` (her member event
    Ranvier has not seen): Ranvier fetches `member` through `/event_auth`, an outlier."""
    honest = a.room.build(
        a.peer, MALLORY, "m.room.message", {"body": "x"}, record=False
    )
    old = a.room.state[MEMBER]
    auth = [member.event_id if e == old else e for e in honest.auth_event_ids]
    assert member.event_id in auth
    return a.peer.forge(
        a.room, MALLORY, "m.room.message", {"body": "hi", "msgtype": "m.text"},
        prev=list(a.room.extremities), auth=auth,
    )  # fmt: skip


async def stored_event(a: Attack, event_id: str) -> Event:
    def txn_fn(txn: Txn) -> str:
        txn.execute("SELECT json FROM events WHERE event_id = ?", (event_id,))
        row = txn.fetchone()
        assert row is not None
        return str(row[0])

    raw = await a.hs.peer.homeserver.db.run_read_txn("test_stored_event", txn_fn)
    return Event(orjson.loads(raw), event_id, a.rv)


def timeline_ids(sync: JsonDict, room_id: str) -> set[str]:
    room = sync["rooms"]["join"][room_id]
    return {e["event_id"] for e in room["timeline"]["events"]}


async def test_auth_event_fetched_as_outlier_joins_the_timeline_when_sent(
    tmp_path: Path, engine: str
) -> None:
    async with attacked_room(tmp_path, room_version="10", engine=engine) as a:
        since = (await a.alice.sync())["next_batch"]
        renamed = a.room.build(
            a.peer, MALLORY, "m.room.member",
            {"membership": "join", "displayname": "mal"}, state_key=MALLORY,
            record=False,
        )  # fmt: skip
        a.room.events[renamed.event_id] = renamed  # served by /event_auth
        hello = message_citing(a, renamed)
        a.peer.answer("get_missing_events", {"events": []})
        assert await a.send([hello]) == {hello.event_id: {}}
        assert await stored_status(a, renamed.event_id) == StoredStatus(
            outlier=True, rejected_reason=None, soft_failed=False
        )
        assert (await current_state(a))[MEMBER] != renamed.event_id

        assert await a.send([renamed]) == {renamed.event_id: {}}
        assert await stored_status(a, renamed.event_id) == StoredStatus(
            outlier=False, rejected_reason=None, soft_failed=False
        )
        assert (await current_state(a))[MEMBER] == renamed.event_id
        later = await a.alice.sync(since)
        assert {hello.event_id, renamed.event_id} <= timeline_ids(later, a.room_id)
        chunk = await a.alice.ok("GET", f"/rooms/{a.q()}/messages?dir=b&limit=50")
        assert renamed.event_id in {e["event_id"] for e in chunk["chunk"]}
        member = await a.alice.ok(
            "GET", f"/rooms/{a.q()}/state/m.room.member/{MALLORY}"
        )
        assert member["displayname"] == "mal"
        # Sent again: known, nothing changes.
        assert await a.send([renamed]) == {renamed.event_id: {}}
        await assert_room_intact(a, expected={MEMBER: renamed.event_id})


async def test_rejected_outlier_sent_again_stays_rejected(
    tmp_path: Path, engine: str
) -> None:
    """Mallory's made-up power levels X, fetched through `/event_auth` of her name
    change and rejected there, then pushed in `/send`: still rejected, never state."""
    async with attacked_room(tmp_path, room_version="10", engine=engine) as a:
        real_pl = a.room.state[PL_KEY]
        pl: JsonDict = dict(a.room.events[real_pl].content)
        pl["users"] = {**pl.get("users", {}), MALLORY: 100}
        x = a.peer.forge(a.room, MALLORY, "m.room.power_levels", pl, state_key="")
        auth = [a.room.state[("m.room.create", "")], x.event_id, a.room.state[MEMBER]]
        name = a.peer.forge(
            a.room, MALLORY, "m.room.name", {"name": "mine"}, state_key="", auth=auth
        )
        await a.send([name])
        first = await stored_status(a, x.event_id)
        assert first is not None
        assert first.outlier
        assert first.rejected_reason

        assert await a.send([x]) == {x.event_id: {}}
        assert await stored_status(a, x.event_id) == first
        await assert_room_intact(
            a,
            expected={PL_KEY: real_pl},
            forbidden={x.event_id, name.event_id},
            powers={a.alice.user_id: 100, MALLORY: 0},
        )


async def test_outlier_failing_as_a_timeline_event_stays_an_accepted_outlier(
    tmp_path: Path, engine: str
) -> None:
    """Mallory's renamed member event R passes its own auth events (fetched as an
    outlier), but she then sends it on a fork after alice banned her: it fails against
    the state before it. R is not withdrawn (it authorised an accepted event), and
    stays out of the timeline and the state."""
    async with attacked_room(tmp_path, room_version="10", engine=engine) as a:
        renamed = a.room.build(
            a.peer, MALLORY, "m.room.member",
            {"membership": "join", "displayname": "mal"}, state_key=MALLORY,
            record=False,
        )  # fmt: skip
        a.room.events[renamed.event_id] = renamed
        hello = message_citing(a, renamed)
        a.peer.answer("get_missing_events", {"events": []})
        assert await a.send([hello]) == {hello.event_id: {}}
        await a.alice.ok("POST", f"/rooms/{a.q()}/ban", {"user_id": MALLORY})
        ban = (await current_state(a))[MEMBER]
        a.room.add(await stored_event(a, ban))  # evil.test may no longer fetch it
        # A rename on the tip after the ban, citing her old join as its auth event.
        late = a.peer.forge(
            a.room, MALLORY, "m.room.member",
            {"membership": "join", "displayname": "mal"}, state_key=MALLORY,
            auth=list(renamed.auth_event_ids),
        )  # fmt: skip
        a.room.events[late.event_id] = late
        hello2 = message_citing(a, late)  # rejected: Mallory is banned
        assert await a.send([hello2]) == {hello2.event_id: {}}
        assert (await stored_status(a, late.event_id)) == StoredStatus(
            outlier=True, rejected_reason=None, soft_failed=False
        )
        assert await a.send([late]) == {late.event_id: {}}
        assert (await stored_status(a, late.event_id)) == StoredStatus(
            outlier=True, rejected_reason=None, soft_failed=False
        )
        chunk = await a.alice.ok("GET", f"/rooms/{a.q()}/messages?dir=b&limit=50")
        assert late.event_id not in {e["event_id"] for e in chunk["chunk"]}
        await assert_room_intact(a, expected={MEMBER: ban}, check_served=False)


async def test_v1_other_copy_of_an_outlier_does_not_replace_it(
    tmp_path: Path, engine: str
) -> None:
    """Before v3 an event ID is not a hash: evil.test sends, under the ID of her
    member event R that Ranvier holds as an outlier, a differently signed copy saying
    "leave". The stored copy (the join) is what enters the DAG and the membership
    tables; the second copy never does."""
    async with attacked_room(tmp_path, room_version="1", engine=engine) as a:
        renamed = a.room.build(
            a.peer, MALLORY, "m.room.member",
            {"membership": "join", "displayname": "mal"}, state_key=MALLORY,
            record=False,
        )  # fmt: skip
        a.room.events[renamed.event_id] = renamed
        hello = message_citing(a, renamed)
        a.peer.answer("get_missing_events", {"events": []})
        assert await a.send([hello]) == {hello.event_id: {}}
        pdu = build_unsigned_pdu(
            a.rv, event_type="m.room.member", sender=MALLORY,
            content={"membership": "leave"}, room_id=a.room_id,
            origin_server_ts=renamed.origin_server_ts,
            prev_events=[a.room.events[p] for p in renamed.prev_event_ids],
            auth_events=[a.room.events[e] for e in renamed.auth_event_ids],
            state_key=MALLORY, v1_event_id=renamed.event_id,
        )  # fmt: skip
        other = finalize_local_event(pdu, a.rv, EVIL, a.peer.key)
        assert other.event_id == renamed.event_id
        assert await a.send([other]) == {other.event_id: {}}
        assert (await current_state(a))[MEMBER] == renamed.event_id
        assert await current_membership(a, MALLORY) == "join"
        member = await a.alice.ok(
            "GET", f"/rooms/{a.q()}/state/m.room.member/{MALLORY}"
        )
        assert member == {"membership": "join", "displayname": "mal"}
        await assert_room_intact(a, expected={MEMBER: renamed.event_id})


async def current_membership(a: Attack, user_id: str) -> str | None:
    def txn_fn(txn: Txn) -> str | None:
        txn.execute(
            "SELECT membership FROM current_memberships "
            "WHERE room_id = ? AND user_id = ?",
            (a.room_id, user_id),
        )
        row = txn.fetchone()
        return str(row[0]) if row is not None else None

    return await a.hs.peer.homeserver.db.run_read_txn("test_membership", txn_fn)
