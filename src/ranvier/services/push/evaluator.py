"""Evaluating push rules for every event the pipeline persists (DESIGN.md path 1:
"notify ... evaluate push rules, update counts").

`PushEvaluator` is a link of the pipeline's `NotifierChain`: `on_new_event` only queues
(the notifier must not block or raise); one supervised worker evaluates events in
stream order, for all local members of the room at once (plus the target of an
invite), writes one batch of `event_push_actions` rows, then tells the pushers.

Counts must match the timeline a sync returns: a sync reading up to position P first
waits (briefly, bounded) until every event at or below P has been evaluated
(`wait_for`). Every readable position has been handed to `on_new_event` before anyone
can read it (the pipeline calls the notifier right after the position completes, with
no await in between), so "nothing pending at or below P" is exact.

Durable (with an `EvaluationLog`): the queue lives only in memory, so the events-stream
position up to which every event has been evaluated is saved in the same transaction as
the actions it covers, and `start()` evaluates the events after it before anything new.
An event persisted just before a shutdown or crash thus still gets its push actions.
Re-evaluating an event is harmless: actions are keyed by (user, event) and an existing
row is kept, so a replay never counts an event twice.

Room facts (members, power levels, display names) are cached per room and dropped when
a state event arrives, or an event merges several branches (state resolution may have
changed the state without a state event of ours).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ranvier.core.auth import CREATE_KEY, POWER_LEVELS_KEY
from ranvier.core.auth.levels import get_user_power_level_from
from ranvier.core.events.event import Event, StateKey
from ranvier.core.push.evaluator import (
    PushActions,
    Recipient,
    RoomFacts,
    evaluate_for_recipients,
)
from ranvier.services.push.rules import PushRulesService
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.storage.stores.push import MAIN_THREAD, PushActionRow
from ranvier.util.clock import Clock
from ranvier.util.lru import LruCache
from ranvier.util.supervisor import TaskSupervisor

logger = logging.getLogger(__name__)

_BATCH = 100
_REPLAY_PAGE = 500
# Without notifying rows to write, the saved position may lag this long (a restart then
# re-evaluates at most that much of the stream).
_SAVE_IDLE_POSITION_MS = 30_000
MEMBER = "m.room.member"


class RoomMembers(Protocol):
    async def get_joined_user_ids(self, room_id: str) -> list[str]: ...


class CurrentState(Protocol):
    async def get_current_state_events(
        self, room_id: str, keys: Collection[StateKey]
    ) -> dict[StateKey, Event]: ...


class EventLookup(Protocol):
    async def get_event(self, event_id: str) -> StoredEvent | None: ...


class ActionsWriter(Protocol):
    async def add_push_actions(self, rows: Sequence[PushActionRow]) -> None: ...


class EvaluationLog(Protocol):
    """The evaluated position and the events after it (the push store)."""

    async def get_evaluated_position(self) -> int | None: ...

    async def add_push_actions(
        self, rows: Sequence[PushActionRow], position: int | None = None
    ) -> None: ...

    async def get_events_to_evaluate(
        self, after: int, upto: int, limit: int
    ) -> tuple[Sequence[StoredEvent], int]: ...


class PushActionsListener(Protocol):
    """The pushers: new notifications for these users were written."""

    def on_push_actions(self, rows: Sequence[PushActionRow]) -> None: ...


@dataclass(slots=True)
class _RoomInfo:
    members: list[str]
    local: list[str]
    create: Event | None
    power_levels: Event | None
    display_names: dict[str, str | None] = field(default_factory=dict)


def thread_relation(content: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(thread root, other related event) named by `m.relates_to`."""
    rel = content.get("m.relates_to")
    if not isinstance(rel, Mapping):
        return None, None
    target = rel.get("event_id")
    if not isinstance(target, str):
        return None, None
    if rel.get("rel_type") == "m.thread":
        return target, None
    return None, target


class IgnoringUsers(Protocol):
    async def get_users_ignoring(
        self, sender: str, user_ids: Iterable[str]
    ) -> set[str]: ...


