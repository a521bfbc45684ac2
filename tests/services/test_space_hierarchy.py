"""The hierarchy walk over rooms only other servers know: their answers' children are
used without asking again, restricted rooms need membership of an allowed room, and
answers are cached across pages until they expire."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import pytest

from ranvier.core.errors import MatrixError
from ranvier.core.events.event import Event, StateKey
from ranvier.services.rooms.spaces import REMOTE_CACHE_MS, SpaceHierarchyService
from ranvier.storage.stores.rooms import MembershipRow, RoomRow
from ranvier.util.clock import FakeClock

JsonDict = dict[str, Any]
USER = "@u:local"


def _summary(room_id: str, **extra: Any) -> JsonDict:
    return {
        "room_id": room_id,
        "num_joined_members": 3,
        "world_readable": False,
        "guest_can_join": False,
        "join_rule": "public",
        **extra,
    }


def _child(room_id: str) -> JsonDict:
    return {
        "type": "m.space.child",
        "state_key": room_id,
        "sender": "@a:remote",
        "content": {"via": ["remote"]},
        "origin_server_ts": 1,
    }


SPACE = _summary(
    "!space", room_type="m.space", children_state=[_child("!a"), _child("!club-only")]
)
ANSWERS = {
    "!space": {
        "room": SPACE,
        "children": [
            _summary("!a", children_state=[]),
            _summary(
                "!club-only",
                join_rule="restricted",
                allowed_room_ids=["!club"],
                children_state=[],
            ),
        ],
        "inaccessible_children": [],
    }
}


class _Remote:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def get_remote_hierarchy(
        self, room_id: str, via: Sequence[str], *, suggested_only: bool
    ) -> JsonDict | None:
        self.asked.append(room_id)
        return ANSWERS.get(room_id)


class _Rooms:
    def __init__(self, joined: set[str]) -> None:
        self.joined = joined

    async def get_room(self, room_id: str) -> RoomRow | None:
        return None

    async def get_membership(self, room_id: str, user_id: str) -> MembershipRow | None:
        if room_id in self.joined:
            return MembershipRow(room_id, user_id, "join", "$m", 1, False)
        return None

    async def get_rooms_for_user(
        self, user_id: str, memberships: Collection[str] = ("join",)
    ) -> list[MembershipRow]:
        return []

    async def get_joined_user_ids(self, room_id: str) -> list[str]:
        return []


class _NoState:
    async def get_current_state_ids(self, room_id: str) -> dict[StateKey, str]:
        return {}

    async def get_current_state_events(
        self, room_id: str, keys: Collection[StateKey]
    ) -> dict[StateKey, Event]:
        return {}


class _NoDirectory:
    async def get_room_summary(self, room_id: str) -> JsonDict:
        raise AssertionError("no local rooms here")


def _service(
    remote: _Remote, joined: set[str], clock: FakeClock
) -> SpaceHierarchyService:
    return SpaceHierarchyService(
        server_name="local",
        directory=_NoDirectory(),
        rooms=_Rooms(joined),
        state=_NoState(),
        remote=remote,
        clock=clock,
    )


async def _ids(service: SpaceHierarchyService, **kw: Any) -> list[str]:
    out = await service.get_hierarchy(USER, "!space", **kw)
    return [r["room_id"] for r in out["rooms"]]


async def test_remote_children_and_restricted_rooms() -> None:
    remote, clock = _Remote(), FakeClock()
    assert await _ids(_service(remote, set(), clock)) == ["!space", "!a"]
    # The children came with the space's answer: one request.
    assert remote.asked == ["!space"]
    member = _service(_Remote(), {"!club"}, clock)
    assert await _ids(member) == ["!space", "!a", "!club-only"]


async def test_remote_answers_are_cached_across_pages() -> None:
    remote, clock = _Remote(), FakeClock()
    service = _service(remote, set(), clock)
    first = await service.get_hierarchy(USER, "!space", limit=1)
    assert [r["room_id"] for r in first["rooms"]] == ["!space"]
    second = await service.get_hierarchy(
        USER, "!space", limit=1, from_token=first["next_batch"]
    )
    assert [r["room_id"] for r in second["rooms"]] == ["!a"]
    assert "next_batch" not in second
    assert remote.asked == ["!space"]
    clock.advance(REMOTE_CACHE_MS / 1000 + 1)
    await service.get_hierarchy(USER, "!space")
    assert remote.asked == ["!space", "!space"]


async def test_unknown_root_is_forbidden() -> None:
    service = _service(_Remote(), set(), FakeClock())
    with pytest.raises(MatrixError) as err:
        await service.get_hierarchy(USER, "!nowhere")
    assert (err.value.status, err.value.errcode) == (403, "M_FORBIDDEN")
