"""Evaluating push rules against an event (spec: Push Rules > Conditions, Actions).

Rules are compiled once per user (`CompiledRuleset`: conditions parsed, globs and key
paths precompiled, disabled rules dropped) and reused until the user's rules change.
One event is evaluated for every member in one pass over a shared `EventView`, whose
path lookups are cached across users. The first enabled rule whose conditions all hold
decides; its actions (legacy `dont_notify`/`coalesce` dropped) are the result.

Conditions:
* `event_match`: glob on a string property, whole value (words of `content.body`);
* `event_property_is`: the property equals a non-compound value (types must agree:
  `true` is not `1`);
* `event_property_contains`: the property is an array holding such a value;
* `contains_display_name`: `content.body` holds the user's display name in the room as
  a word (never for an empty or missing name);
* `room_member_count`: joined members compared with `is` (`==`, `<`, `>`, `<=`, `>=`);
* `sender_notification_permission`: the sender's power level reaches
  `notifications.<key>` of the power levels (default 50);
* anything else never matches.

The legacy mention rules (`LEGACY_MENTION_RULE_IDS`) are skipped for events with an
`m.mentions` property (spec v1.7, MSC3952: intentional mentions replace them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ranvier.core.auth.validation import read_power_level
from ranvier.core.push.defaults import LEGACY_MENTION_RULE_IDS
from ranvier.core.push.glob import Matcher, compile_glob
from ranvier.core.push.paths import MISSING, lookup, split_path
from ranvier.core.push.rules import (
    LEGACY_ACTIONS,
    NOTIFY,
    PushRule,
    RuleKind,
    is_scalar,
    parse_member_count,
)

JsonDict = dict[str, Any]

_BODY = ("content", "body")
_MENTIONS = ("content", "m.mentions")
DEFAULT_NOTIFICATION_LEVEL = 50


@dataclass(frozen=True, slots=True)
class RoomFacts:
    """What conditions need to know about the room at the event."""

    member_count: int
    sender_power_level: int | float
    notification_levels: Mapping[str, Any]


class EventView:
    """An event's JSON with cached property lookups (shared by every member)."""

    __slots__ = ("_cache", "data")

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self._cache: dict[tuple[str, ...], Any] = {}

    def get(self, keys: tuple[str, ...]) -> Any:
        try:
            return self._cache[keys]
        except KeyError:
            value = self._cache[keys] = lookup(self.data, keys)
            return value

    @property
    def room_id(self) -> Any:
        return self.data.get("room_id")

    @property
    def sender(self) -> Any:
        return self.data.get("sender")


@dataclass(frozen=True, slots=True)
class PushActions:
    actions: tuple[Any, ...]
    notify: bool
    highlight: bool
    sound: str | None

    @staticmethod
    def from_actions(actions: Sequence[Any]) -> PushActions:
        kept = tuple(
            a for a in actions if not (isinstance(a, str) and a in LEGACY_ACTIONS)
        )
        highlight = False
        sound: str | None = None
        for a in kept:
            if not isinstance(a, dict):
                continue
            tweak = a.get("set_tweak")
            if tweak == "highlight":
                # "value" defaults to true for highlight (spec: Tweaks).
                highlight = a.get("value", True) is True
            elif tweak == "sound" and isinstance(a.get("value"), str):
                sound = a["value"]
        return PushActions(kept, NOTIFY in kept, highlight, sound)

    def tweaks(self) -> JsonDict:
        out: JsonDict = {}
        for a in self.actions:
            if isinstance(a, dict) and isinstance(a.get("set_tweak"), str):
                name = a["set_tweak"]
                out[name] = (
                    a.get("value", True) if name == "highlight" else a.get("value")
                )
        return out


class _Condition(Protocol):
    def matches(
        self, view: EventView, facts: RoomFacts, display_name: str | None
    ) -> bool: ...


