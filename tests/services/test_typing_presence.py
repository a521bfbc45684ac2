"""Typing expiry and presence timeouts, driven by a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import pytest

from ranvier.core.errors import MatrixError
from ranvier.core.streams import StreamKey
from ranvier.services.notifier import Notifier, StreamSources, room_key, user_key
from ranvier.services.presence import (
    IDLE_AFTER_MS,
    OFFLINE,
    ONLINE,
    UNAVAILABLE,
    PresenceService,
)
from ranvier.services.typing import MAX_TIMEOUT_MS, TypingService
from ranvier.storage.database import Database
from ranvier.storage.stores.presence import PresenceStore
from ranvier.util.clock import FakeClock
from ranvier.util.supervisor import TaskSupervisor

ROOM = "!room:x"
ALICE = "@alice:x"
BOB = "@bob:x"


class Members:
    def __init__(self, joined: set[tuple[str, str]]) -> None:
        self.joined = joined

    async def is_joined(self, user_id: str, room_id: str) -> bool:
        return (user_id, room_id) in self.joined

    async def get_joined_room_ids(self, user_id: str) -> set[str]:
        return {r for u, r in self.joined if u == user_id}

    async def get_users_sharing_rooms(
        self, user_id: str, candidates: Collection[str] | None = None
    ) -> set[str]:
        rooms = await self.get_joined_room_ids(user_id)
        users = {u for u, r in self.joined if r in rooms}
        return users if candidates is None else users & set(candidates)


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_typing_expires_with_the_clock_and_caps_timeouts() -> None:
    clock = FakeClock()
    supervisor = TaskSupervisor()
    sources = StreamSources()
    notifier = Notifier(clock, sources)
    typing = TypingService(clock, supervisor, notifier, Members({(ALICE, ROOM)}))
    sources.register(StreamKey.TYPING, typing.get_current_position)
    listener = notifier.listen()
    listener.set_keys([room_key(ROOM)])
    try:
        await typing.set_typing(ALICE, ROOM, True, 10**9)
        assert listener.is_woken()
        assert typing.get_typing_users(ROOM) == [ALICE]
        start = typing.get_current_position()
        assert typing.get_changed_rooms([ROOM], 0, start) == {ROOM: [ALICE]}
        assert typing.get_changed_rooms([ROOM], start, start) == {}
        # Typing again only extends the timeout: no new position.
        await typing.set_typing(ALICE, ROOM, True, 1000)
        assert typing.get_current_position() == start
        await _settle()
        listener.rearm()
        clock.advance(MAX_TIMEOUT_MS / 1000 + 2)
        await _settle()
        assert typing.get_typing_users(ROOM) == []
        assert listener.is_woken()
        assert typing.get_changed_rooms(
            [ROOM], start, typing.get_current_position()
        ) == {ROOM: []}
        # A token from before a restart is ahead of the stream: everything is resent.
        await typing.set_typing(ALICE, ROOM, True, None)
        assert typing.get_changed_rooms([ROOM], 10**6, 10**6) == {ROOM: [ALICE]}
        with pytest.raises(MatrixError) as err:
            await typing.set_typing(BOB, ROOM, True, None)
        assert err.value.errcode == "M_FORBIDDEN"
    finally:
        listener.close()
        await supervisor.shutdown()


async def test_presence_idle_and_offline_timeouts(database: Database) -> None:
    clock = FakeClock()
    supervisor = TaskSupervisor()
    store = await PresenceStore.open(database)
    sources = StreamSources({StreamKey.PRESENCE: store.get_current_position})
    notifier = Notifier(clock, sources)
    members = Members({(ALICE, ROOM), (BOB, ROOM)})
    presence = PresenceService(store, members, notifier, clock, supervisor)
    bob_view = notifier.listen()
    bob_view.set_keys([user_key(BOB), room_key(ROOM)])
    try:
        await presence.sync_started(ALICE, None)
        assert bob_view.is_woken()
        assert (await presence.get_presence(BOB, ALICE))["presence"] == ONLINE
        # An ongoing sync keeps her online but she goes idle after IDLE_AFTER_MS.
        clock.advance(IDLE_AFTER_MS / 1000 + 1)
        await presence.handle_timeouts()
        content = await presence.get_presence(BOB, ALICE)
        assert content["presence"] == UNAVAILABLE
        assert content["currently_active"] is False
        assert content["last_active_ago"] >= IDLE_AFTER_MS
        # Her client stops syncing: offline after the sync timeout.
        presence.sync_finished(ALICE)
        clock.advance(31)
        await presence.handle_timeouts()
        assert (await presence.get_presence(BOB, ALICE))["presence"] == OFFLINE
        # "offline" syncs do not bring her back.
        await presence.sync_started(ALICE, OFFLINE)
        presence.sync_finished(ALICE)
        assert (await presence.get_presence(BOB, ALICE))["presence"] == OFFLINE
        with pytest.raises(MatrixError) as err:
            await presence.get_presence("@stranger:x", ALICE)
        assert err.value.errcode == "M_FORBIDDEN"
        await presence.set_presence(ALICE, ONLINE, "back")
        content = await presence.get_presence(ALICE, ALICE)
        assert (content["presence"], content["status_msg"]) == (ONLINE, "back")
    finally:
        bob_view.close()
        await supervisor.shutdown()
