"""Push rules per user (spec: Push Notifications > Push Rules: API).

The rules live in one document per user (`storage.stores.push`), merged with the
server-default rules by `core.push.ruleset.UserRules`. Compiled rulesets are cached per
user and replaced when the user changes a rule, so evaluating an event never parses
rules. Every change is announced to `listeners` (the `m.push_rules` account data).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from ranvier.core.errors import MatrixError, invalid_param, missing_param, not_found
from ranvier.core.push.evaluator import CompiledRuleset
from ranvier.core.push.rules import (
    PushRule,
    PushRuleError,
    PushRuleNotFound,
    PushRuleRejected,
    RuleKind,
    parse_kind,
    parse_user_rule,
    validate_actions,
)
from ranvier.core.push.ruleset import UserRules
from ranvier.util.lru import LruCache

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]

PUSH_RULES_TYPE = "m.push_rules"


class RulesStore(Protocol):
    async def get_push_rules(
        self, user_ids: Collection[str]
    ) -> dict[str, JsonDict]: ...

    async def update_push_rules(
        self, user_id: str, update: Callable[[JsonDict], JsonDict]
    ) -> JsonDict: ...


class PushRulesListener(Protocol):
    async def on_push_rules_changed(self, user_id: str, content: JsonDict) -> None: ...


def _to_matrix_error(exc: Exception) -> MatrixError:
    if isinstance(exc, PushRuleNotFound):
        return not_found("The push rule was not found.")
    if isinstance(exc, PushRuleRejected):
        return MatrixError(400, "M_UNKNOWN", str(exc))
    if isinstance(exc, PushRuleError) and exc.missing:
        return missing_param(str(exc))
    return invalid_param(str(exc))


def kind_param(value: str) -> RuleKind:
    try:
        return parse_kind(value)
    except PushRuleError as e:
        raise invalid_param(str(e)) from None


class PushRulesService:
    def __init__(self, store: RulesStore, *, cache_size: int = 20_000) -> None:
        self._store = store
        self._rules: LruCache[str, UserRules] = LruCache(cache_size)
        self._compiled: LruCache[str, CompiledRuleset] = LruCache(cache_size)
        self.listeners: list[PushRulesListener] = []

    # -- reading ---------------------------------------------------------------------
    async def get_user_rules_bulk(
        self, user_ids: Collection[str]
    ) -> dict[str, UserRules]:
        out: dict[str, UserRules] = {}
        missing: list[str] = []
        for user_id in user_ids:
            cached = self._rules.get(user_id)
            if cached is None:
                missing.append(user_id)
            else:
                out[user_id] = cached
        if missing:
            generation = self._rules.generation()
            stored = await self._store.get_push_rules(missing)
            for user_id in missing:
                rules = UserRules.from_json(stored.get(user_id, {}))
                self._rules.set_if_unchanged(user_id, rules, generation)
                out[user_id] = rules
        return out

    async def get_user_rules(self, user_id: str) -> UserRules:
        return (await self.get_user_rules_bulk([user_id]))[user_id]

    async def get_compiled(
        self, user_ids: Collection[str]
    ) -> dict[str, CompiledRuleset]:
        """Compiled rulesets of local users, for evaluating one event for all of them."""
        out: dict[str, CompiledRuleset] = {}
        missing: list[str] = []
        for user_id in user_ids:
            cached = self._compiled.get(user_id)
            if cached is None:
                missing.append(user_id)
            else:
                out[user_id] = cached
        if missing:
            generation = self._compiled.generation()
            loaded = await self.get_user_rules_bulk(missing)
            for user_id, rules in loaded.items():
                compiled = CompiledRuleset(rules.ordered(user_id))
                self._compiled.set_if_unchanged(user_id, compiled, generation)
                out[user_id] = compiled
        return out

    async def get_push_rules_content(self, user_id: str) -> JsonDict:
        """`GET /pushrules/` and the `m.push_rules` account data content."""
        return (await self.get_user_rules(user_id)).to_client_json(user_id)

    async def get_rule(self, user_id: str, kind: RuleKind, rule_id: str) -> PushRule:
        rules = await self.get_user_rules(user_id)
        try:
            return rules.get_rule(kind, rule_id, user_id)
        except PushRuleNotFound as e:
            raise _to_matrix_error(e) from None

    # -- changes ---------------------------------------------------------------------
    async def set_rule(
        self,
        user_id: str,
        kind: RuleKind,
        rule_id: str,
        body: Mapping[str, Any],
        *,
        before: str | None = None,
        after: str | None = None,
    ) -> None:
        if rule_id.startswith("."):
            raise MatrixError(
                400, "M_UNKNOWN", "Rule IDs starting with '.' are reserved."
            )
        try:
            rule = parse_user_rule(kind, rule_id, body)
        except PushRuleError as e:
            raise _to_matrix_error(e) from None
        await self._update(
            user_id, lambda r: r.with_rule(rule, before=before, after=after)
        )

    async def delete_rule(self, user_id: str, kind: RuleKind, rule_id: str) -> None:
        await self._update(user_id, lambda r: r.without_rule(kind, rule_id))

    async def set_enabled(
        self, user_id: str, kind: RuleKind, rule_id: str, enabled: bool
    ) -> None:
        await self.get_rule(user_id, kind, rule_id)
        await self._update(user_id, lambda r: r.with_enabled(kind, rule_id, enabled))

    async def set_actions(
        self, user_id: str, kind: RuleKind, rule_id: str, actions: Any
    ) -> None:
        try:
            valid = validate_actions(actions)
        except PushRuleError as e:
            raise _to_matrix_error(e) from None
        await self.get_rule(user_id, kind, rule_id)
        await self._update(user_id, lambda r: r.with_actions(kind, rule_id, valid))

    async def _update(
        self, user_id: str, change: Callable[[UserRules], UserRules]
    ) -> None:
        def update(stored: JsonDict) -> JsonDict:
            return change(UserRules.from_json(stored)).to_json()

        try:
            new = await self._store.update_push_rules(user_id, update)
        except (PushRuleError, PushRuleRejected, PushRuleNotFound) as e:
            raise _to_matrix_error(e) from None
        rules = UserRules.from_json(new)
        self._rules.invalidate([user_id])
        self._compiled.invalidate([user_id])
        self._rules.set(user_id, rules)
        content = rules.to_client_json(user_id)
        for listener in self.listeners:
            try:
                await listener.on_push_rules_changed(user_id, content)
            except Exception:
                logger.exception("push rules listener %r failed", listener)
