"""Presence (spec: Presence): online / unavailable / offline, a status message, how long
ago the user was last active and whether they are active right now.

Only visible changes are written and take a stream position: the state, the status
message and `currently_active`. `last_active_ts` is refreshed in memory on every sync and
request and written with the next visible change, so an active user's client polling
every few seconds does not write (nor wake everyone sharing a room with them).

Timeouts, as Synapse does them, in one supervised task that runs while anyone is online:
* no activity for `IDLE_AFTER_MS` → `unavailable`;
* no sync for `OFFLINE_AFTER_MS` (and none in flight) → `offline`.

Changes wake the syncs of the user and of everyone sharing a room with them (through the
rooms' wake keys), and are delivered in `presence` to those users.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol

from ranvier.core.errors import forbidden, invalid_param
from ranvier.core.events.event import Event
from ranvier.core.streams import StreamKey
from ranvier.services.notifier import Notifier
from ranvier.storage.stores.presence import PresenceRow, PresenceStore
from ranvier.util.clock import Clock
from ranvier.util.supervisor import TaskSupervisor

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]

ONLINE = "online"
UNAVAILABLE = "unavailable"
OFFLINE = "offline"
STATES = frozenset({ONLINE, UNAVAILABLE, OFFLINE})

IDLE_AFTER_MS = 5 * 60_000
OFFLINE_AFTER_MS = 30_000
# A user counts as "currently active" this long after their last activity.
ACTIVE_WINDOW_MS = 60_000
_TICK_SECONDS = 5.0
MAX_STATUS_MSG_LENGTH = 1024


PushesFor = Callable[[Sequence[str]], Awaitable[list[JsonDict]]]


class PresenceFederation(Protocol):
    """Sends `m.presence` EDUs for local users to servers sharing a room with them."""

    async def send_presence(
        self, user_id: str, presence: Mapping[str, Any]
    ) -> None: ...

    async def send_presence_on_join(
        self, room_id: str, user_id: str, pushes_for: PushesFor
    ) -> None:
        """`user_id` joined `room_id`: a local user's presence to the room's other
        servers, or the room's local members' presence to a remote user's server
        (`pushes_for(user_ids)` gives the `push` entries)."""
        ...


class PresenceRooms(Protocol):
    async def get_joined_room_ids(self, user_id: str) -> set[str]: ...

    async def get_users_sharing_rooms(
        self, user_id: str, candidates: Collection[str] | None = None
    ) -> set[str]: ...


class PresenceService:
    def __init__(
        self,
        store: PresenceStore,
        rooms: PresenceRooms,
        notifier: Notifier,
        clock: Clock,
        supervisor: TaskSupervisor,
        federation: PresenceFederation | None = None,
    ) -> None:
        self._federation = federation
        self._store = store
        self._rooms = rooms
        self._notifier = notifier
        self._clock = clock
        self._supervisor = supervisor
        self._last_active: dict[str, int] = {}
        self._last_sync: dict[str, int] = {}
        self._syncing: dict[str, int] = {}
        # Users this process believes online/unavailable, for the timeout loop.
        self._tracked: dict[str, PresenceRow] = {}
        self._loop_running = False
        self._task: asyncio.Task[None] | None = None
        # Decisions read the current row and then write: serialise them, so a timeout
        # never overwrites a newer explicit change with a stale decision.
        self._lock = asyncio.Lock()

    def get_current_position(self) -> int:
        return self._store.get_current_position()

    # -- explicit updates -----------------------------------------------------------------------
    async def set_presence(
        self, user_id: str, state: str, status_msg: str | None
    ) -> None:
        if state not in STATES:
            raise invalid_param("presence must be online, unavailable or offline.")
        if status_msg is not None and len(status_msg) > MAX_STATUS_MSG_LENGTH:
            raise invalid_param("status_msg is too long.")
        now = self._clock.time_msec()
        if state == ONLINE:
            self._last_active[user_id] = now
        async with self._lock:
            await self._write(
                user_id, state, status_msg, currently_active=state == ONLINE
            )

    async def get_presence(
        self, requester: str, user_id: str, *, check: bool = True
    ) -> JsonDict:
        """`user_id`'s presence as `requester` sees it: 403 unless they share a room
        (`check=False`: the caller has decided). A user who never set or synced any
        presence is `offline`, as Synapse answers (spec: Presence)."""
        if check and requester != user_id:
            shared = await self._rooms.get_users_sharing_rooms(requester, [user_id])
            if user_id not in shared:
                raise forbidden("You cannot see this user's presence.")
        rows = await self._store.get_presence([user_id])
        row = rows.get(user_id)
        if row is None:
            return {"presence": OFFLINE}
        return self.format_content(row)

    async def get_presence_events(self, user_ids: Collection[str]) -> list[JsonDict]:
        """`m.presence` events of `user_ids` (offline for those with no presence)."""
        rows = await self._store.get_presence(user_ids)
        out = []
        for user_id in user_ids:
            row = rows.get(user_id)
            if row is None:
                content: JsonDict = {"presence": OFFLINE}
                out.append(
                    {"type": "m.presence", "sender": user_id, "content": content}
                )
            else:
                out.append(self.format_event(row))
        return out

    async def get_changed_presence_events(
        self, user_ids: Collection[str], from_id: int, to_id: int
    ) -> list[JsonDict]:
        """`m.presence` events of those of `user_ids` whose presence changed in
        (from_id, to_id]."""
        wanted = set(user_ids)
        if not wanted or to_id <= from_id:
            return []
        rows = await self._store.get_presence_changes(from_id, to_id)
        return [self.format_event(r) for r in rows if r.user_id in wanted]

    async def set_remote_presence(
        self,
        user_id: str,
        state: str,
        status_msg: str | None,
        *,
        last_active_ago: int,
        currently_active: bool,
    ) -> None:
        """A presence update for a remote user (an `m.presence` EDU from its server): as
        sent, never timed out here (the user's own server does that)."""
        if state not in STATES:
            return
        if status_msg is not None and len(status_msg) > MAX_STATUS_MSG_LENGTH:
            status_msg = status_msg[:MAX_STATUS_MSG_LENGTH]
        row = await self._store.set_presence(
            user_id,
            state=state,
            status_msg=status_msg,
            last_active_ts=self._clock.time_msec() - max(0, last_active_ago),
            currently_active=currently_active,
        )
        rooms = await self._rooms.get_joined_room_ids(user_id)
        self._notifier.notify(
            StreamKey.PRESENCE, row.stream_id, users=(user_id,), rooms=rooms
        )

    # -- joins -------------------------------------------------------------------------------------
    def on_join(self, room_id: str, user_id: str) -> None:
        """`user_id` joined `room_id`: the servers that now share a room learn each
        other's users' presence at once, not at their next change (as Synapse does)."""
        if self._federation is None:
            return
        with contextlib.suppress(RuntimeError):  # shutting down
            _ = self._supervisor.start(
                "presence-on-join",
                self._federation.send_presence_on_join(
                    room_id, user_id, self._pushes_for
                ),
            )

    async def _pushes_for(self, user_ids: Sequence[str]) -> list[JsonDict]:
        rows = await self._store.get_presence(user_ids)
        out: list[JsonDict] = []
        for user_id in user_ids:
            tracked = self._tracked.get(user_id)
            row = tracked if tracked is not None else rows.get(user_id)
            if row is not None:
                out.append({**self.format_content(row), "user_id": user_id})
        return out

    # -- activity from requests and syncs -------------------------------------------------------
    async def sync_started(self, user_id: str, set_presence: str | None) -> None:
        self._syncing[user_id] = self._syncing.get(user_id, 0) + 1
        now = self._clock.time_msec()
        self._last_sync[user_id] = now
        if set_presence == OFFLINE:
            return
        target = UNAVAILABLE if set_presence == UNAVAILABLE else ONLINE
        if target == ONLINE:
            self._last_active[user_id] = now
        async with self._lock:
            await self._apply_sync_presence(user_id, target, set_presence)

    async def _apply_sync_presence(
        self, user_id: str, target: str, set_presence: str | None
    ) -> None:
        current = await self._current(user_id)
        if current is not None and current.state == target:
            if target == ONLINE and not current.currently_active:
                await self._write(
                    user_id, ONLINE, current.status_msg, currently_active=True
                )
            return
        # Synapse keeps an explicit "unavailable" when a client syncs with the default
        # "online"; only "offline" (or nothing yet) is upgraded by a sync.
        if (
            current is not None
            and current.state == UNAVAILABLE
            and set_presence is None
        ):
            return
        status = current.status_msg if current is not None else None
        await self._write(user_id, target, status, currently_active=target == ONLINE)

    def sync_finished(self, user_id: str) -> None:
        left = self._syncing.get(user_id, 1) - 1
        if left <= 0:
            self._syncing.pop(user_id, None)
        else:
            self._syncing[user_id] = left
        self._last_sync[user_id] = self._clock.time_msec()

    # -- internals ---------------------------------------------------------------------------------
    async def _current(self, user_id: str) -> PresenceRow | None:
        tracked = self._tracked.get(user_id)
        if tracked is not None:
            return tracked
        return (await self._store.get_presence([user_id])).get(user_id)

    async def _write(
        self,
        user_id: str,
        state: str,
        status_msg: str | None,
        *,
        currently_active: bool,
    ) -> None:
        last_active = self._last_active.get(user_id, self._clock.time_msec())
        row = await self._store.set_presence(
            user_id,
            state=state,
            status_msg=status_msg,
            last_active_ts=last_active,
            currently_active=currently_active,
        )
        if state == OFFLINE:
            self._tracked.pop(user_id, None)
        else:
            self._tracked[user_id] = row
            self._ensure_loop()
        rooms = await self._rooms.get_joined_room_ids(user_id)
        self._notifier.notify(
            StreamKey.PRESENCE, row.stream_id, users=(user_id,), rooms=rooms
        )
        if self._federation is not None:
            await self._federation.send_presence(user_id, self.format_content(row))

    def _ensure_loop(self) -> None:
        if self._loop_running:
            return
        self._loop_running = True
        try:
            self._task = self._supervisor.start(
                "presence-timeouts", self._timeout_loop()
            )
        except RuntimeError:
            self._loop_running = False

    async def _timeout_loop(self) -> None:
        try:
            while self._tracked:
                await self._clock.sleep(_TICK_SECONDS)
                await self.handle_timeouts()
        finally:
            self._loop_running = False

    async def handle_timeouts(self) -> None:
        async with self._lock:
            for user_id in list(self._tracked):
                await self._timeout_user(user_id)

    async def _timeout_user(self, user_id: str) -> None:
        row = self._tracked.get(user_id)
        if row is None:
            return
        now = self._clock.time_msec()
        if user_id in self._syncing:
            last_sync = now
        else:
            last_sync = self._last_sync.get(user_id, row.last_active_ts)
        last_active = self._last_active.get(user_id, row.last_active_ts)
        if now - last_sync > OFFLINE_AFTER_MS:
            await self._write(user_id, OFFLINE, row.status_msg, currently_active=False)
        elif row.state == ONLINE and now - last_active > IDLE_AFTER_MS:
            await self._write(
                user_id, UNAVAILABLE, row.status_msg, currently_active=False
            )
        elif row.currently_active and now - last_active > ACTIVE_WINDOW_MS:
            await self._write(
                user_id, row.state, row.status_msg, currently_active=False
            )

    # -- formatting --------------------------------------------------------------------------------
    def format_content(self, row: PresenceRow) -> JsonDict:
        now = self._clock.time_msec()
        last_active = max(row.last_active_ts, self._last_active.get(row.user_id, 0))
        content: JsonDict = {
            "presence": row.state,
            "last_active_ago": max(0, now - last_active),
            "currently_active": row.currently_active,
        }
        if row.status_msg is not None:
            content["status_msg"] = row.status_msg
        return content

    def format_event(self, row: PresenceRow) -> JsonDict:
        return {
            "type": "m.presence",
            "sender": row.user_id,
            "content": self.format_content(row),
        }


class PresenceJoinLink:
    """The pipeline's notifier link to `PresenceService.on_join`, bound once it exists:
    every persisted join (local or remote) shares presence over federation."""

    def __init__(self) -> None:
        self._target: PresenceService | None = None

    def bind(self, target: PresenceService) -> None:
        self._target = target

    def on_new_event(
        self, event: Event, stream_ordering: int, *, extra_users: Iterable[str] = ()
    ) -> None:
        if (
            self._target is not None
            and event.type == "m.room.member"
            and event.state_key
            and event.content.get("membership") == "join"
        ):
            self._target.on_join(event.room_id, event.state_key)