def _same(a: Any, b: Any) -> bool:
    """Equality of non-compound JSON values where booleans are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if a is None or b is None:
        return a is None and b is None
    return type(a) is type(b) and bool(a == b)


@dataclass(frozen=True, slots=True)
class _EventMatch:
    keys: tuple[str, ...]
    matcher: Matcher

    def matches(
        self, view: EventView, facts: RoomFacts, display_name: str | None
    ) -> bool:
        value = view.get(self.keys)
        return isinstance(value, str) and self.matcher(value)


@dataclass(frozen=True, slots=True)
class _PropertyIs:
    keys: tuple[str, ...]
    value: Any

    def matches(
        self, view: EventView, facts: RoomFacts, display_name: str | None
    ) -> bool:
        found = view.get(self.keys)
        return found is not MISSING and _same(found, self.value)


@dataclass(frozen=True, slots=True)
class _PropertyContains:
    keys: tuple[str, ...]
    value: Any

    def matches(
        self, view: EventView, facts: RoomFacts, display_name: str | None
    ) -> bool:
        found = view.get(self.keys)
        return isinstance(found, list) and any(_same(v, self.value) for v in found)


class _DisplayName:
    def matches(
        self, view: EventView, facts: RoomFacts, display_name: str | None
    ) -> bool:
        if not display_name:
            return False
        body = view.get(_BODY)
        return isinstance(body, str) and compile_glob(display_name, words=True)(body)


@dataclass(frozen=True, slots=True)
class _MemberCount:
    op: str
    number: int

    def matches(
        self, view: EventView, facts: RoomFacts, display_name: str | None
    ) -> bool:
        n, target = facts.member_count, self.number
        if self.op == "<":
            return n < target
        if self.op == ">":
            return n > target
        if self.op == "<=":
            return n <= target
        if self.op == ">=":
            return n >= target
        return n == target


@dataclass(frozen=True, slots=True)
class _SenderPermission:
    key: str

    def matches(
        self, view: EventView, facts: RoomFacts, display_name: str | None
    ) -> bool:
        required = read_power_level(
            facts.notification_levels.get(self.key, DEFAULT_NOTIFICATION_LEVEL)
        )
        if required is None:
            required = DEFAULT_NOTIFICATION_LEVEL
        return facts.sender_power_level >= required


@dataclass(frozen=True, slots=True)
class _RoomIs:
    room_id: str

    def matches(
        self, view: EventView, facts: RoomFacts, display_name: str | None
    ) -> bool:
        return bool(view.room_id == self.room_id)


@dataclass(frozen=True, slots=True)
class _SenderIs:
    user_id: str

    def matches(
        self, view: EventView, facts: RoomFacts, display_name: str | None
    ) -> bool:
        return bool(view.sender == self.user_id)


class _Never:
    def matches(
        self, view: EventView, facts: RoomFacts, display_name: str | None
    ) -> bool:
        return False


def compile_condition(cond: Mapping[str, Any]) -> _Condition:
    kind = cond.get("kind")
    key = cond.get("key")
    if kind == "event_match":
        pattern = cond.get("pattern")
        if not isinstance(key, str) or not isinstance(pattern, str):
            return _Never()
        keys = split_path(key)
        return _EventMatch(keys, compile_glob(pattern, words=keys == _BODY))
    if kind in ("event_property_is", "event_property_contains"):
        value = cond.get("value", MISSING)
        if not isinstance(key, str) or value is MISSING or not is_scalar(value):
            return _Never()
        cls = _PropertyIs if kind == "event_property_is" else _PropertyContains
        return cls(split_path(key), value)
    if kind == "contains_display_name":
        return _DisplayName()
    if kind == "room_member_count":
        parsed = (
            parse_member_count(cond["is"]) if isinstance(cond.get("is"), str) else None
        )
        return _MemberCount(*parsed) if parsed is not None else _Never()
    if kind == "sender_notification_permission" and isinstance(key, str):
        return _SenderPermission(key)
    return _Never()


def _rule_conditions(rule: PushRule) -> tuple[_Condition, ...]:
    if rule.kind is RuleKind.ROOM:
        return (_RoomIs(rule.rule_id),)
    if rule.kind is RuleKind.SENDER:
        return (_SenderIs(rule.rule_id),)
    if rule.kind is RuleKind.CONTENT:
        if rule.pattern is None:
            return (_Never(),)
        return (_EventMatch(_BODY, compile_glob(rule.pattern, words=True)),)
    return tuple(compile_condition(c) for c in rule.conditions or ())


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule_id: str
    kind: RuleKind
    conditions: tuple[_Condition, ...]
    actions: PushActions
    legacy_mention: bool = False


class CompiledRuleset:
    """One user's enabled rules, in priority order, ready to evaluate."""

    __slots__ = ("rules", "uses_display_name")

    def __init__(self, rules: Iterable[PushRule]) -> None:
        self.rules = tuple(
            CompiledRule(
                r.rule_id,
                r.kind,
                _rule_conditions(r),
                PushActions.from_actions(r.actions),
                r.default and r.rule_id in LEGACY_MENTION_RULE_IDS,
            )
            for r in rules
            if r.enabled
        )
        self.uses_display_name = any(
            isinstance(c, _DisplayName) for r in self.rules for c in r.conditions
        )

    def match(
        self, view: EventView, facts: RoomFacts, display_name: str | None = None
    ) -> CompiledRule | None:
        """The rule that decides for this event, or None."""
        mentions = view.get(_MENTIONS) is not MISSING
        for rule in self.rules:
            if mentions and rule.legacy_mention:
                continue
            if all(c.matches(view, facts, display_name) for c in rule.conditions):
                return rule
        return None

    def evaluate(
        self, view: EventView, facts: RoomFacts, display_name: str | None = None
    ) -> PushActions | None:
        rule = self.match(view, facts, display_name)
        return rule.actions if rule is not None else None


@dataclass(frozen=True, slots=True)
class Recipient:
    user_id: str
    rules: CompiledRuleset
    display_name: str | None = None


def evaluate_for_recipients(
    event: Mapping[str, Any], facts: RoomFacts, recipients: Iterable[Recipient]
) -> dict[str, PushActions]:
    """The actions of every recipient the event notifies (one pass, shared lookups)."""
    view = EventView(event)
    out: dict[str, PushActions] = {}
    for r in recipients:
        actions = r.rules.evaluate(view, facts, r.display_name)
        if actions is not None and actions.notify:
            out[r.user_id] = actions
    return out
