"""Receipts and read markers (spec: Receipts, Read and unread markers).

* `m.read` is shared with the room; `m.read.private` only with the user's own devices.
* `m.fully_read` is not a receipt: it is the `m.fully_read` room account data entry.
* Threaded receipts carry `thread_id` ("main" or a thread root's event ID).

A receipt only moves forward (see the store). Writes wake the room's syncs (private ones
only the user's own).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from ranvier.core.errors import forbidden, invalid_param, not_found
from ranvier.core.streams import StreamKey
from ranvier.services.account_data import AccountDataService
from ranvier.services.notifier import Notifier
from ranvier.storage.stores.receipts import Receipt, ReceiptStore
from ranvier.util.clock import Clock

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]

READ = "m.read"
READ_PRIVATE = "m.read.private"
FULLY_READ = "m.fully_read"
RECEIPT_TYPES = frozenset({READ, READ_PRIVATE})


class ReceiptRoomAccess(Protocol):
    async def is_joined(self, user_id: str, room_id: str) -> bool: ...

    async def get_event_room_and_position(
        self, event_id: str
    ) -> tuple[str, int] | None:
        """(room_id, stream_ordering) of a servable event, or None."""
        ...


class ReceiptFederation(Protocol):
    """Sends public receipts of local users as `m.receipt` EDUs."""

    async def send_receipt(
        self,
        room_id: str,
        receipt_type: str,
        user_id: str,
        event_ids: Collection[str],
        data: Mapping[str, Any],
    ) -> None: ...


class ReceiptListener(Protocol):
    """Told about a user's own new read receipt (push: counts changed)."""

    async def on_receipt(self, user_id: str, room_id: str) -> None: ...


class ReceiptService:
    def __init__(
        self,
        store: ReceiptStore,
        account_data: AccountDataService,
        rooms: ReceiptRoomAccess,
        notifier: Notifier,
        clock: Clock,
        federation: ReceiptFederation | None = None,
    ) -> None:
        self._federation = federation
        self._store = store
        self._account_data = account_data
        self._rooms = rooms
        self._notifier = notifier
        self._clock = clock
        self.listeners: list[ReceiptListener] = []
        # Called with (room_id, m.receipt event) for each public receipt
        # (application services' ephemeral events); must not block or raise.
        self.edu_listeners: list[Callable[[str, JsonDict], None]] = []

    def get_current_position(self) -> int:
        return self._store.get_current_position()

    async def set_receipt(
        self,
        user_id: str,
        room_id: str,
        receipt_type: str,
        event_id: str,
        thread_id: str | None = None,
    ) -> None:
        if receipt_type not in (*RECEIPT_TYPES, FULLY_READ):
            raise invalid_param(
                "Receipt type must be one of m.read, m.read.private, m.fully_read."
            )
        if thread_id is not None:
            if receipt_type == FULLY_READ:
                raise invalid_param("m.fully_read cannot be threaded.")
            if thread_id != "main" and not thread_id.startswith("$"):
                raise invalid_param("thread_id must be 'main' or an event ID.")
        position = await self._check(user_id, room_id, event_id)
        if receipt_type == FULLY_READ:
            await self._set_fully_read(user_id, room_id, event_id)
            return
        await self._store_receipt(
            user_id, room_id, receipt_type, event_id, position, thread_id
        )

    async def set_read_markers(
        self,
        user_id: str,
        room_id: str,
        *,
        fully_read: str | None,
        read: str | None,
        read_private: str | None,
    ) -> None:
        checked: dict[str, int] = {}
        for eid in (fully_read, read, read_private):
            if eid is not None and eid not in checked:
                checked[eid] = await self._check(user_id, room_id, eid)
        if fully_read is not None:
            await self._set_fully_read(user_id, room_id, fully_read)
        if read is not None:
            await self._store_receipt(user_id, room_id, READ, read, checked[read], None)
        if read_private is not None:
            await self._store_receipt(
                user_id,
                room_id,
                READ_PRIVATE,
                read_private,
                checked[read_private],
                None,
            )

    async def _check(self, user_id: str, room_id: str, event_id: str) -> int:
        if not await self._rooms.is_joined(user_id, room_id):
            raise forbidden("You are not in this room.")
        found = await self._rooms.get_event_room_and_position(event_id)
        if found is None or found[0] != room_id:
            raise not_found("Event not found.")
        return found[1]

    async def _set_fully_read(self, user_id: str, room_id: str, event_id: str) -> None:
        await self._account_data.set_server_account_data(
            user_id, room_id, FULLY_READ, {"event_id": event_id}
        )

    async def _store_receipt(
        self,
        user_id: str,
        room_id: str,
        receipt_type: str,
        event_id: str,
        event_position: int,
        thread_id: str | None,
    ) -> None:
        data: JsonDict = {"ts": self._clock.time_msec()}
        if thread_id is not None:
            data["thread_id"] = thread_id
        position = await self._store.upsert_receipt(
            room_id=room_id,
            receipt_type=receipt_type,
            user_id=user_id,
            thread_id=thread_id,
            event_id=event_id,
            event_stream_ordering=event_position,
            data=data,
        )
        if position is None:
            return
        for listener in self.listeners:
            try:
                await listener.on_receipt(user_id, room_id)
            except Exception:
                logger.exception("receipt listener %r failed", listener)
        if receipt_type == READ_PRIVATE:
            self._notifier.notify(StreamKey.RECEIPTS, position, users=(user_id,))
        else:
            self._notifier.notify(StreamKey.RECEIPTS, position, rooms=(room_id,))
            edu: JsonDict = {
                "type": "m.receipt",
                "room_id": room_id,
                "content": {event_id: {receipt_type: {user_id: data}}},
            }
            for edu_listener in self.edu_listeners:
                edu_listener(room_id, edu)
            if self._federation is not None:
                await self._federation.send_receipt(
                    room_id, receipt_type, user_id, [event_id], data
                )

    # -- reading (sync) ------------------------------------------------------------------------
    async def get_receipt_events(
        self, user_id: str, room_ids: Collection[str], from_id: int, to_id: int
    ) -> dict[str, JsonDict]:
        """Per room, the `m.receipt` ephemeral event of receipts in (from_id, to_id]."""
        rows = await self._store.get_receipts_for_rooms(room_ids, from_id, to_id)
        return build_receipt_events(user_id, rows)

    async def get_read_positions(
        self, user_id: str, room_ids: Collection[str]
    ) -> dict[str, int]:
        return await self._store.get_read_positions(user_id, room_ids)


def build_receipt_events(
    user_id: str, rows: Collection[Receipt]
) -> dict[str, JsonDict]:
    by_room: dict[str, JsonDict] = {}
    for r in rows:
        if r.receipt_type == READ_PRIVATE and r.user_id != user_id:
            continue
        content = by_room.setdefault(r.room_id, {})
        per_type = content.setdefault(r.event_id, {}).setdefault(r.receipt_type, {})
        per_type[r.user_id] = dict(r.data)
    return {
        room_id: {"type": "m.receipt", "content": content}
        for room_id, content in by_room.items()
    }
