"""Stored events -> the events of a sync response.

The client form comes from the rooms' serialiser (the one every read path uses; it looks
up redactions and replaced state in batches); sync then applies the filter's
`event_format` (the federation form is the PDU with `event_id` and the client
`unsigned`) and `event_fields` (to either form).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from ranvier.core.filters import Filter, only_fields
from ranvier.storage.stores.event_rows import StoredEvent

JsonDict = dict[str, Any]


class EventSource(Protocol):
    async def get_events(self, event_ids: Iterable[str]) -> dict[str, StoredEvent]: ...


class ClientSerializer(Protocol):
    async def serialize(
        self,
        events: Sequence[StoredEvent],
        *,
        user_id: str | None = None,
        device_id: str | None = None,
        include_room_id: bool = True,
    ) -> list[JsonDict]: ...


class EventSerializer:
    def __init__(self, client: ClientSerializer) -> None:
        self._client = client

    async def serialize(
        self,
        stored: Sequence[StoredEvent],
        *,
        user_id: str,
        device_id: str | None,
        event_filter: Filter,
    ) -> list[JsonDict]:
        if not stored:
            return []
        out = await self._client.serialize(
            stored, user_id=user_id, device_id=device_id, include_room_id=False
        )
        if event_filter.event_format == "federation":
            out = [_federation_form(s, ev) for s, ev in zip(stored, out, strict=True)]
        fields = event_filter.event_fields
        if fields is not None:
            out = [only_fields(ev, fields) for ev in out]
        return out


def _federation_form(stored: StoredEvent, client: JsonDict) -> JsonDict:
    """`event_format: federation` (spec: Filtering): the event as servers exchange it
    (the PDU), plus what a client still needs and the PDU lacks since room v3: its
    `event_id`, and the client form's `unsigned` (age, transaction ID, redactions)."""
    pdu = dict(stored.event.data)
    pdu["event_id"] = stored.event_id
    unsigned = client.get("unsigned")
    if unsigned is not None:
        pdu["unsigned"] = unsigned
    return pdu


def strip_state_event(event: JsonDict) -> JsonDict:
    """The stripped form (spec: Stripped state) of a client or PDU event."""
    return {
        "type": event.get("type"),
        "state_key": event.get("state_key"),
        "sender": event.get("sender"),
        "content": event.get("content", {}),
    }
