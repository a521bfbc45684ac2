"""Typing notifications: in memory, with their own stream position (spec: Typing
Notifications).

A user types in a room until they say they stopped or their timeout (capped at
`MAX_TIMEOUT_MS`) runs out. Each change bumps the typing stream and records the position
per room, so a sync asks "which of my rooms changed after position P" and gets the full
current list of typers for those rooms (the `m.typing` event is a snapshot, not a delta).

Expiry runs in one supervised task that exists only while someone is typing, driven by
the injected clock. The position restarts at 0 with the process: a `since` from before a
restart is ahead of it, and the sync service then sends every room's current typers.
Federation (`m.typing` EDUs) hooks in later through `set_remote_typing`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import Any, Protocol

from ranvier.core.errors import forbidden
from ranvier.core.streams import StreamKey
from ranvier.services.notifier import Notifier
from ranvier.util.clock import Clock
from ranvier.util.supervisor import TaskSupervisor

logger = logging.getLogger(__name__)

MAX_TIMEOUT_MS = 30_000
DEFAULT_TIMEOUT_MS = 30_000
_EXPIRY_TICK_SECONDS = 1.0


class TypingFederation(Protocol):
    """Sends `m.typing` EDUs to the room's other servers (local users only)."""

    async def send_typing(self, room_id: str, user_id: str, typing: bool) -> None: ...


class RoomMembers(Protocol):
    async def is_joined(self, user_id: str, room_id: str) -> bool: ...


class TypingService:
    def __init__(
        self,
        clock: Clock,
        supervisor: TaskSupervisor,
        notifier: Notifier,
        members: RoomMembers,
        federation: TypingFederation | None = None,
    ) -> None:
        self._federation = federation
        self._clock = clock
        self._supervisor = supervisor
        self._notifier = notifier
        self._members = members
        self._position = 0
        # room -> user -> expiry (ms since epoch)
        self._typing: dict[str, dict[str, int]] = {}
        # room -> typing position of its last change
        self._changed_at: dict[str, int] = {}
        self._expiry_running = False
        self._task: asyncio.Task[None] | None = None
        # Called with (room_id, m.typing event) on every change (application
        # services' ephemeral events); must not block or raise.
        self.edu_listeners: list[Callable[[str, dict[str, Any]], None]] = []

    def get_current_position(self) -> int:
        return self._position

    async def set_typing(
        self, user_id: str, room_id: str, typing: bool, timeout_ms: int | None
    ) -> None:
        if not await self._members.is_joined(user_id, room_id):
            raise forbidden("You are not in this room.")
        if typing:
            timeout = DEFAULT_TIMEOUT_MS if timeout_ms is None else timeout_ms
            timeout = max(0, min(timeout, MAX_TIMEOUT_MS))
            self._start_typing(user_id, room_id, self._clock.time_msec() + timeout)
        else:
            self._stop_typing(user_id, room_id)
        if self._federation is not None:
            await self._federation.send_typing(room_id, user_id, typing)

    def _start_typing(self, user_id: str, room_id: str, expiry_ms: int) -> None:
        room = self._typing.setdefault(room_id, {})
        was_typing = user_id in room
        room[user_id] = expiry_ms
        if not was_typing:
            self._changed(room_id)
        self._ensure_expiry_task()

    def _stop_typing(self, user_id: str, room_id: str) -> None:
        room = self._typing.get(room_id)
        if room is None or user_id not in room:
            return
        del room[user_id]
        if not room:
            del self._typing[room_id]
        self._changed(room_id)

    def _changed(self, room_id: str) -> None:
        self._position += 1
        self._changed_at[room_id] = self._position
        self._notifier.notify(StreamKey.TYPING, self._position, rooms=(room_id,))
        if self.edu_listeners:
            edu = {
                "type": "m.typing",
                "room_id": room_id,
                "content": {"user_ids": self.get_typing_users(room_id)},
            }
            for listener in self.edu_listeners:
                listener(room_id, edu)

    # -- reading (sync) ----------------------------------------------------------------------
    def get_typing_users(self, room_id: str) -> list[str]:
        return sorted(self._typing.get(room_id, {}))

    def get_changed_rooms(
        self, room_ids: Collection[str], from_pos: int, to_pos: int
    ) -> dict[str, list[str]]:
        """Current typers of the rooms among `room_ids` that changed in
        (from_pos, to_pos]; a `from_pos` ahead of the stream (a restart) means all."""
        restarted = from_pos > self._position
        out: dict[str, list[str]] = {}
        for room_id in room_ids:
            changed = self._changed_at.get(room_id)
            if restarted:
                if room_id in self._typing:
                    out[room_id] = self.get_typing_users(room_id)
            elif changed is not None and from_pos < changed <= to_pos:
                out[room_id] = self.get_typing_users(room_id)
        return out

    # -- expiry ---------------------------------------------------------------------------------
    def _ensure_expiry_task(self) -> None:
        if self._expiry_running:
            return
        self._expiry_running = True
        try:
            self._task = self._supervisor.start("typing-expiry", self._expiry_loop())
        except RuntimeError:
            # Shutting down: nothing will be served any more, expiry does not matter.
            self._expiry_running = False

    async def _expiry_loop(self) -> None:
        try:
            while self._typing:
                await self._clock.sleep(_EXPIRY_TICK_SECONDS)
                self.expire()
        finally:
            self._expiry_running = False

    def expire(self) -> None:
        now = self._clock.time_msec()
        for room_id in list(self._typing):
            for user_id, expiry in list(self._typing[room_id].items()):
                if expiry <= now:
                    self._stop_typing(user_id, room_id)
