"""Unread notification counts (spec: Syncing > `unread_notifications`,
`unread_thread_notifications`; Push Gateway `counts.unread`).

Counts are the push actions after the user's read receipts (`storage.stores.push`), so a
read receipt clears them as soon as it is stored. Before counting up to a position,
wait until the evaluator has caught up with it, so a sync never shows an event in the
timeline without its notification.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ranvier.storage.stores.push import PushStore, RoomCounts


class EvaluationProgress(Protocol):
    async def wait_for(self, position: int, max_wait: float = 2.0) -> None: ...


class NotificationCountService:
    def __init__(self, store: PushStore, progress: EvaluationProgress) -> None:
        self._store = store
        self._progress = progress

    async def get_unread_notification_counts(
        self, user_id: str, floors: Mapping[str, int], to_pos: int
    ) -> dict[str, RoomCounts]:
        """Per room, unread notifications in (max(floor, read receipts), to_pos]."""
        if not floors:
            return {}
        await self._progress.wait_for(to_pos)
        return await self._store.get_notification_counts(user_id, floors, to_pos)

    async def get_badge_count(self, user_id: str) -> int:
        """Unread notifications across the user's joined rooms."""
        return await self._store.get_total_unread(user_id)
