"""What pushers show about an event: room name falls back to the canonical alias, and an
invite to a room this server is not in is named from its stripped state (as Synapse)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ranvier.core.events.event import Event, StateKey
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.services.push.content import NotificationContent
from ranvier.storage.stores.event_rows import StoredEvent

JsonDict = dict[str, Any]
RV = KNOWN_ROOM_VERSIONS["10"]
ROOM = "!r:remote.example"
BOB = "@bob:here.example"
CAROL = "@carol:remote.example"


def ev(event_id: str, etype: str, content: JsonDict, **kw: Any) -> Event:
    data: JsonDict = {
        "type": etype,
        "room_id": ROOM,
        "sender": CAROL,
        "content": content,
        "prev_events": ["$prev"],
        **kw,
    }
    return Event(data, event_id, RV)


class Sources:
    def __init__(self, event: Event, state: dict[StateKey, Event]) -> None:
        self.event = event
        self.state = state

    async def get_event(self, event_id: str) -> StoredEvent | None:
        return StoredEvent(self.event, 1) if event_id == self.event.event_id else None

    async def get_current_state_events(
        self, room_id: str, keys: Collection[StateKey]
    ) -> dict[StateKey, Event]:
        return {k: v for k, v in self.state.items() if k in keys}


async def details(event: Event, state: dict[StateKey, Event]) -> tuple[Any, Any]:
    sources = Sources(event, state)
    got = await NotificationContent(sources, sources).get_details(event.event_id)
    assert got is not None
    return got.room_name, got.room_alias


async def test_room_name_falls_back_to_the_canonical_alias() -> None:
    message = ev("$m", "m.room.message", {"body": "hi"})
    alias = ev("$a", "m.room.canonical_alias", {"alias": "#tea:x"}, state_key="")
    name = ev("$n", "m.room.name", {"name": "Tea"}, state_key="")
    key_alias: StateKey = ("m.room.canonical_alias", "")
    key_name: StateKey = ("m.room.name", "")
    assert await details(message, {}) == (None, None)
    assert await details(message, {key_alias: alias}) == ("#tea:x", "#tea:x")
    assert await details(message, {key_alias: alias, key_name: name}) == (
        "Tea",
        "#tea:x",
    )


async def test_remote_invite_is_named_from_its_stripped_state() -> None:
    stripped = [
        {
            "type": "m.room.name",
            "state_key": "",
            "sender": CAROL,
            "content": {"name": "Far"},
        },
        {
            "type": "m.room.canonical_alias",
            "state_key": "",
            "sender": CAROL,
            "content": {"alias": "#far:remote.example"},
        },
    ]
    invite = ev(
        "$i",
        "m.room.member",
        {"membership": "invite"},
        state_key=BOB,
        unsigned={"invite_room_state": stripped},
    )
    assert await details(invite, {}) == ("Far", "#far:remote.example")
    # Only invites: other events' unsigned data is not trusted for this.
    message = ev("$m", "m.room.message", {}, unsigned={"invite_room_state": stripped})
    assert await details(message, {}) == (None, None)
