"""The push evaluator service with fake rooms: who is evaluated, threads, caching of
room facts, stream order and the sync barrier (`wait_for`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from typing import Any

from ranvier.core.events.event import Event, StateKey
from ranvier.core.push.rules import RuleKind
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.services.push.evaluator import PushEvaluator
from ranvier.services.push.rules import PushRulesService
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.storage.stores.push import PushActionRow
from ranvier.util.clock import FakeClock
from ranvier.util.supervisor import TaskSupervisor

JsonDict = dict[str, Any]
RV = KNOWN_ROOM_VERSIONS["11"]
ROOM = "!room:hs"
ALICE, BOB, CAROL, REMOTE = "@alice:hs", "@bob:hs", "@carol:hs", "@rita:elsewhere"


def ev(
    event_id: str, content: JsonDict, etype: str = "m.room.message", **kw: Any
) -> Event:
    data: JsonDict = {
        "type": etype,
        "room_id": ROOM,
        "sender": ALICE,
        "content": content,
        "prev_events": ["$prev"],
        **kw,
    }
    return Event(data, event_id, RV)


class FakeRoom:
    def __init__(self, members: list[str]) -> None:
        self.members = members
        self.member_reads = 0
        self.state: dict[StateKey, Event] = {
            ("m.room.create", ""): ev("$create", {}, "m.room.create", state_key=""),
        }
        self.events: dict[str, StoredEvent] = {}

    async def get_joined_user_ids(self, room_id: str) -> list[str]:
        self.member_reads += 1
        return list(self.members)

    async def get_current_state_events(
        self, room_id: str, keys: Collection[StateKey]
    ) -> dict[StateKey, Event]:
        return {k: self.state[k] for k in keys if k in self.state}

    async def get_event(self, event_id: str) -> StoredEvent | None:
        return self.events.get(event_id)


class FakeRulesStore:
    def __init__(self) -> None:
        self.docs: dict[str, JsonDict] = {}

    async def get_push_rules(self, user_ids: Collection[str]) -> dict[str, JsonDict]:
        return {u: self.docs[u] for u in user_ids if u in self.docs}

    async def update_push_rules(
        self, user_id: str, update: Callable[[JsonDict], JsonDict]
    ) -> JsonDict:
        self.docs[user_id] = update(self.docs.get(user_id, {}))
        return self.docs[user_id]


class FakeActions:
    def __init__(self) -> None:
        self.rows: list[PushActionRow] = []
        self.gate: asyncio.Event | None = None

    async def add_push_actions(self, rows: Sequence[PushActionRow]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.rows.extend(rows)


def build(
    room: FakeRoom,
) -> tuple[PushEvaluator, FakeActions, PushRulesService, TaskSupervisor]:
    actions = FakeActions()
    rules = PushRulesService(FakeRulesStore())
    supervisor = TaskSupervisor()
    evaluator = PushEvaluator(
        server_name="hs",
        store=actions,
        rules=rules,
        members=room,
        state=room,
        events=room,
        clock=FakeClock(),
        supervisor=supervisor,
    )
    return evaluator, actions, rules, supervisor


async def test_local_members_but_not_the_sender_are_evaluated() -> None:
    room = FakeRoom([ALICE, BOB, CAROL, REMOTE])
    evaluator, _, _, supervisor = build(room)
    try:
        rows = await evaluator.evaluate(ev("$m", {"body": "hi"}), 5)
        assert sorted(r.user_id for r in rows) == [BOB, CAROL]
        assert {r.thread_id for r in rows} == {"main"}
        assert {r.stream_ordering for r in rows} == {5}
        assert all(r.actions == ("notify",) for r in rows)
        mention = ev("$n", {"body": "x", "m.mentions": {"user_ids": [CAROL]}})
        rows = await evaluator.evaluate(mention, 6)
        assert {r.user_id: r.highlight for r in rows} == {BOB: False, CAROL: True}
    finally:
        await supervisor.shutdown()


async def test_invites_reach_the_invited_local_user() -> None:
    room = FakeRoom([ALICE])
    evaluator, _, _, supervisor = build(room)
    try:
        invite = ev("$i", {"membership": "invite"}, "m.room.member", state_key=BOB)
        rows = await evaluator.evaluate(invite, 3)
        assert [r.user_id for r in rows] == [BOB]
        remote = ev("$r", {"membership": "invite"}, "m.room.member", state_key=REMOTE)
        assert await evaluator.evaluate(remote, 4) == []
    finally:
        await supervisor.shutdown()


async def test_threads_of_replies_and_reactions() -> None:
    room = FakeRoom([ALICE, BOB])
    evaluator, _, rules, supervisor = build(room)
    try:
        in_thread = ev(
            "$t1",
            {
                "body": "reply",
                "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"},
            },
        )
        room.events["$t1"] = StoredEvent(in_thread, 10)
        rows = await evaluator.evaluate(in_thread, 10)
        assert [r.thread_id for r in rows] == ["$root"]
        # Make reactions notify, to see which thread they land in.
        await rules.set_actions(BOB, RuleKind.OVERRIDE, ".m.rule.reaction", ["notify"])
        reaction = ev(
            "$re",
            {
                "m.relates_to": {
                    "rel_type": "m.annotation",
                    "event_id": "$t1",
                    "key": "+",
                }
            },
            "m.reaction",
        )
        rows = await evaluator.evaluate(reaction, 11)
        assert [r.thread_id for r in rows] == ["$root"]
        unknown_parent = ev(
            "$re2",
            {
                "m.relates_to": {
                    "rel_type": "m.annotation",
                    "event_id": "$nope",
                    "key": "+",
                }
            },
            "m.reaction",
        )
        rows = await evaluator.evaluate(unknown_parent, 12)
        assert [r.thread_id for r in rows] == ["main"]
    finally:
        await supervisor.shutdown()


async def test_room_facts_are_cached_until_state_changes() -> None:
    room = FakeRoom([ALICE, BOB])
    evaluator, _, _, supervisor = build(room)
    try:
        dm = await evaluator.evaluate(ev("$1", {"body": "a"}), 1)
        assert {"set_tweak": "sound", "value": "default"} in dm[0].actions
        await evaluator.evaluate(ev("$2", {"body": "b"}), 2)
        assert room.member_reads == 1
        # Carol joins: the join event (state) refreshes the cached members.
        room.members.append(CAROL)
        join = ev(
            "$j", {"membership": "join"}, "m.room.member", state_key=CAROL, sender=CAROL
        )
        await evaluator.evaluate(join, 3)
        assert room.member_reads == 2
        group = await evaluator.evaluate(ev("$3", {"body": "c"}), 4)
        assert all(r.actions == ("notify",) for r in group)
        assert sorted(r.user_id for r in group) == [BOB, CAROL]
        # A merge of several branches may change state without a state event.
        merge = ev("$4", {"body": "d"}, prev_events=["$a", "$b"])
        await evaluator.evaluate(merge, 5)
        assert room.member_reads == 3
    finally:
        await supervisor.shutdown()


async def test_the_worker_writes_in_order_and_wait_for_is_a_barrier() -> None:
    room = FakeRoom([ALICE, BOB])
    evaluator, actions, _, supervisor = build(room)
    seen: list[list[int]] = []

    class Listener:
        def on_push_actions(self, rows: Sequence[PushActionRow]) -> None:
            seen.append([r.stream_ordering for r in rows])

    evaluator.listeners.append(Listener())
    try:
        actions.gate = asyncio.Event()
        evaluator.on_new_event(ev("$1", {"body": "a"}), 1)
        evaluator.on_new_event(ev("$2", {"body": "b"}), 2)
        evaluator.on_new_event(ev("$old", {"body": "backfilled"}), -3)
        # Position 0 has nothing pending; 2 is held back by the gate.
        await asyncio.wait_for(evaluator.wait_for(0), 1)
        waiter = asyncio.ensure_future(evaluator.wait_for(2, max_wait=5))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        actions.gate.set()
        await asyncio.wait_for(waiter, 2)
        assert [r.stream_ordering for r in actions.rows] == [1, 2]
        assert seen == [[1, 2]]
        # A stuck evaluator delays syncs only up to the bound.
        actions.gate = asyncio.Event()
        evaluator.on_new_event(ev("$3", {"body": "c"}), 3)
        await asyncio.wait_for(evaluator.wait_for(3, max_wait=0.1), 2)
    finally:
        await supervisor.shutdown()


class FakeLog(FakeActions):
    """The push store's durable side: actions keyed by (user, event), the position."""

    def __init__(self, saved: int | None, events: list[StoredEvent]) -> None:
        super().__init__()
        self.position = saved
        self.events = events
        self.pages: list[tuple[int, int]] = []
        self.fail = False

    async def add_push_actions(
        self, rows: Sequence[PushActionRow], position: int | None = None
    ) -> None:
        if self.fail:
            raise OSError("database gone")
        await super().add_push_actions(
            [r for r in rows if (r.user_id, r.event_id) not in self.keys()]
        )
        if position is not None:
            self.position = position

    def keys(self) -> set[tuple[str, str]]:
        return {(r.user_id, r.event_id) for r in self.rows}

    async def get_evaluated_position(self) -> int | None:
        return self.position

    async def get_events_to_evaluate(
        self, after: int, upto: int, limit: int
    ) -> tuple[Sequence[StoredEvent], int]:
        self.pages.append((after, upto))
        found = [e for e in self.events if after < e.stream_ordering <= upto]
        if len(found) > limit:
            return found[:limit], found[limit - 1].stream_ordering
        return found, upto


