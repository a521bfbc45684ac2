"""End-to-end encryption over sliding sync only: two matrix-js-sdk clients (Rust
crypto) exchange a Megolm session through the `to_device` and `e2ee` extensions and
the message decrypts (tests/js/sliding_sync_e2ee.mjs). Both engines."""

from __future__ import annotations

from pathlib import Path

from ranvier.storage.txn import EngineName
from tests.helpers.accounts import PASSWORD, accounts_server
from tests.helpers.js import run_js_client
from tests.helpers.sync import new_user

ENCRYPTION = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


async def test_megolm_session_over_sliding_sync(
    tmp_path: Path, db_engine: EngineName
) -> None:
    async with accounts_server(tmp_path, engine=db_engine) as (hs, api):
        alice = await new_user(api, "alice")
        bob = await new_user(api, "bob")
        room = await alice.create_room(name="Secret", initial_state=[ENCRYPTION])
        await alice.invite(room, bob.user_id)
        await bob.join(room)
        out = await run_js_client(
            "sliding_sync_e2ee.mjs",
            {
                "HS_URL": hs.base_url,
                "ALICE": "alice",
                "BOB": "bob",
                "PASSWORD": PASSWORD,
                "ROOM": room,
            },
            time_limit_s=150,
        )
    assert out["wireType"] == "m.room.encrypted"
    assert out["body"] == "the secret"
