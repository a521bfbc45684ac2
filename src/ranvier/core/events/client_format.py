"""PDU -> client event (spec: C-S API > Events > Room Event Format, `ClientEvent`).

One function for every read path (`/messages`, `/context`, `/event`, `/state`, sync):
the caller looks up what the PDU alone does not say (the redaction that applies, the
replaced state, the reader's transaction ID) and passes it in.

* A redacted event is served in its redacted form (the room version's redaction
  algorithm) with `unsigned.redacted_because` holding the redaction event and
  `unsigned.redacted_by` its ID (as Synapse serves it).
* `unsigned.transaction_id` is only for the device that sent the event.
* `unsigned.prev_content` / `prev_sender` / `replaces_state` describe the state event
  this one replaced.
* Since room v11 `redacts` lives in `content`; clients still read the top-level key, so
  both are served (as Synapse does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ranvier.core.events.event import Event
from ranvier.core.events.redaction import redact_pdu

JsonDict = dict[str, Any]

__all__ = ["ReplacedState", "client_event"]


class ReplacedState:
    """The state event a state event replaced: feeds `unsigned.prev_content`."""

    __slots__ = ("content", "event_id", "sender")

    def __init__(self, event_id: str, sender: str, content: Mapping[str, Any]) -> None:
        self.event_id = event_id
        self.sender = sender
        self.content = content


def client_event(
    event: Event,
    *,
    now_ms: int,
    include_room_id: bool = True,
    redacted_because: JsonDict | None = None,
    replaced_state: ReplacedState | None = None,
    transaction_id: str | None = None,
) -> JsonDict:
    """The client form of `event`.

    `redacted_because` is the redaction event already in client form (its presence means
    the event is redacted); `transaction_id` must only be given to the sending device.
    """
    pdu: Mapping[str, Any] = (
        redact_pdu(event.data, event.room_version)
        if redacted_because is not None
        else event.data
    )
    content = pdu.get("content")
    out: JsonDict = {
        "event_id": event.event_id,
        "type": event.type,
        "sender": event.sender,
        "origin_server_ts": event.origin_server_ts,
        "content": content if isinstance(content, dict) else {},
    }
    if include_room_id:
        out["room_id"] = event.room_id
    if event.is_state():
        out["state_key"] = event.state_key
    if event.type == "m.room.redaction":
        redacts = event.redacts
        if redacts is not None and redacted_because is None:
            out["redacts"] = redacts
    unsigned: JsonDict = {"age": max(0, now_ms - event.origin_server_ts)}
    if redacted_because is not None:
        unsigned["redacted_because"] = redacted_because
        because_id = redacted_because.get("event_id")
        if isinstance(because_id, str):
            # Not in the spec's schema; Synapse serves it and clients (and SyTest) read it.
            unsigned["redacted_by"] = because_id
    if transaction_id is not None:
        unsigned["transaction_id"] = transaction_id
    if replaced_state is not None:
        unsigned["replaces_state"] = replaced_state.event_id
        unsigned["prev_sender"] = replaced_state.sender
        unsigned["prev_content"] = dict(replaced_state.content)
    out["unsigned"] = unsigned
    return out
