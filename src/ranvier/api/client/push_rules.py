"""Push rules.

    GET    /_matrix/client/v3/pushrules/
    GET    /_matrix/client/v3/pushrules/global/
    GET    /_matrix/client/v3/pushrules/global/{kind}/
    GET    /_matrix/client/v3/pushrules/global/{kind}/{ruleId}
    PUT    /_matrix/client/v3/pushrules/global/{kind}/{ruleId}?before=&after=
    DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}
    GET    /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled
    PUT    /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled
    GET    /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions
    PUT    /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions

Spec: Client-Server API > Modules > Push Notifications > Push Rules: API. Unknown rules
are 404 M_NOT_FOUND; an unknown kind or a malformed rule 400 M_INVALID_PARAM (missing
fields M_MISSING_PARAM); reserved `.` rule IDs and bad `before`/`after` 400 M_UNKNOWN.

As in Synapse, `GET .../global/{kind}/` lists one kind's rules, and any other path under
`/pushrules/` (another scope, a missing kind or rule ID, no trailing slash after the
scope or kind, an unknown rule attribute) is 400 M_UNRECOGNIZED rather than 404: the
path names the push rules API, only its shape is wrong.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import Endpoint, MatrixRequest, client_paths
from ranvier.core.errors import MatrixError, missing_param
from ranvier.services.push.rules import PushRulesService, kind_param


class PushRulesResource:
    def __init__(self, rules: PushRulesService) -> None:
        self._rules = rules

    async def get_all(self, req: MatrixRequest) -> dict[str, Any]:
        return await self._rules.get_push_rules_content(req.user.user_id)

    async def get_global(self, req: MatrixRequest) -> dict[str, Any]:
        content = await self._rules.get_push_rules_content(req.user.user_id)
        ruleset: dict[str, Any] = content["global"]
        return ruleset

    async def get_kind(self, req: MatrixRequest) -> list[Any]:
        kind = kind_param(req.path_param("kind"))
        content = await self._rules.get_push_rules_content(req.user.user_id)
        rules: list[Any] = content["global"].get(kind.value, [])
        return rules

    async def unrecognized(self, req: MatrixRequest) -> dict[str, Any]:
        raise MatrixError(400, "M_UNRECOGNIZED", "Unrecognised push rules request.")

    async def get_rule(self, req: MatrixRequest) -> dict[str, Any]:
        kind = kind_param(req.path_param("kind"))
        rule = await self._rules.get_rule(
            req.user.user_id, kind, req.path_param("ruleId")
        )
        return rule.to_json()

    async def put_rule(self, req: MatrixRequest) -> dict[str, Any]:
        kind = kind_param(req.path_param("kind"))
        body = await req.json()
        await self._rules.set_rule(
            req.user.user_id,
            kind,
            req.path_param("ruleId"),
            body.raw,
            before=req.query.get("before") or None,
            after=req.query.get("after") or None,
        )
        return {}

    async def delete_rule(self, req: MatrixRequest) -> dict[str, Any]:
        kind = kind_param(req.path_param("kind"))
        await self._rules.delete_rule(req.user.user_id, kind, req.path_param("ruleId"))
        return {}

    async def get_enabled(self, req: MatrixRequest) -> dict[str, Any]:
        kind = kind_param(req.path_param("kind"))
        rule = await self._rules.get_rule(
            req.user.user_id, kind, req.path_param("ruleId")
        )
        return {"enabled": rule.enabled}

    async def put_enabled(self, req: MatrixRequest) -> dict[str, Any]:
        kind = kind_param(req.path_param("kind"))
        body = await req.json()
        if "enabled" not in body:
            raise missing_param("Missing 'enabled'.")
        enabled = body.get_bool("enabled")
        await self._rules.set_enabled(
            req.user.user_id, kind, req.path_param("ruleId"), enabled
        )
        return {}

    async def get_actions(self, req: MatrixRequest) -> dict[str, Any]:
        kind = kind_param(req.path_param("kind"))
        rule = await self._rules.get_rule(
            req.user.user_id, kind, req.path_param("ruleId")
        )
        return {"actions": list(rule.actions)}

    async def put_actions(self, req: MatrixRequest) -> dict[str, Any]:
        kind = kind_param(req.path_param("kind"))
        body = await req.json()
        if "actions" not in body:
            raise missing_param("Missing 'actions'.")
        await self._rules.set_actions(
            req.user.user_id, kind, req.path_param("ruleId"), body.raw["actions"]
        )
        return {}

    def endpoints(self) -> list[Endpoint]:
        rule = "/pushrules/global/{kind}/{ruleId}"
        return [
            Endpoint("GET", client_paths("/pushrules/"), self.get_all),
            Endpoint("GET", client_paths("/pushrules/global/"), self.get_global),
            Endpoint("GET", client_paths(rule), self.get_rule),
            Endpoint("PUT", client_paths(rule), self.put_rule),
            Endpoint("DELETE", client_paths(rule), self.delete_rule),
            Endpoint("GET", client_paths(rule + "/enabled"), self.get_enabled),
            Endpoint("PUT", client_paths(rule + "/enabled"), self.put_enabled),
            Endpoint("GET", client_paths(rule + "/actions"), self.get_actions),
            Endpoint("PUT", client_paths(rule + "/actions"), self.put_actions),
            Endpoint("GET", client_paths("/pushrules/global/{kind}/"), self.get_kind),
        ] + [
            # Registered last: the router tries routes in order.
            Endpoint(method, client_paths("/pushrules/{tail:.*}"), self.unrecognized)
            for method in ("GET", "PUT", "DELETE")
        ]
