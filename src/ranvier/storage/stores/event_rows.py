"""Row types shared by the event, state and room stores, and the event row decoder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ranvier.core.events.event import Event, StateKey
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS

__all__ = [
    "EVENT_COLUMNS",
    "AliasTakenError",
    "CurrentStateDelta",
    "EventToPersist",
    "MembershipChange",
    "NewRoom",
    "NewStateGroup",
    "PersistBatch",
    "StoredEvent",
    "row_to_stored_event",
]


class AliasTakenError(Exception):
    """A batch's new alias already exists (another request took it first); nothing of
    the batch was written."""

    def __init__(self, alias: str) -> None:
        super().__init__(f"room alias {alias} already exists")
        self.alias = alias


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored, with the metadata read paths need."""

    event: Event
    stream_ordering: int
    outlier: bool = False
    rejected_reason: str | None = None
    soft_failed: bool = False
    # The redaction event that applies to this event, if any.
    redacted_by: str | None = None
    # For state events: the state event this one replaced (for `prev_content`).
    replaces_state: str | None = None
    txn_id: str | None = None
    # '' for local sends without a device; None for events not sent through /send.
    device_id: str | None = None

    @property
    def event_id(self) -> str:
        return self.event.event_id

    @property
    def depth(self) -> int:
        return self.event.depth

    @property
    def is_servable(self) -> bool:
        """Part of the visible timeline: not an outlier, not rejected, not soft-failed."""
        return not (
            self.outlier or self.soft_failed or self.rejected_reason is not None
        )


EVENT_COLUMNS = (
    "e.stream_ordering, e.event_id, e.room_version, e.outlier, e.rejected_reason, "
    "e.soft_failed, e.redacted_by, e.replaces_state, e.txn_id, e.device_id, e.json"
)


def row_to_stored_event(row: Sequence[Any]) -> StoredEvent:
    (stream, event_id, version, outlier, rejected, soft, redacted_by, replaces, txn_id,
     device_id, raw) = row  # fmt: skip
    data = orjson.loads(raw)
    return StoredEvent(
        event=Event(data, event_id, KNOWN_ROOM_VERSIONS[version]),
        stream_ordering=int(stream),
        outlier=bool(outlier),
        rejected_reason=rejected,
        soft_failed=bool(soft),
        redacted_by=redacted_by,
        replaces_state=replaces,
        txn_id=txn_id,
        device_id=device_id,
    )


@dataclass(frozen=True, slots=True)
class NewStateGroup:
    """A state group to write: a snapshot (prev_group None: `entries` is the whole state)
    or a delta on `prev_group` (`entries` maps changed keys; None removes a key)."""

    id: int
    room_id: str
    prev_group: int | None
    chain_length: int
    entries: Mapping[StateKey, str | None]


@dataclass(frozen=True, slots=True)
class EventToPersist:
    event: Event
    stream_ordering: int
    received_ts: int
    outlier: bool = False
    rejected_reason: str | None = None
    soft_failed: bool = False
    # None before: the empty state (the create event). Outliers have neither.
    state_group_before: int | None = None
    state_group_after: int | None = None
    new_state_groups: Sequence[NewStateGroup] = ()
    replaces_state: str | None = None
    txn_id: str | None = None
    device_id: str | None = None
    # For a redaction event: the target it may redact (checked by the caller: same
    # server, or the sender had the redact level). None: the redaction does not apply.
    applies_redaction_to: str | None = None
    # The event is stored as an accepted outlier and now joins the DAG (de-outliering):
    # its row is upgraded in place (new stream position, status, state groups); its
    # JSON, edges and auth rows are already there.
    upgrades_outlier: bool = False


@dataclass(frozen=True, slots=True)
class MembershipChange:
    room_id: str
    user_id: str
    event_id: str
    membership: str
    sender: str
    prev_membership: str | None


@dataclass(frozen=True, slots=True)
class CurrentStateDelta:
    """A change of a room's current state, seen at `stream_ordering`."""

    room_id: str
    stream_ordering: int
    # key -> new event ID (None: removed), key -> previous event ID.
    changed: Mapping[StateKey, str | None]
    previous: Mapping[StateKey, str | None]
    memberships: Sequence[MembershipChange] = ()


@dataclass(frozen=True, slots=True)
class NewRoom:
    room_id: str
    room_version: str
    creator: str
    created_ts: int
    is_public: bool = False


@dataclass(frozen=True, slots=True)
class PersistBatch:
    """Everything one ingest step writes, in one transaction."""

    room_id: str
    events: Sequence[EventToPersist]
    # Replaces the room's forward extremities (None: unchanged).
    forward_extremities: Sequence[str] | None = None
    # One delta per event that changed the current state, in order.
    current_state: Sequence[CurrentStateDelta] = ()
    new_room: NewRoom | None = None
    new_aliases: Sequence[tuple[str, str]] = field(default_factory=tuple)
