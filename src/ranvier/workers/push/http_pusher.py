"""The HTTP pusher: POSTs each notification to the user's push gateway (spec: Push
Gateway API) for one device, in stream order.

* Only notifications still unread when their turn comes are sent.
* A failure (no answer, timeout, 5xx, 429) is retried with exponential backoff, the
  pusher holding its position; after a day of failures the notification is dropped.
  Other 4xx answers drop the notification at once (retrying cannot help).
* A pushkey listed in `rejected` deletes the pusher (spec: "Homeservers must cease
  sending notification requests for these pushkeys and remove the associated pushers").
* After a read receipt, the new unread count is sent alone so the app's badge follows.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from ranvier.core.push.evaluator import PushActions
from ranvier.core.push.gateway import (
    EVENT_ID_ONLY,
    badge_body,
    gateway_device,
    notification_body,
    rejected_pushkeys,
)
from ranvier.storage.stores.push import PushActionRow
from ranvier.storage.stores.pushers import PusherRow
from ranvier.workers.push.base import PusherDeps, PusherWorker
from ranvier.workers.push.gateway_client import GatewayClient, GatewayError

logger = logging.getLogger(__name__)

BATCH = 20
RETRY_INITIAL_SECONDS = 1.0
RETRY_MAX_SECONDS = 600.0
GIVE_UP_AFTER_MS = 24 * 3600 * 1000


class Outcome(enum.Enum):
    SENT = "sent"
    DROPPED = "dropped"
    FAILED = "failed"
    REJECTED = "rejected"


class HttpPusher(PusherWorker):
    def __init__(self, row: PusherRow, deps: PusherDeps, client: GatewayClient) -> None:
        super().__init__(row, deps)
        self._client = client
        self._url = str(row.data.get("url", ""))
        self._event_id_only = row.data.get("format") == EVENT_ID_ONLY
        self._badge_dirty = False

    def on_read(self) -> None:
        self._badge_dirty = True
        super().on_read()

    async def run(self) -> None:
        while True:
            await self._wait(None)
            if not await self._process():
                return

    async def _process(self) -> bool:
        """Deliver everything pending; False once the pusher was rejected."""
        while True:
            start = self._position
            rows, last = await self._unread(BATCH)
            for row in rows:
                outcome = await self._deliver(row)
                if outcome is Outcome.REJECTED:
                    await self._deps.rejected(self.row.key)
                    return False
                self._position = row.stream_ordering
                await self._save()
            if last > self._position:
                self._position = last
                await self._save()
            if self._position == start:
                break
        if self._badge_dirty:
            self._badge_dirty = False
            await self._send_badge()
        return True

    def _device(self, tweaks: dict[str, Any] | None) -> dict[str, Any]:
        r = self.row
        return gateway_device(r.app_id, r.pushkey, r.pushkey_ts, r.data, tweaks)

    async def _deliver(self, row: PushActionRow) -> Outcome:
        details = await self._deps.content.get_details(row.event_id)
        if details is None:
            return Outcome.DROPPED
        tweaks = PushActions.from_actions(row.actions).tweaks()
        body = notification_body(
            event_id=details.event.event_id,
            event=details.event.data,
            device=self._device(tweaks),
            tweaks=tweaks,
            unread=await self._deps.counts.get_badge_count(row.user_id),
            user_id=row.user_id,
            event_id_only=self._event_id_only or details.redacted,
            sender_display_name=details.sender_display_name,
            room_name=details.room_name,
            room_alias=details.room_alias,
        )
        return await self._post_with_retries(body)

    async def _send_badge(self) -> None:
        unread = await self._deps.counts.get_badge_count(self.row.user_id)
        outcome = await self._post(badge_body(device=self._device(None), unread=unread))
        if outcome is Outcome.REJECTED:
            await self._deps.rejected(self.row.key)

    async def _post_with_retries(self, body: dict[str, Any]) -> Outcome:
        delay = RETRY_INITIAL_SECONDS
        while True:
            outcome = await self._post(body)
            if outcome is not Outcome.FAILED:
                if outcome is Outcome.SENT:
                    self._succeeded()
                return outcome
            failing_for = self._failed()
            await self._save()
            if failing_for >= GIVE_UP_AFTER_MS:
                logger.warning("pusher %s: giving up on a notification", self._url)
                return Outcome.DROPPED
            await self._deps.clock.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)

    async def _post(self, body: dict[str, Any]) -> Outcome:
        try:
            status, answer = await self._client.post_json(self._url, body)
        except GatewayError as e:
            logger.info("push gateway %s unreachable: %s", self._url, e)
            return Outcome.FAILED
        if 200 <= status < 300:
            if self.row.pushkey in rejected_pushkeys(answer):
                logger.info("push gateway %s rejected a pushkey", self._url)
                return Outcome.REJECTED
            return Outcome.SENT
        if status in (408, 429) or status >= 500:
            logger.info("push gateway %s answered %d", self._url, status)
            return Outcome.FAILED
        logger.warning("push gateway %s refused a notification (%d)", self._url, status)
        return Outcome.DROPPED
