"""The push rule model and the validation of rules clients write.

Spec: Client-Server API > Push Rules. Five kinds, in priority order: override, content,
room, sender, underride. `room` rules match events of the room named by their rule ID,
`sender` rules events from the user named by it, `content` rules match their `pattern`
against `content.body`; `override` and `underride` rules carry `conditions`.

Conditions and actions are kept as the JSON the client sent (they are served back
verbatim); `evaluator` compiles them. Conditions of unknown kinds are stored and never
match (spec: "Unrecognised conditions MUST NOT match any events").
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

JsonDict = dict[str, Any]


class RuleKind(enum.StrEnum):
    OVERRIDE = "override"
    CONTENT = "content"
    ROOM = "room"
    SENDER = "sender"
    UNDERRIDE = "underride"


KIND_ORDER: tuple[RuleKind, ...] = (
    RuleKind.OVERRIDE,
    RuleKind.CONTENT,
    RuleKind.ROOM,
    RuleKind.SENDER,
    RuleKind.UNDERRIDE,
)

# Legacy actions (removed in spec v1.7): accepted and ignored.
NOTIFY = "notify"
LEGACY_ACTIONS = frozenset({"dont_notify", "coalesce"})
KNOWN_CONDITIONS = frozenset(
    {
        "event_match",
        "event_property_is",
        "event_property_contains",
        "contains_display_name",
        "room_member_count",
        "sender_notification_permission",
    }
)


class PushRuleError(Exception):
    """A rule a client sent is malformed (`missing`: a required field is absent)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


class PushRuleRejected(Exception):
    """A well-formed request the rules cannot take: a reserved `.` rule ID, a
    `before`/`after` rule that does not exist or is a server-default rule."""


class PushRuleNotFound(Exception):
    pass


@dataclass(frozen=True, slots=True)
class PushRule:
    rule_id: str
    kind: RuleKind
    actions: tuple[Any, ...]
    enabled: bool = True
    default: bool = False
    conditions: tuple[JsonDict, ...] | None = None
    pattern: str | None = None

    def to_json(self) -> JsonDict:
        out: JsonDict = {
            "rule_id": self.rule_id,
            "default": self.default,
            "enabled": self.enabled,
            "actions": list(self.actions),
        }
        if self.conditions is not None:
            out["conditions"] = [dict(c) for c in self.conditions]
        if self.pattern is not None:
            out["pattern"] = self.pattern
        return out

    @staticmethod
    def from_json(
        kind: RuleKind, data: Mapping[str, Any], *, default: bool
    ) -> PushRule:
        """A rule from trusted JSON (our own storage or the default rule table)."""
        conditions = data.get("conditions")
        pattern = data.get("pattern")
        return PushRule(
            rule_id=str(data["rule_id"]),
            kind=kind,
            actions=tuple(data.get("actions") or ()),
            enabled=bool(data.get("enabled", True)),
            default=default,
            conditions=tuple(conditions) if isinstance(conditions, list) else None,
            pattern=pattern if isinstance(pattern, str) else None,
        )


def parse_kind(value: str) -> RuleKind:
    try:
        return RuleKind(value)
    except ValueError:
        raise PushRuleError(f"Unknown push rule kind {value!r}.") from None


def is_scalar(value: Any) -> bool:
    """A non-compound canonical JSON value (string, integer, boolean or null)."""
    return value is None or isinstance(value, str | bool | int)


def validate_actions(actions: Any) -> tuple[Any, ...]:
    if not isinstance(actions, list):
        raise PushRuleError("'actions' must be an array.")
    for action in actions:
        if isinstance(action, str):
            if action != NOTIFY and action not in LEGACY_ACTIONS:
                raise PushRuleError(f"Unknown action {action!r}.")
        elif isinstance(action, dict):
            tweak = action.get("set_tweak")
            if not isinstance(tweak, str):
                raise PushRuleError("An action object needs a string 'set_tweak'.")
        else:
            raise PushRuleError("Actions are strings or objects.")
    return tuple(actions)


def _require_str(cond: Mapping[str, Any], key: str, kind: str) -> None:
    if not isinstance(cond.get(key), str):
        raise PushRuleError(f"A {kind} condition needs a string '{key}'.")


def validate_condition(cond: Any) -> JsonDict:
    if not isinstance(cond, dict) or not isinstance(cond.get("kind"), str):
        raise PushRuleError("A condition is an object with a string 'kind'.")
    kind = cond["kind"]
    if kind == "event_match":
        _require_str(cond, "key", kind)
        _require_str(cond, "pattern", kind)
    elif kind in ("event_property_is", "event_property_contains"):
        _require_str(cond, "key", kind)
        if "value" not in cond or not is_scalar(cond["value"]):
            raise PushRuleError(f"A {kind} condition needs a non-compound 'value'.")
    elif kind == "room_member_count":
        _require_str(cond, "is", kind)
        if parse_member_count(cond["is"]) is None:
            raise PushRuleError(
                "'is' must be a number, optionally after ==, <, >, <=, >=."
            )
    elif kind == "sender_notification_permission":
        _require_str(cond, "key", kind)
    return dict(cond)


def parse_member_count(expr: str) -> tuple[str, int] | None:
    """(operator, number) of a `room_member_count` `is` value, or None if malformed."""
    for op in ("==", "<=", ">=", "<", ">"):
        if expr.startswith(op):
            rest = expr[len(op) :]
            break
    else:
        op, rest = "==", expr
    if not rest.isascii() or not rest.isdigit() or len(rest) > 16:
        return None
    return op, int(rest)


def validate_rule_id(kind: RuleKind, rule_id: str) -> None:
    """Rule IDs of rules a user creates (spec: PUT /pushrules/global/{kind}/{ruleId})."""
    # A room rule's ID is the room it matches and a sender rule's the user (spec), but
    # the spec does not have the server reject other IDs, and Synapse stores them (such
    # a rule simply matches nothing); SyTest relies on that with `#alias` room rules.
    if not rule_id or "/" in rule_id or "\\" in rule_id:
        raise PushRuleError("Rule IDs must not be empty or contain '/' or '\\'.")


def parse_user_rule(kind: RuleKind, rule_id: str, body: Mapping[str, Any]) -> PushRule:
    """A new user-defined rule from a `PUT .../{kind}/{ruleId}` body (enabled, per spec:
    "When creating push rules, they MUST be enabled by default")."""
    validate_rule_id(kind, rule_id)
    if "actions" not in body:
        raise PushRuleError("Missing 'actions'.", missing=True)
    actions = validate_actions(body["actions"])
    conditions: tuple[JsonDict, ...] | None = None
    pattern: str | None = None
    if kind is RuleKind.CONTENT:
        raw_pattern = body.get("pattern")
        if raw_pattern is None:
            raise PushRuleError("Content rules need a 'pattern'.", missing=True)
        if not isinstance(raw_pattern, str):
            raise PushRuleError("'pattern' must be a string.")
        pattern = raw_pattern
    elif kind in (RuleKind.OVERRIDE, RuleKind.UNDERRIDE):
        raw = body.get("conditions", [])
        if not isinstance(raw, list):
            raise PushRuleError("'conditions' must be an array.")
        conditions = tuple(validate_condition(c) for c in raw)
    return PushRule(
        rule_id=rule_id,
        kind=kind,
        actions=actions,
        enabled=True,
        default=False,
        conditions=conditions,
        pattern=pattern,
    )


def rules_to_json(rules: Sequence[PushRule]) -> list[JsonDict]:
    return [r.to_json() for r in rules]
