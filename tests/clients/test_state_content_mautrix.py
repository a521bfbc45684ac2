"""Malformed state content from a client is refused with 400 M_BAD_JSON (mautrix), on
`PUT /state` and in `createRoom`; good content still goes through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mautrix.api import HTTPAPI
from mautrix.client import ClientAPI
from mautrix.errors import MatrixStandardRequestError
from mautrix.types import EventType, RoomID, UserID

from tests.helpers.rooms import make_user, rooms_server


@pytest.mark.parametrize(
    ("event_type", "content"),
    [
        ("m.room.topic", {"topic": 5}),
        ("m.room.join_rules", {"join_rule": 5}),
        ("m.room.history_visibility", {"history_visibility": "sometimes"}),
        ("m.room.power_levels", {"users": {"not-a-user": 100}}),
        ("m.room.member", {"membership": "lurking"}),
    ],
)
async def test_bad_state_content_is_refused(
    tmp_path: Path, event_type: str, content: dict[str, Any]
) -> None:
    async with rooms_server(tmp_path) as (hs, api):
        alice = await make_user(api, "alice")
        room_id = RoomID(await alice.create_room())
        async with aiohttp.ClientSession() as session:
            mx = ClientAPI(
                UserID(alice.user_id),
                api=HTTPAPI(hs.base_url, alice.token, client_session=session),
            )
            state_key = alice.user_id if event_type == "m.room.member" else ""
            with pytest.raises(MatrixStandardRequestError) as err:
                await mx.send_state_event(
                    room_id,
                    EventType.find(event_type, EventType.Class.STATE),
                    content,  # type: ignore[arg-type]
                    state_key=state_key,
                )
            assert (err.value.http_status, err.value.errcode) == (400, "M_BAD_JSON")
            # The same in createRoom's initial_state.
            with pytest.raises(MatrixStandardRequestError) as err:
                await mx.create_room(
                    initial_state=[
                        {"type": event_type, "state_key": state_key, "content": content}  # type: ignore[dict-item]
                    ]
                )
            assert (err.value.http_status, err.value.errcode) == (400, "M_BAD_JSON")
            # Good content still works.
            await mx.send_state_event(
                room_id,
                EventType.ROOM_TOPIC,
                {"topic": "fine"},  # type: ignore[arg-type]
            )


async def test_create_room_overrides_are_checked(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (_, api):
        alice = await make_user(api, "alice")
        for body in (
            {"power_level_content_override": {"ban": "50"}},
            {"power_level_content_override": {"users": {"@a:hs": "high"}}},
            {"creation_content": {"m.federate": "yes"}},
        ):
            status, out = await alice.call("POST", "/createRoom", body)
            assert (status, out["errcode"]) == (400, "M_BAD_JSON"), body
            assert "must be" in out["error"]
        status, out = await alice.call(
            "POST",
            "/createRoom",
            {"power_level_content_override": {"invite": 50}},
        )
        assert status == 200, out
