"""POST /rooms/{roomId}/report[/{eventId}] and /users/{userId}/report on both engines:
what is stored and when the spec's 404 applies."""

from __future__ import annotations

from pathlib import Path

from ranvier.storage.stores.reports import ReportStore
from tests.helpers.accounts import accounts_server
from tests.helpers.rooms import make_user, q


async def test_reports(tmp_path: Path, db_engine: str) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (hs, api):
        alice = await make_user(api, "alice")
        bob = await make_user(api, "bob")
        mallory = await make_user(api, "mallory")
        room = await alice.create_room(preset="public_chat")
        assert (await bob.join(room))[0] == 200
        event = await alice.send(room, "offensive")
        base = f"/rooms/{q(room)}/report"

        status, body = await bob.call(
            "POST", f"{base}/{q(event)}", {"reason": "rude", "score": -100}
        )
        assert (status, body) == (200, {})
        assert (await bob.call("POST", f"{base}/{q(event)}", {}))[0] == 200
        # Not joined, unknown event, event of another room: all the same 404.
        other_room = await alice.create_room()
        other_event = await alice.send(other_room)
        for who, path in (
            (mallory, f"{base}/{q(event)}"),
            (bob, f"{base}/{q('$nope')}"),
            (bob, f"{base}/{q(other_event)}"),
            (bob, f"/rooms/{q(other_room)}/report/{q(other_event)}"),
        ):
            status, body = await who.call("POST", path, {"reason": "x"})
            assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), path
        status, body = await bob.call("POST", f"{base}/{q(event)}", {"score": 5})
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
        status, body = await bob.call("POST", f"{base}/{q(event)}", {"reason": 5})
        assert (status, body["errcode"]) == (400, "M_BAD_JSON")

        # Rooms: no membership needed; the reason is required.
        assert await mallory.call("POST", base, {"reason": ""}) == (200, {})
        status, body = await mallory.call("POST", base, {})
        assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
        status, body = await mallory.call(
            "POST", f"/rooms/{q('!nope:localhost')}/report", {"reason": "x"}
        )
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

        # Users: unknown local users are 404, remote users are accepted.
        users = "/users/{}/report"
        assert await bob.call(
            "POST", users.format(q(mallory.user_id)), {"reason": "spam"}
        ) == (200, {})
        assert (
            await bob.call(
                "POST", users.format(q("@x:elsewhere.example")), {"reason": "s"}
            )
        )[0] == 200
        status, body = await bob.call(
            "POST", users.format(q("@ghost:localhost")), {"reason": "x"}
        )
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
        status, body = await bob.call("POST", users.format("nobody"), {"reason": "x"})
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
        status, body = await api.call("POST", base, json={"reason": "x"})
        assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")

        reports = await ReportStore(hs.running.homeserver.db).get_reports()
        stored = sorted(
            (
                (
                    r.reporter,
                    r.room_id,
                    r.event_id,
                    r.reported_user_id,
                    r.reason,
                    r.score,
                )
                for r in reports
            ),
            key=str,
        )
        assert stored == sorted(
            [
                (bob.user_id, room, event, None, "rude", -100),
                (bob.user_id, room, event, None, None, None),
                (mallory.user_id, room, None, None, "", None),
                (bob.user_id, None, None, mallory.user_id, "spam", None),
                (bob.user_id, None, None, "@x:elsewhere.example", "s", None),
            ],
            key=str,
        )
        assert len({r.report_id for r in reports}) == 5