class PushEvaluator:
    def __init__(
        self,
        *,
        server_name: str,
        store: ActionsWriter,
        rules: PushRulesService,
        members: RoomMembers,
        state: CurrentState,
        events: EventLookup,
        clock: Clock,
        supervisor: TaskSupervisor,
        room_cache_size: int = 5_000,
        log: EvaluationLog | None = None,
        current_position: Callable[[], int] | None = None,
        ignored: IgnoringUsers | None = None,
    ) -> None:
        self._ignored = ignored
        self._suffix = ":" + server_name
        self._store = store
        self._rules = rules
        self._members = members
        self._state = state
        self._events = events
        self._clock = clock
        self._supervisor = supervisor
        self._rooms: LruCache[str, _RoomInfo] = LruCache(room_cache_size)
        self._queue: deque[tuple[Event, int]] = deque()
        self._pending: set[int] = set()
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.listeners: list[PushActionsListener] = []
        self._log = log
        self._current_position = current_position
        # The start-up replay: events in (cursor, target] are still to be evaluated.
        self._replay_cursor = 0
        self._replay_target = 0
        self._saved = 0
        self._saved_at = 0
        self._failed = False

    async def start(self) -> None:
        """Evaluate the events a previous run persisted but never evaluated (then new
        ones). Before any event is notified, so every event is either replayed or
        queued."""
        if self._log is None or self._current_position is None:
            return
        saved = await self._log.get_evaluated_position()
        upto = self._current_position()
        if saved is None:
            # A new database (or one from before this was saved): nothing to replay.
            await self._save(upto)
            return
        self._saved = saved
        if saved < upto:
            self._replay_cursor, self._replay_target = saved, upto
            self._ensure_worker()

    def _ensure_worker(self) -> bool:
        if self._task is None or self._task.done():
            try:
                self._task = self._supervisor.start("push-evaluator", self._run())
            except RuntimeError:
                return False  # shutting down
        return True

    # -- the notifier link -----------------------------------------------------------
    def on_new_event(
        self, event: Event, stream_ordering: int, *, extra_users: Iterable[str] = ()
    ) -> None:
        # Backfilled history (positions <= 0) is never new to anyone; events up to the
        # replay's target are evaluated by the replay.
        if stream_ordering <= self._replay_target:
            return
        if not self._ensure_worker():
            return
        self._queue.append((event, stream_ordering))
        self._pending.add(stream_ordering)
        self._wake.set()

    async def wait_for(self, position: int, max_wait: float = 2.0) -> None:
        """Return once every event at or below `position` is evaluated (or on timeout:
        counts are then a little behind, never a stuck sync)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        while self._is_behind(position):
            remaining = deadline - loop.time()
            if remaining <= 0:
                logger.warning("push evaluation is behind position %d", position)
                return
            progress = self._progress
            try:
                await asyncio.wait_for(progress.wait(), remaining)
            except TimeoutError:
                continue

    def _is_behind(self, position: int) -> bool:
        if self._replay_cursor < min(position, self._replay_target):
            return True
        return bool(self._pending) and min(self._pending) <= position

    def _signal_progress(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    # -- the worker ------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            await self._replay()
        finally:
            self._replay_cursor = self._replay_target
            self._signal_progress()
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [
                self._queue.popleft() for _ in range(min(_BATCH, len(self._queue)))
            ]
            # No await since the pop: everything at or below it was evaluated, is in
            # this batch or is still queued.
            safe = self._safe_position()
            try:
                await self._evaluate_and_store(
                    [(e, p) for e, p in batch if p > self._replay_target], safe
                )
            finally:
                for _, position in batch:
                    self._pending.discard(position)
                self._signal_progress()

    def _safe_position(self) -> int | None:
        """The position the batch just taken completes (None: nothing to save)."""
        if self._current_position is None:
            return None
        position = self._current_position()
        if self._queue:
            position = min(position, min(p for _, p in self._queue) - 1)
        return position

    async def _replay(self) -> None:
        if self._log is None or self._replay_cursor >= self._replay_target:
            return
        count = 0
        while self._replay_cursor < self._replay_target:
            events, scanned = await self._log.get_events_to_evaluate(
                self._replay_cursor, self._replay_target, _REPLAY_PAGE
            )
            await self._evaluate_and_store(
                [(s.event, s.stream_ordering) for s in events], scanned
            )
            self._replay_cursor = scanned
            self._signal_progress()
            count += len(events)
        logger.info("evaluated push rules for %d events after the restart", count)

    async def _evaluate_and_store(
        self, batch: Sequence[tuple[Event, int]], position: int | None
    ) -> None:
        rows: list[PushActionRow] = []
        try:
            for event, ordering in batch:
                rows.extend(await self._evaluate_safely(event, ordering))
            await self._write(rows, position)
        except Exception:
            # The saved position stops here: the next start-up evaluates these again.
            self._failed = True
            logger.exception("storing push actions failed")
            return
        if rows:
            for listener in self.listeners:
                try:
                    listener.on_push_actions(rows)
                except Exception:
                    logger.exception("push actions listener failed")

    async def _write(self, rows: list[PushActionRow], position: int | None) -> None:
        if (
            self._log is None
            or position is None
            or not self._should_save(rows, position)
        ):
            await self._store.add_push_actions(rows)
            return
        await self._log.add_push_actions(rows, position)
        self._saved = position
        self._saved_at = self._clock.time_msec()

    def _should_save(self, rows: Sequence[PushActionRow], position: int) -> bool:
        if self._failed or position <= self._saved:
            return False
        # Rows are written anyway, so saving with them is free; otherwise save now and
        # then, not a transaction per event nobody is notified of.
        return bool(rows) or (
            self._clock.time_msec() - self._saved_at >= _SAVE_IDLE_POSITION_MS
        )

    async def _save(self, position: int) -> None:
        assert self._log is not None
        await self._log.add_push_actions([], position)
        self._saved = position
        self._saved_at = self._clock.time_msec()

    async def _evaluate_safely(
        self, event: Event, position: int
    ) -> list[PushActionRow]:
        try:
            return await self.evaluate(event, position)
        except Exception:
            logger.exception("push rule evaluation failed for %s", event.event_id)
            return []

    async def evaluate(self, event: Event, position: int) -> list[PushActionRow]:
        """Push actions of `event` for every local user it notifies."""
        if event.is_state() or len(event.prev_event_ids) > 1:
            self._rooms.invalidate([event.room_id])
        info = await self._room_info(event.room_id)
        recipients = [u for u in info.local if u != event.sender]
        target = event.state_key
        if (
            event.type == MEMBER
            and event.membership == "invite"
            and target is not None
            and target.endswith(self._suffix)
            and target != event.sender
            and target not in recipients
        ):
            recipients.append(target)
        if (
            recipients
            and self._ignored is not None
            and (not event.is_state() or event.membership == "invite")
        ):
            # Spec: no pushes for events (or invites) from ignored users. Other
            # state events still count, as in Synapse.
            ignoring = await self._ignored.get_users_ignoring(event.sender, recipients)
            recipients = [u for u in recipients if u not in ignoring]
        if not recipients:
            return []
        compiled = await self._rules.get_compiled(recipients)
        names = await self._display_names(
            event.room_id,
            info,
            [u for u in recipients if compiled[u].uses_display_name],
        )
        decided = evaluate_for_recipients(
            event.data,
            self._facts(event, info),
            [Recipient(u, compiled[u], names.get(u)) for u in recipients],
        )
        if not decided:
            return []
        thread_id = await self._thread_id(event)
        now = self._clock.time_msec()
        return [
            _row(user_id, event, position, thread_id, actions, now)
            for user_id, actions in decided.items()
        ]

    def _facts(self, event: Event, info: _RoomInfo) -> RoomFacts:
        sender_level: int | float = 0
        if info.create is not None:
            sender_level = get_user_power_level_from(
                event.sender, info.create, info.power_levels
            )
        levels: Mapping[str, Any] = {}
        if info.power_levels is not None:
            raw = info.power_levels.content.get("notifications")
            if isinstance(raw, Mapping):
                levels = raw
        return RoomFacts(len(info.members), sender_level, levels)

    async def _room_info(self, room_id: str) -> _RoomInfo:
        cached = self._rooms.get(room_id)
        if cached is not None:
            return cached
        generation = self._rooms.generation()
        members = await self._members.get_joined_user_ids(room_id)
        state = await self._state.get_current_state_events(
            room_id, [CREATE_KEY, POWER_LEVELS_KEY]
        )
        info = _RoomInfo(
            members=members,
            local=[m for m in members if m.endswith(self._suffix)],
            create=state.get(CREATE_KEY),
            power_levels=state.get(POWER_LEVELS_KEY),
        )
        self._rooms.set_if_unchanged(room_id, info, generation)
        return info

    async def _display_names(
        self, room_id: str, info: _RoomInfo, user_ids: list[str]
    ) -> dict[str, str | None]:
        missing = [u for u in user_ids if u not in info.display_names]
        if missing:
            found = await self._state.get_current_state_events(
                room_id, [(MEMBER, u) for u in missing]
            )
            for u in missing:
                member = found.get((MEMBER, u))
                name = member.content.get("displayname") if member else None
                info.display_names[u] = name if isinstance(name, str) else None
        return {u: info.display_names.get(u) for u in user_ids}

    async def _thread_id(self, event: Event) -> str:
        root, related = thread_relation(event.content)
        if root is not None:
            return root
        if related is not None:
            # A reaction or edit belongs to the thread of the event it relates to.
            parent = await self._events.get_event(related)
            if parent is not None and parent.event.room_id == event.room_id:
                parent_root, _ = thread_relation(parent.event.content)
                if parent_root is not None:
                    return parent_root
        return MAIN_THREAD


def _row(
    user_id: str,
    event: Event,
    position: int,
    thread_id: str,
    actions: PushActions,
    now: int,
) -> PushActionRow:
    return PushActionRow(
        user_id=user_id,
        room_id=event.room_id,
        event_id=event.event_id,
        stream_ordering=position,
        thread_id=thread_id,
        actions=actions.actions,
        highlight=actions.highlight,
        received_ts=now,
    )
