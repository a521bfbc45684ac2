"""A user's push rules: their own rules plus their changes to the server defaults.

Stored as one JSON document per user (`to_json`/`from_json`); every change is a pure
function returning a new `UserRules`, so the service can read-modify-write it in one
transaction.

Order (spec: Push Rules): kinds in `KIND_ORDER`; within override, `.m.rule.master`
first, then the user's rules, then the other server-default rules; within the other
kinds, the user's rules before the server-default ones. Among the user's rules of a
kind, a new rule goes first unless `before`/`after` place it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ranvier.core.push.defaults import (
    DEFAULT_RULE_KINDS,
    MASTER_RULE_ID,
    default_rules,
)
from ranvier.core.push.rules import (
    KIND_ORDER,
    PushRule,
    PushRuleNotFound,
    PushRuleRejected,
    RuleKind,
)

JsonDict = dict[str, Any]


@dataclass(frozen=True, slots=True)
class UserRules:
    custom: Mapping[RuleKind, tuple[PushRule, ...]] = field(default_factory=dict)
    # Changes to server-default rules, by rule ID.
    enabled: Mapping[str, bool] = field(default_factory=dict)
    actions: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    # -- storage ---------------------------------------------------------------------
    def to_json(self) -> JsonDict:
        return {
            "rules": {
                kind.value: [r.to_json() for r in rules]
                for kind, rules in self.custom.items()
                if rules
            },
            "enabled": dict(self.enabled),
            "actions": {k: list(v) for k, v in self.actions.items()},
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> UserRules:
        custom: dict[RuleKind, tuple[PushRule, ...]] = {}
        rules = data.get("rules")
        if isinstance(rules, Mapping):
            for kind in KIND_ORDER:
                raw = rules.get(kind.value)
                if isinstance(raw, list):
                    custom[kind] = tuple(
                        PushRule.from_json(kind, r, default=False)
                        for r in raw
                        if isinstance(r, Mapping)
                    )
        enabled = data.get("enabled")
        actions = data.get("actions")
        return UserRules(
            custom=custom,
            enabled=(
                {k: bool(v) for k, v in enabled.items()}
                if isinstance(enabled, Mapping)
                else {}
            ),
            actions=(
                {k: tuple(v) for k, v in actions.items() if isinstance(v, list)}
                if isinstance(actions, Mapping)
                else {}
            ),
        )

    # -- reading ---------------------------------------------------------------------
    def _defaults(self, kind: RuleKind, user_id: str) -> list[PushRule]:
        out = []
        for rule in default_rules(kind, user_id):
            if rule.rule_id in self.enabled:
                rule = replace(rule, enabled=self.enabled[rule.rule_id])
            if rule.rule_id in self.actions:
                rule = replace(rule, actions=self.actions[rule.rule_id])
            out.append(rule)
        return out

    def rules_of_kind(self, kind: RuleKind, user_id: str) -> list[PushRule]:
        """Every rule of `kind`, highest priority first."""
        defaults = self._defaults(kind, user_id)
        own = list(self.custom.get(kind, ()))
        if (
            kind is RuleKind.OVERRIDE
            and defaults
            and defaults[0].rule_id == MASTER_RULE_ID
        ):
            return [defaults[0], *own, *defaults[1:]]
        return [*own, *defaults]

    def ordered(self, user_id: str) -> list[PushRule]:
        """Every rule, in evaluation order."""
        return [r for kind in KIND_ORDER for r in self.rules_of_kind(kind, user_id)]

    def to_client_json(self, user_id: str) -> JsonDict:
        """The `global` ruleset of `GET /pushrules/` and the `m.push_rules` content."""
        return {
            "global": {
                kind.value: [r.to_json() for r in self.rules_of_kind(kind, user_id)]
                for kind in KIND_ORDER
            }
        }

    def get_rule(self, kind: RuleKind, rule_id: str, user_id: str) -> PushRule:
        for rule in self.rules_of_kind(kind, user_id):
            if rule.rule_id == rule_id:
                return rule
        raise PushRuleNotFound(rule_id)

    # -- changes ---------------------------------------------------------------------
    def with_rule(
        self, rule: PushRule, *, before: str | None = None, after: str | None = None
    ) -> UserRules:
        """Add `rule` or replace the user's rule with its ID (same kind)."""
        if rule.rule_id.startswith("."):
            raise PushRuleRejected("Rule IDs starting with '.' are reserved.")
        own = list(self.custom.get(rule.kind, ()))
        index = next((i for i, r in enumerate(own) if r.rule_id == rule.rule_id), None)
        anchor = before if before is not None else after
        if anchor is None:
            if index is not None:
                own[index] = rule
            else:
                own.insert(0, rule)
        else:
            if anchor.startswith("."):
                raise PushRuleRejected(
                    "Rules cannot be placed relative to a default rule."
                )
            if index is not None:
                del own[index]
            pos = next((i for i, r in enumerate(own) if r.rule_id == anchor), None)
            if pos is None:
                raise PushRuleRejected(f"before/after rule not found: {anchor}")
            own.insert(pos if before is not None else pos + 1, rule)
        return self._with_custom(rule.kind, own)

    def without_rule(self, kind: RuleKind, rule_id: str) -> UserRules:
        if rule_id in DEFAULT_RULE_KINDS and DEFAULT_RULE_KINDS[rule_id] is kind:
            raise PushRuleRejected("Server-default rules cannot be deleted.")
        own = list(self.custom.get(kind, ()))
        kept = [r for r in own if r.rule_id != rule_id]
        if len(kept) == len(own):
            raise PushRuleNotFound(rule_id)
        return self._with_custom(kind, kept)

    def with_enabled(self, kind: RuleKind, rule_id: str, enabled: bool) -> UserRules:
        if _is_default(kind, rule_id):
            return replace(self, enabled={**self.enabled, rule_id: enabled})
        return self._update_own(kind, rule_id, lambda r: replace(r, enabled=enabled))

    def with_actions(
        self, kind: RuleKind, rule_id: str, actions: Sequence[Any]
    ) -> UserRules:
        if _is_default(kind, rule_id):
            return replace(self, actions={**self.actions, rule_id: tuple(actions)})
        return self._update_own(
            kind, rule_id, lambda r: replace(r, actions=tuple(actions))
        )

    def _update_own(self, kind: RuleKind, rule_id: str, change: Any) -> UserRules:
        own = list(self.custom.get(kind, ()))
        for i, rule in enumerate(own):
            if rule.rule_id == rule_id:
                own[i] = change(rule)
                return self._with_custom(kind, own)
        raise PushRuleNotFound(rule_id)

    def _with_custom(self, kind: RuleKind, rules: list[PushRule]) -> UserRules:
        return replace(self, custom={**self.custom, kind: tuple(rules)})


def _is_default(kind: RuleKind, rule_id: str) -> bool:
    return DEFAULT_RULE_KINDS.get(rule_id) is kind
