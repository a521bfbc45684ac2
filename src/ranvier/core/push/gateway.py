"""Push Gateway request bodies (spec: Push Gateway API, `POST /_matrix/push/v1/notify`).

`data` of the pusher goes to the gateway minus `url` (spec: pushers/set, "Servers MUST
forward the entire content including `format` and any custom keys but excluding
`url`"). With `format: event_id_only` only the event and room IDs, counts, priority
and devices are sent (spec); the full format also carries Synapse's legacy `id` and
`membership` fields. Priority is high when the notification makes a sound or is a
highlight, or the event is encrypted (the app cannot tell what it is).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JsonDict = dict[str, Any]

EVENT_ID_ONLY = "event_id_only"


def gateway_device(
    app_id: str,
    pushkey: str,
    pushkey_ts_ms: int,
    data: Mapping[str, Any],
    tweaks: Mapping[str, Any] | None = None,
) -> JsonDict:
    out: JsonDict = {
        "app_id": app_id,
        "pushkey": pushkey,
        "pushkey_ts": pushkey_ts_ms // 1000,
        "data": {k: v for k, v in data.items() if k != "url"},
    }
    if tweaks is not None:
        out["tweaks"] = dict(tweaks)
    return out


def priority(event_type: str, tweaks: Mapping[str, Any]) -> str:
    if (
        event_type == "m.room.encrypted"
        or tweaks.get("highlight")
        or tweaks.get("sound")
    ):
        return "high"
    return "low"


def _counts(unread: int) -> JsonDict:
    # Zero counts are omitted (spec: Counts).
    return {"unread": unread} if unread > 0 else {}


def notification_body(
    *,
    event_id: str,
    event: Mapping[str, Any],
    device: JsonDict,
    tweaks: Mapping[str, Any],
    unread: int,
    user_id: str,
    event_id_only: bool,
    sender_display_name: str | None = None,
    room_name: str | None = None,
    room_alias: str | None = None,
) -> JsonDict:
    """The body notifying a gateway about one event (its PDU JSON, which holds no
    event ID since room v3) for one device."""
    event_type = str(event.get("type", ""))
    note: JsonDict = {
        "event_id": event_id,
        "room_id": event.get("room_id"),
        "counts": _counts(unread),
        "prio": priority(event_type, tweaks),
        "devices": [device],
    }
    if event_id_only:
        return {"notification": note}
    # `id` is the pre-r0 name of `event_id`; Synapse still sends both and SyTest (and
    # older gateways) read `id`.
    note["id"] = event_id
    note["type"] = event_type
    note["sender"] = event.get("sender")
    content = event.get("content")
    if isinstance(content, Mapping) and content:
        note["content"] = dict(content)
    if event_type == "m.room.member":
        note["user_is_target"] = event.get("state_key") == user_id
        # Synapse also lifts the membership out of the content (older gateways read it).
        if isinstance(content, Mapping) and isinstance(content.get("membership"), str):
            note["membership"] = content["membership"]
    for key, value in (
        ("sender_display_name", sender_display_name),
        ("room_name", room_name),
        ("room_alias", room_alias),
    ):
        if value is not None:
            note[key] = value
    return {"notification": note}


def badge_body(*, device: JsonDict, unread: int) -> JsonDict:
    """A counts-only update (after a read receipt). Unlike event notifications it
    carries `unread: 0`, which is how an app learns to clear its badge."""
    return {
        "notification": {
            "prio": "low",
            "counts": {"unread": unread},
            "devices": [device],
        }
    }


def rejected_pushkeys(response: Any) -> list[str]:
    """The `rejected` pushkeys of a gateway's answer (anything malformed: none)."""
    if not isinstance(response, Mapping):
        return []
    rejected = response.get("rejected")
    if not isinstance(rejected, list):
        return []
    return [k for k in rejected if isinstance(k, str)]
