"""Serialise stored events for clients: the one serialiser of every read path and sync.

Looks up, in one batch, what `core.events.client_format.client_event` needs besides the
PDU: the redaction events of redacted events (served as `unsigned.redacted_because`, the
event itself redacted) and the state events that state events replaced (`prev_content`,
redacted too if they were). `unsigned.transaction_id` goes only to the sending device. With a `RelationBundler`,
aggregated relations are bundled as `unsigned.m.relations` (`services/rooms/bundled.py`),
also in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ranvier.core.events.client_format import ReplacedState, client_event
from ranvier.core.events.redaction import redact_content
from ranvier.services.rooms.bundled import RelationBundler
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.storage.stores.events import EventStore
from ranvier.util.clock import Clock

__all__ = ["ClientEventSerializer"]

JsonDict = dict[str, Any]


class ClientEventSerializer:
    def __init__(
        self,
        events: EventStore,
        clock: Clock,
        *,
        bundler: RelationBundler | None = None,
    ) -> None:
        self._events = events
        self._clock = clock
        self._bundler = bundler

    async def serialize(
        self,
        events: Sequence[StoredEvent],
        *,
        user_id: str | None = None,
        device_id: str | None = None,
        include_room_id: bool = True,
        bundle_relations: bool = True,
    ) -> list[JsonDict]:
        """Client events for `events`, in order. `user_id`/`device_id` identify the
        reader (for `transaction_id` and `current_user_participated`)."""
        extra_ids = {e.redacted_by for e in events if e.redacted_by is not None}
        extra_ids |= {e.replaces_state for e in events if e.replaces_state is not None}
        extra = await self._events.get_events(extra_ids) if extra_ids else {}
        redactions_needed = {
            s.redacted_by for s in extra.values() if s.redacted_by is not None
        } - extra.keys()
        if redactions_needed:
            extra.update(await self._events.get_events(redactions_needed))
        now = self._clock.time_msec()
        out = [
            self._one(e, extra, now, user_id, device_id, include_room_id)
            for e in events
        ]
        if self._bundler is not None and bundle_relations and events:
            await self._add_bundles(events, out, user_id, device_id, include_room_id)
        return out

    async def _add_bundles(
        self,
        events: Sequence[StoredEvent],
        out: list[JsonDict],
        user_id: str | None,
        device_id: str | None,
        include_room_id: bool,
    ) -> None:
        assert self._bundler is not None

        async def plain(bundled: Sequence[StoredEvent]) -> list[JsonDict]:
            return await self.serialize(
                bundled,
                user_id=user_id,
                device_id=device_id,
                include_room_id=include_room_id,
                bundle_relations=False,
            )

        bundles = await self._bundler.get_bundles(
            events, user_id=user_id, load=self._events.get_events, serialize=plain
        )
        for stored, client in zip(events, out, strict=True):
            bundle = bundles.get(stored.event_id)
            if bundle:
                client.setdefault("unsigned", {})["m.relations"] = bundle

    async def serialize_one(
        self,
        event: StoredEvent,
        *,
        user_id: str | None = None,
        device_id: str | None = None,
        include_room_id: bool = True,
    ) -> JsonDict:
        return (
            await self.serialize(
                [event],
                user_id=user_id,
                device_id=device_id,
                include_room_id=include_room_id,
            )
        )[0]

    def _one(
        self,
        stored: StoredEvent,
        extra: dict[str, StoredEvent],
        now: int,
        user_id: str | None,
        device_id: str | None,
        include_room_id: bool,
    ) -> JsonDict:
        ev = stored.event
        because: JsonDict | None = None
        if stored.redacted_by is not None:
            redaction = extra.get(stored.redacted_by)
            because = (
                client_event(
                    redaction.event, now_ms=now, include_room_id=include_room_id
                )
                if redaction is not None
                else {}
            )
        replaced: ReplacedState | None = None
        if stored.replaces_state is not None and stored.replaces_state in extra:
            prev = extra[stored.replaces_state]
            content = prev.event.content
            if prev.redacted_by is not None:
                content = redact_content(
                    prev.event.type, content, prev.event.room_version
                )
            replaced = ReplacedState(prev.event_id, prev.event.sender, content)
        txn_id: str | None = None
        if (
            stored.txn_id is not None
            and user_id == ev.sender
            and (device_id or "") == (stored.device_id or "")
        ):
            txn_id = stored.txn_id
        return client_event(
            ev,
            now_ms=now,
            include_room_id=include_room_id,
            redacted_because=because,
            replaced_state=replaced,
            transaction_id=txn_id,
        )
