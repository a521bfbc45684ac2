"""The e-mail pusher (`kind: email`, spec: pushers/set): mails the user about
notifications they have not read after a delay (`email.notif_delay`).

Mails are batched and throttled: when the oldest unread notification is due, every
unread notification so far goes into one mail, and the next mail waits at least the
delay again. Notifications read before they are due are never mailed (read receipts
are checked when the mail is built). A failing SMTP server is retried with backoff.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from ranvier.services.push.content import NotificationDetails
from ranvier.storage.stores.push import PushActionRow
from ranvier.storage.stores.pushers import PusherRow
from ranvier.workers.push.base import PusherDeps, PusherWorker, max_position
from ranvier.workers.push.mailer import Mailer

logger = logging.getLogger(__name__)

BATCH = 50
RETRY_INITIAL_SECONDS = 10.0
RETRY_MAX_SECONDS = 3600.0
GIVE_UP_AFTER_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class EmailSettings:
    sender: str
    delay_ms: int
    app_name: str = "Ranvier"


def _describe(d: NotificationDetails) -> str:
    event = d.event
    content = event.content
    if d.redacted:
        return "(message deleted)"
    if event.type == "m.room.encrypted":
        return "(encrypted message)"
    if event.type == "m.room.member" and content.get("membership") == "invite":
        return "invited you to the room"
    body = content.get("body")
    if isinstance(body, str) and body:
        return body
    return f"({event.type})"


def _room_label(d: NotificationDetails) -> str:
    return d.room_name or d.room_alias or d.event.room_id


def compose_email(
    details: Sequence[NotificationDetails], *, to: str, settings: EmailSettings
) -> EmailMessage:
    """One mail about `details` (plain text and HTML)."""
    rooms: dict[str, list[NotificationDetails]] = {}
    for d in details:
        rooms.setdefault(_room_label(d), []).append(d)
    n = len(details)
    noun = "message" if n == 1 else "messages"
    if len(rooms) == 1:
        subject = f"[{settings.app_name}] {n} new {noun} in {next(iter(rooms))}"
    else:
        subject = f"[{settings.app_name}] {n} new {noun} in {len(rooms)} rooms"
    text: list[str] = [f"You have {n} unread {noun}:", ""]
    markup: list[str] = [f"<p>You have {n} unread {noun}:</p>"]
    for room, items in rooms.items():
        text.append(room)
        markup.append(f"<h3>{html.escape(room)}</h3><ul>")
        for d in items:
            who = d.sender_display_name or d.event.sender
            what = _describe(d)
            text.append(f"  {who}: {what}")
            markup.append(f"<li><b>{html.escape(who)}</b>: {html.escape(what)}</li>")
        text.append("")
        markup.append("</ul>")
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = settings.sender
    msg["To"] = to
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid()
    msg.set_content("\n".join(text))
    msg.add_alternative(
        "<html><body>" + "".join(markup) + "</body></html>", subtype="html"
    )
    return msg


class EmailPusher(PusherWorker):
    def __init__(
        self,
        row: PusherRow,
        deps: PusherDeps,
        mailer: Mailer,
        settings: EmailSettings,
    ) -> None:
        super().__init__(row, deps)
        self._mailer = mailer
        self._settings = settings
        self._last_sent: int | None = None

    async def run(self) -> None:
        while True:
            rows, last = await self._unread(BATCH)
            if not rows:
                if last > self._position:
                    self._position = last
                    await self._save()
                    continue
                await self._wait(None)
                continue
            wait_ms = self._due(rows) - self._deps.clock.time_msec()
            if wait_ms > 0:
                await self._wait(wait_ms / 1000)
                continue
            await self._send_with_retries(rows)
            self._position = max(last, max_position(rows, self._position))
            await self._save()

    def _due(self, rows: Sequence[PushActionRow]) -> int:
        delay = self._settings.delay_ms
        due = min(r.received_ts for r in rows) + delay
        if self._last_sent is not None:
            due = max(due, self._last_sent + delay)
        return due

    async def _send_with_retries(self, rows: Sequence[PushActionRow]) -> None:
        details = [
            d
            for d in [await self._deps.content.get_details(r.event_id) for r in rows]
            if d is not None
        ]
        if not details:
            return
        message = compose_email(details, to=self.row.pushkey, settings=self._settings)
        delay = RETRY_INITIAL_SECONDS
        while True:
            try:
                await self._mailer.send(message)
            except Exception as e:
                failing_for = self._failed()
                logger.warning("notification e-mail failed: %s", e)
                if failing_for >= GIVE_UP_AFTER_MS:
                    return
                await self._deps.clock.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            self._succeeded()
            self._last_sent = self._deps.clock.time_msec()
            return