def build_durable(
    room: FakeRoom, log: FakeLog, current: list[int]
) -> tuple[PushEvaluator, TaskSupervisor]:
    supervisor = TaskSupervisor()
    evaluator = PushEvaluator(
        server_name="hs",
        store=log,
        rules=PushRulesService(FakeRulesStore()),
        members=room,
        state=room,
        events=room,
        clock=FakeClock(),
        supervisor=supervisor,
        log=log,
        current_position=lambda: current[0],
    )
    return evaluator, supervisor


def stored(position: int, body: str) -> StoredEvent:
    return StoredEvent(ev(f"$s{position}", {"body": body}), position)


async def test_start_evaluates_what_the_last_run_persisted_but_never_evaluated() -> (
    None
):
    room = FakeRoom([ALICE, BOB])
    # Evaluated up to 2 before the restart; 3 and 4 were committed but lost in memory.
    log = FakeLog(2, [stored(2, "seen"), stored(3, "a"), stored(4, "b")])
    current = [4]
    evaluator, supervisor = build_durable(room, log, current)
    try:
        await evaluator.start()
        # A sync at 4 waits for the replay, not only for queued events.
        await asyncio.wait_for(evaluator.wait_for(4), 2)
        assert [(r.user_id, r.stream_ordering) for r in log.rows] == [
            (BOB, 3),
            (BOB, 4),
        ]
        assert log.position == 4
        assert log.pages == [(2, 4)]
        # New events go on after the replay, and move the saved position with them.
        current[0] = 5
        evaluator.on_new_event(ev("$5", {"body": "c"}), 5)
        await asyncio.wait_for(evaluator.wait_for(5), 2)
        assert [r.stream_ordering for r in log.rows] == [3, 4, 5]
        assert log.position == 5
    finally:
        await supervisor.shutdown()
    # Stopped before saving 5 (say): the next start evaluates 5 again, without a
    # second row for it.
    log.position = 4
    log.events.append(StoredEvent(ev("$5", {"body": "c"}), 5))
    evaluator, supervisor = build_durable(room, log, current)
    try:
        await evaluator.start()
        await asyncio.wait_for(evaluator.wait_for(5), 2)
        assert [r.stream_ordering for r in log.rows] == [3, 4, 5]
        assert log.pages[-1] == (4, 5)
    finally:
        await supervisor.shutdown()


