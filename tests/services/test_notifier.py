"""The notifier wakes exactly the listeners a stream movement concerns, and never before
the position is readable."""

from __future__ import annotations

import asyncio

from ranvier.core.events.event import Event
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.core.streams import StreamKey, SyncToken
from ranvier.services.notifier import (
    Notifier,
    PositionSource,
    StreamSources,
    device_key,
    room_key,
    user_key,
)
from ranvier.util.clock import FakeClock


def _notifier(positions: dict[StreamKey, int]) -> tuple[Notifier, FakeClock]:
    clock = FakeClock()

    def source(key: StreamKey) -> PositionSource:
        return lambda: positions.get(key, 0)

    sources = StreamSources({k: source(k) for k in StreamKey})
    return Notifier(clock, sources), clock


async def test_wakes_only_affected_listeners() -> None:
    positions = {StreamKey.TYPING: 0}
    notifier, _clock = _notifier(positions)
    alice = notifier.listen()
    alice.set_keys([user_key("@a:x"), room_key("!r1:x")])
    bob = notifier.listen()
    bob.set_keys([user_key("@b:x"), room_key("!r2:x")])
    carol_phone = notifier.listen()
    carol_phone.set_keys([device_key("@c:x", "PHONE")])
    assert notifier.listener_count == 3

    positions[StreamKey.TYPING] = 1
    notifier.notify(StreamKey.TYPING, 1, rooms=["!r1:x"])
    assert alice.is_woken()
    assert not bob.is_woken()
    positions[StreamKey.TYPING] = 2
    notifier.notify(StreamKey.TO_DEVICE, 0, devices=[("@c:x", "LAPTOP")])
    assert not carol_phone.is_woken()
    notifier.notify(StreamKey.TO_DEVICE, 0, devices=[("@c:x", "PHONE")])
    assert carol_phone.is_woken()
    for listener in (alice, bob, carol_phone):
        listener.close()
    assert notifier.listener_count == 0


async def test_wait_returns_on_wake_and_times_out_with_the_clock() -> None:
    notifier, clock = _notifier({})
    listener = notifier.listen()
    listener.set_keys([user_key("@a:x")])
    waiter = asyncio.ensure_future(listener.wait(30))
    await asyncio.sleep(0)
    assert not waiter.done()
    notifier.notify(StreamKey.ACCOUNT_DATA, 0, users=["@a:x"])
    assert await waiter is True

    listener.rearm()
    waiter = asyncio.ensure_future(listener.wait(30))
    for _ in range(5):  # let the waiter reach its clock sleep
        await asyncio.sleep(0)
    clock.advance(31)
    assert await waiter is False
    listener.close()


async def test_out_of_order_completion_is_held_back() -> None:
    positions = {StreamKey.EVENTS: 9}
    notifier, _clock = _notifier(positions)
    room_b = notifier.listen()
    room_b.set_keys([room_key("!b:x")])
    # Position 11 (room B) is persisted but 10 (room A) is still in flight: the
    # readable position stays at 9, so waking B's listener now would show it nothing.
    notifier.notify(StreamKey.EVENTS, 11, rooms=["!b:x"])
    assert not room_b.is_woken()
    positions[StreamKey.EVENTS] = 11
    notifier.notify(StreamKey.EVENTS, 10, rooms=["!a:x"])
    assert room_b.is_woken()
    assert notifier.current_token() == SyncToken(events=11)
    room_b.close()


async def test_membership_events_wake_the_target() -> None:
    positions = {StreamKey.EVENTS: 5}
    notifier, _clock = _notifier(positions)
    invitee = notifier.listen()
    invitee.set_keys([user_key("@bob:x")])
    event = Event(
        {
            "type": "m.room.member",
            "state_key": "@bob:x",
            "sender": "@alice:x",
            "room_id": "!r:x",
            "content": {"membership": "invite"},
        },
        "$e",
        KNOWN_ROOM_VERSIONS["10"],
    )
    notifier.on_new_event(event, 5)
    assert invitee.is_woken()
    invitee.close()


async def test_close_answers_waiting_and_later_listeners() -> None:
    notifier, _clock = _notifier({})
    listener = notifier.listen()
    listener.set_keys([user_key("@a:x")])
    waiter = asyncio.ensure_future(listener.wait(30))
    await asyncio.sleep(0)
    notifier.close()
    assert await waiter is True
    assert notifier.closed
    assert await notifier.listen().wait(30) is True
    listener.close()


async def test_room_change_cache() -> None:
    notifier, _clock = _notifier({StreamKey.EVENTS: 20})
    assert notifier.rooms_changed_since(["!a:x"], 25) is None
    notifier.track_room_changes(20)
    event = Event(
        {"type": "m.room.message", "sender": "@a:x", "room_id": "!a:x", "content": {}},
        "$m",
        KNOWN_ROOM_VERSIONS["10"],
    )
    notifier.on_new_event(event, 21)
    assert notifier.rooms_changed_since(["!a:x", "!b:x"], 20) == {"!a:x"}
    assert notifier.rooms_changed_since(["!a:x"], 21) == set()
    # Older than what the cache knows: the caller must ask the database.
    assert notifier.rooms_changed_since(["!a:x"], 19) is None


async def test_hundreds_of_waiters_only_the_room_wakes() -> None:
    notifier, _clock = _notifier({StreamKey.EVENTS: 1})
    listeners = []
    for i in range(500):
        listener = notifier.listen()
        listener.set_keys([user_key(f"@u{i}:x"), room_key(f"!r{i % 250}:x")])
        listeners.append(listener)
    notifier.notify(StreamKey.EVENTS, 1, rooms=["!r7:x"])
    woken = [i for i, lst in enumerate(listeners) if lst.is_woken()]
    assert woken == [7, 257]
    for listener in listeners:
        listener.close()
    assert notifier.listener_count == 0
