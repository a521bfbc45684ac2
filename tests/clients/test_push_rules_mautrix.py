"""Push rules through mautrix: a room rule named by an alias (as SyTest and Synapse
allow) can be created, read back and removed."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import aiohttp
from mautrix.api import HTTPAPI
from mautrix.client import ClientAPI
from mautrix.types import (
    PushAction,
    PushActionType,
    PushRuleKind,
    PushRuleScope,
    UserID,
)

from tests.helpers.rooms import make_user, rooms_server


async def test_room_rule_named_by_alias(tmp_path: Path) -> None:
    async with rooms_server(tmp_path) as (hs, api):
        alice = await make_user(api, "alice")
        async with aiohttp.ClientSession() as session:
            mx = ClientAPI(
                UserID(alice.user_id),
                api=HTTPAPI(hs.base_url, alice.token, client_session=session),
            )
            rule_id = "#a:example.com"
            # mautrix's ExtensibleEnum members type-check as plain str.
            scope = cast(PushRuleScope, PushRuleScope.GLOBAL)
            kind = cast(PushRuleKind, PushRuleKind.ROOM)
            notify = cast(PushAction, PushActionType.NOTIFY)
            await mx.set_push_rule(scope, kind, rule_id, [notify])
            rule = await mx.get_push_rule(scope, kind, rule_id)
            assert rule.rule_id == rule_id
            assert rule.enabled is True
            assert rule.default is False
            await mx.remove_push_rule(scope, kind, rule_id)