async def test_wait_for_covers_the_replay_and_replayed_events_are_not_queued() -> None:
    room = FakeRoom([ALICE, BOB])
    log = FakeLog(0, [stored(1, "a")])
    current = [1]
    evaluator, supervisor = build_durable(room, log, current)
    try:
        log.gate = asyncio.Event()
        await evaluator.start()
        # Notified again while the replay holds it: evaluated once, by the replay.
        evaluator.on_new_event(ev("$s1", {"body": "a"}), 1)
        waiter = asyncio.ensure_future(evaluator.wait_for(1, max_wait=5))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        await asyncio.wait_for(evaluator.wait_for(0), 1)  # nothing before 1 pending
        log.gate.set()
        await asyncio.wait_for(waiter, 2)
        assert [r.event_id for r in log.rows] == ["$s1"]
    finally:
        await supervisor.shutdown()


async def test_a_new_database_starts_at_the_current_position() -> None:
    room = FakeRoom([ALICE, BOB])
    log = FakeLog(None, [stored(1, "before push was durable")])
    evaluator, supervisor = build_durable(room, log, [7])
    try:
        await evaluator.start()
        await asyncio.wait_for(evaluator.wait_for(7), 1)
        assert (log.position, log.pages, log.rows) == (7, [], [])
    finally:
        await supervisor.shutdown()


async def test_a_failed_write_keeps_the_position_for_the_next_start() -> None:
    room = FakeRoom([ALICE, BOB])
    log = FakeLog(0, [])
    current = [1]
    evaluator, supervisor = build_durable(room, log, current)
    try:
        await evaluator.start()
        log.fail = True
        evaluator.on_new_event(ev("$1", {"body": "a"}), 1)
        await asyncio.wait_for(evaluator.wait_for(1), 2)
        log.fail = False
        current[0] = 2
        evaluator.on_new_event(ev("$2", {"body": "b"}), 2)
        await asyncio.wait_for(evaluator.wait_for(2), 2)
        # 2 is stored, but the position stays before 1, which the next start retries.
        assert [r.stream_ordering for r in log.rows] == [2]
        assert log.position == 0
    finally:
        await supervisor.shutdown()
