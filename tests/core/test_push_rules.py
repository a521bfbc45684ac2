"""Push rules in the protocol core: the server defaults against the spec vector, key
paths, glob matching, evaluation of spec scenarios, rule changes and gateway bodies."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ranvier.core.push.defaults import (
    DEFAULT_RULES,
    LEGACY_MENTION_RULE_IDS,
    USER_ID,
)
from ranvier.core.push.evaluator import (
    CompiledRuleset,
    EventView,
    PushActions,
    Recipient,
    RoomFacts,
    compile_condition,
    evaluate_for_recipients,
)
from ranvier.core.push.gateway import (
    badge_body,
    gateway_device,
    notification_body,
    priority,
    rejected_pushkeys,
)
from ranvier.core.push.glob import compile_glob
from ranvier.core.push.paths import MISSING, lookup, split_path
from ranvier.core.push.rules import (
    KIND_ORDER,
    PushRuleError,
    PushRuleNotFound,
    PushRuleRejected,
    RuleKind,
    parse_member_count,
    parse_user_rule,
)
from ranvier.core.push.ruleset import UserRules
from tests.core.spec_vectors import load_vectors

JsonDict = dict[str, Any]

BOB = "@bob:example.org"
ALICE = "@alice:example.org"
ROOM = "!room:example.org"
GROUP = RoomFacts(member_count=5, sender_power_level=0, notification_levels={})
DM = RoomFacts(member_count=2, sender_power_level=0, notification_levels={})


def message(body: str = "hello", **content: Any) -> JsonDict:
    return {
        "type": "m.room.message",
        "room_id": ROOM,
        "sender": ALICE,
        "event_id": "$ev",
        "content": {"msgtype": "m.text", "body": body, **content},
    }


def evaluate(
    event: JsonDict,
    facts: RoomFacts = GROUP,
    rules: UserRules | None = None,
    user: str = BOB,
    display_name: str | None = None,
) -> PushActions | None:
    compiled = CompiledRuleset((rules or UserRules()).ordered(user))
    return compiled.evaluate(EventView(event), facts, display_name)


def rule_id(event: JsonDict, facts: RoomFacts = GROUP, user: str = BOB) -> str | None:
    rule = CompiledRuleset(UserRules().ordered(user)).match(EventView(event), facts)
    return rule.rule_id if rule else None


# -- the server defaults ----------------------------------------------------------------


def test_default_rules_are_the_spec_vector() -> None:
    # The vector is spec v1.19's list, which no longer has the legacy mention rules
    # Synapse still ships (see core/push/defaults.py): without them it must match.
    vector = load_vectors("push_rules_default.json")
    for kind in (RuleKind.OVERRIDE, RuleKind.CONTENT, RuleKind.UNDERRIDE):
        current = [
            dict(r)
            for r in DEFAULT_RULES[kind]
            if r["rule_id"] not in LEGACY_MENTION_RULE_IDS
        ]
        assert current == vector[kind.value], kind
    assert DEFAULT_RULES[RuleKind.ROOM] == ()
    assert DEFAULT_RULES[RuleKind.SENDER] == ()


def test_legacy_mention_rules_sit_where_synapse_puts_them() -> None:
    override = [r["rule_id"] for r in DEFAULT_RULES[RuleKind.OVERRIDE]]
    assert override[override.index(".m.rule.is_user_mention") :][:4] == [
        ".m.rule.is_user_mention",
        ".m.rule.contains_display_name",
        ".m.rule.is_room_mention",
        ".m.rule.roomnotif",
    ]
    assert [r["rule_id"] for r in DEFAULT_RULES[RuleKind.CONTENT]] == [
        ".m.rule.contains_user_name"
    ]


def test_legacy_room_notification_needs_power_and_no_mentions() -> None:
    moderator = RoomFacts(member_count=5, sender_power_level=50, notification_levels={})
    actions = evaluate(message("@room: lunch!"), moderator)
    assert actions is not None
    assert actions.highlight
    assert actions.notify
    assert rule_id(message("@room: lunch!"), moderator) == ".m.rule.roomnotif"
    # Not enough power: an ordinary message.
    plain = evaluate(message("@room: lunch!"), GROUP)
    assert plain is not None
    assert not plain.highlight
    # "@roomy" is not the word "@room".
    assert rule_id(message("@roomy"), moderator) == ".m.rule.message"
    # With m.mentions the intentional-mentions rules alone decide.
    assert rule_id(message("@room", **{"m.mentions": {}}), moderator) == (
        ".m.rule.message"
    )


def test_legacy_user_name_rule_matches_the_localpart() -> None:
    assert rule_id(message("hey bob, look")) == ".m.rule.contains_user_name"
    assert rule_id(message("hey bobby")) == ".m.rule.message"
    assert rule_id(message("hey bob", **{"m.mentions": {}})) == ".m.rule.message"


def test_client_json_substitutes_the_user_and_orders_kinds() -> None:
    content = UserRules().to_client_json(BOB)
    assert list(content["global"]) == [k.value for k in KIND_ORDER]
    override = content["global"]["override"]
    assert override[0]["rule_id"] == ".m.rule.master"
    invite = next(r for r in override if r["rule_id"] == ".m.rule.invite_for_me")
    assert invite["conditions"][2] == {
        "key": "state_key",
        "kind": "event_match",
        "pattern": BOB,
    }
    assert USER_ID not in str(content)


# -- paths and globs ----------------------------------------------------------------------


def test_dotted_paths_match_the_spec_examples() -> None:
    cases = load_vectors("identifiers.json")["dot_separated_property_paths"]["cases"]
    for case in cases:
        assert list(split_path(case["path"])) == case["keys"], case


def test_lookup_of_missing_and_non_object_steps() -> None:
    event = {"content": {"m.relates_to": {"rel_type": "m.thread"}, "n": 1}}
    assert lookup(event, split_path("content.m\\.relates_to.rel_type")) == "m.thread"
    assert lookup(event, split_path("content.n.x")) is MISSING
    assert lookup(event, split_path("content.nope")) is MISSING


@pytest.mark.parametrize(
    ("pattern", "value", "words", "expected"),
    [
        ("m.notice", "m.notice", False, True),
        ("M.NOTICE", "m.notice", False, True),
        ("m.notice", "m.noticex", False, False),
        ("m.*", "m.room.message", False, True),
        ("m.?oom", "m.room", False, True),
        ("m.?oom", "m.rooom", False, False),
        ("", "", False, True),
        ("cake", "I like cake.", True, True),
        ("cake", "cakes are nice", True, False),
        ("cake", "pancake", True, False),
        ("cake", "CAKE!", True, True),
        ("cake_", "cake_", True, True),
        ("cake", "cake_x", True, False),
        ("cake*lie", "the cake is a lie", True, True),
        ("@bob:hs", "hi @bob:hs!", True, True),
        ("b?b", "hey bob", True, True),
        ("", "anything", True, False),
        # Patterns that make backtracking regexes explode stay linear here.
        ("a*a*a*a*a*a*a*a*a*a*b", "a" * 5000, False, False),
        ("a*a*a*a*a*a*a*a*a*a*b", "a" * 5000, True, False),
        ("?*?*?*?*?*?*?*c", "ab" * 3000, True, False),
    ],
)
def test_glob(pattern: str, value: str, words: bool, expected: bool) -> None:
    assert compile_glob(pattern, words=words)(value) is expected


# -- evaluation: spec scenarios -------------------------------------------------------------


def test_plain_message_in_a_group_notifies_without_sound() -> None:
    actions = evaluate(message())
    assert actions is not None
    assert (actions.notify, actions.highlight, actions.sound) == (True, False, None)
    assert rule_id(message()) == ".m.rule.message"


def test_direct_chat_notifies_with_sound() -> None:
    actions = evaluate(message(), DM)
    assert actions is not None
    assert (actions.notify, actions.sound) == (True, "default")
    assert rule_id(message(), DM) == ".m.rule.room_one_to_one"


def test_encrypted_events() -> None:
    event = {**message(), "type": "m.room.encrypted", "content": {"ciphertext": "x"}}
    assert rule_id(event, DM) == ".m.rule.encrypted_room_one_to_one"
    assert rule_id(event, GROUP) == ".m.rule.encrypted"
    group = evaluate(event, GROUP)
    assert group is not None
    assert group.sound is None
    assert group.notify


def test_user_mention_highlights() -> None:
    event = message("hi bob", **{"m.mentions": {"user_ids": [BOB]}})
    actions = evaluate(event)
    assert actions is not None
    assert (actions.notify, actions.highlight, actions.sound) == (True, True, "default")
    # Another user is not mentioned.
    other = evaluate(event, user="@carol:example.org")
    assert other is not None
    assert not other.highlight
    # With `m.mentions`, a name in the body alone is no mention (spec v1.7): the
    # legacy rules are skipped.
    quiet = evaluate(message("hi bob", **{"m.mentions": {}}))
    assert quiet is not None
    assert not quiet.highlight
    # Without it, the legacy localpart rule still highlights (as Synapse).
    assert evaluate(message("hi bob")).highlight  # type: ignore[union-attr]


def test_room_mention_needs_the_senders_power() -> None:
    event = message("@room", **{"m.mentions": {"room": True}})
    weak = evaluate(event)
    assert weak is not None
    assert not weak.highlight
    mod = RoomFacts(5, 50, {})
    strong = evaluate(event, mod)
    assert strong is not None
    assert strong.highlight
    # The room can lower (or raise) the level.
    assert evaluate(event, RoomFacts(5, 10, {"room": 10})).highlight  # type: ignore[union-attr]
    assert not evaluate(event, RoomFacts(5, 99, {"room": 100})).highlight  # type: ignore[union-attr]
    # v12 creators have infinite power.
    assert evaluate(event, RoomFacts(5, float("inf"), {})).highlight  # type: ignore[union-attr]
    # `"room": 1` (not `true`) is no room mention.
    assert not evaluate(message("x", **{"m.mentions": {"room": 1}}), mod).highlight  # type: ignore[union-attr]


def test_suppressed_events() -> None:
    assert evaluate(message(msgtype="m.notice")) is not None
    assert not evaluate(message(msgtype="m.notice")).notify  # type: ignore[union-attr]
    assert rule_id(message(msgtype="m.notice")) == ".m.rule.suppress_notices"
    acl = {"type": "m.room.server_acl", "state_key": "", "sender": ALICE, "content": {}}
    assert rule_id(acl) == ".m.rule.room.server_acl"
    reaction = {"type": "m.reaction", "sender": ALICE, "content": {}}
    assert rule_id(reaction) == ".m.rule.reaction"
    edit = message(
        "* fixed", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}}
    )
    assert rule_id(edit) == ".m.rule.suppress_edits"
    for event in (acl, reaction, edit):
        assert (
            evaluate_for_recipients(
                event,
                GROUP,
                [Recipient(BOB, CompiledRuleset(UserRules().ordered(BOB)))],
            )
            == {}
        )


def test_tombstone_highlights() -> None:
    tomb = {"type": "m.room.tombstone", "state_key": "", "sender": ALICE, "content": {}}
    actions = evaluate(tomb)
    assert actions is not None
    assert actions.notify
    assert actions.highlight
    not_state = {"type": "m.room.tombstone", "sender": ALICE, "content": {}}
    assert rule_id(not_state) is None


def test_invites_and_other_member_events() -> None:
    invite = {
        "type": "m.room.member",
        "state_key": BOB,
        "sender": ALICE,
        "content": {"membership": "invite"},
    }
    actions = evaluate(invite)
    assert actions is not None
    assert actions.notify
    assert actions.sound == "default"
    assert rule_id(invite, user="@carol:example.org") == ".m.rule.member_event"
    join = {**invite, "state_key": ALICE, "content": {"membership": "join"}}
    assert not evaluate(join).notify  # type: ignore[union-attr]


def test_calls_ring() -> None:
    call = {"type": "m.call.invite", "sender": ALICE, "content": {}}
    actions = evaluate(call)
    assert actions is not None
    assert actions.sound == "ring"


def test_master_rule_silences_everything() -> None:
    rules = UserRules().with_enabled(RuleKind.OVERRIDE, ".m.rule.master", True)
    assert rule_id(message()) == ".m.rule.message"
    compiled = CompiledRuleset(rules.ordered(BOB))
    rule = compiled.match(EventView(message()), GROUP)
    assert rule is not None
    assert rule.rule_id == ".m.rule.master"
    assert evaluate(message(), rules=rules).notify is False  # type: ignore[union-attr]


def test_keyword_room_and_sender_rules() -> None:
    keyword = parse_user_rule(
        RuleKind.CONTENT,
        "cake",
        {"pattern": "cake", "actions": ["notify", {"set_tweak": "highlight"}]},
    )
    rules = UserRules().with_rule(keyword)
    assert evaluate(message("we have CAKE"), rules=rules).highlight  # type: ignore[union-attr]
    assert not evaluate(message("cakewalk"), rules=rules).highlight  # type: ignore[union-attr]
    muted_room = parse_user_rule(RuleKind.ROOM, ROOM, {"actions": []})
    rules = UserRules().with_rule(muted_room)
    assert evaluate(message(), rules=rules).notify is False  # type: ignore[union-attr]
    other_room = {**message(), "room_id": "!other:example.org"}
    assert evaluate(other_room, rules=rules).notify  # type: ignore[union-attr]
    loud_sender = parse_user_rule(
        RuleKind.SENDER,
        ALICE,
        {"actions": ["notify", {"set_tweak": "sound", "value": "x"}]},
    )
    rules = UserRules().with_rule(loud_sender)
    assert evaluate(message(), rules=rules).sound == "x"  # type: ignore[union-attr]


def test_contains_display_name() -> None:
    rule = parse_user_rule(
        RuleKind.OVERRIDE,
        "name",
        {
            "conditions": [{"kind": "contains_display_name"}],
            "actions": ["notify", {"set_tweak": "highlight", "value": True}],
        },
    )
    rules = UserRules().with_rule(rule)
    compiled = CompiledRuleset(rules.ordered(BOB))
    assert compiled.uses_display_name
    # The legacy `.m.rule.contains_display_name` default needs it too.
    assert CompiledRuleset(UserRules().ordered(BOB)).uses_display_name
    hit = evaluate(message("ask Rob Smith."), rules=rules, display_name="Rob Smith")
    assert hit is not None
    assert hit.highlight
    miss = evaluate(message("ask Rob Smithers"), rules=rules, display_name="Rob Smith")
    assert miss is not None
    assert not miss.highlight
    empty = evaluate(message("anything"), rules=rules, display_name="")
    assert empty is not None
    assert not empty.highlight


@pytest.mark.parametrize(
    ("expr", "count", "expected"),
    [
        ("2", 2, True),
        ("==2", 3, False),
        ("<3", 2, True),
        ("<3", 3, False),
        (">3", 4, True),
        ("<=3", 3, True),
        (">=3", 2, False),
        ("x3", 3, None),
        ("", 0, None),
        ("=2", 2, None),
    ],
)
def test_room_member_count(expr: str, count: int, expected: bool | None) -> None:
    cond = compile_condition({"kind": "room_member_count", "is": expr})
    matched = cond.matches(EventView({}), RoomFacts(count, 0, {}), None)
    if expected is None:
        assert parse_member_count(expr) is None
        assert matched is False
    else:
        assert matched is expected


def test_property_conditions_are_type_strict() -> None:
    event = {"content": {"flag": True, "n": 1, "s": "1", "list": ["a", 1, True, None]}}
    view = EventView(event)
    facts = GROUP

    def check(kind: str, key: str, value: Any) -> bool:
        cond = compile_condition({"kind": kind, "key": key, "value": value})
        return cond.matches(view, facts, None)

    assert check("event_property_is", "content.flag", True)
    assert not check("event_property_is", "content.flag", 1)
    assert check("event_property_is", "content.n", 1)
    assert not check("event_property_is", "content.n", True)
    assert not check("event_property_is", "content.s", 1)
    assert not check("event_property_is", "content.missing", None)
    assert check("event_property_contains", "content.list", "a")
    assert check("event_property_contains", "content.list", None)
    assert check("event_property_contains", "content.list", True)
    assert not check("event_property_contains", "content.list", "b")
    assert not check("event_property_contains", "content.s", "1")
    # Compound values never match.
    assert not check("event_property_is", "content", {"flag": True})


def test_event_match_needs_a_string_value() -> None:
    view = EventView({"content": {"n": 1, "s": "x"}})
    for key, expected in (
        ("content.n", False),
        ("content.s", True),
        ("content.z", False),
    ):
        cond = compile_condition({"kind": "event_match", "key": key, "pattern": "*"})
        assert cond.matches(view, GROUP, None) is expected


def test_unknown_and_malformed_conditions_never_match() -> None:
    for cond in (
        {"kind": "org.example.future"},
        {"kind": "event_match", "key": "type"},
        {"kind": "event_property_is", "key": "type"},
        {"kind": "room_member_count"},
        {"kind": "sender_notification_permission"},
    ):
        assert compile_condition(cond).matches(EventView(message()), DM, None) is False


def test_actions_drop_legacy_entries_and_read_tweaks() -> None:
    actions = PushActions.from_actions(
        [
            "notify",
            "coalesce",
            "dont_notify",
            {"set_tweak": "highlight", "value": False},
        ]
    )
    assert actions.actions == ("notify", {"set_tweak": "highlight", "value": False})
    assert (actions.notify, actions.highlight) == (True, False)
    assert not PushActions.from_actions(["dont_notify"]).notify
    tweaks = PushActions.from_actions(
        ["notify", {"set_tweak": "sound", "value": "bing"}, {"set_tweak": "highlight"}]
    ).tweaks()
    assert tweaks == {"sound": "bing", "highlight": True}


def test_one_pass_for_many_recipients() -> None:
    rules = CompiledRuleset(UserRules().ordered(BOB))
    carol = "@carol:example.org"
    carol_rules = CompiledRuleset(
        UserRules()
        .with_enabled(RuleKind.OVERRIDE, ".m.rule.master", True)
        .ordered(carol)
    )
    event = message("hi", **{"m.mentions": {"user_ids": [BOB]}})
    out = evaluate_for_recipients(
        event, GROUP, [Recipient(BOB, rules), Recipient(carol, carol_rules)]
    )
    assert set(out) == {BOB}
    assert out[BOB].highlight


# -- changing rules --------------------------------------------------------------------------


def _ids(rules: UserRules, kind: RuleKind) -> list[str]:
    return [r.rule_id for r in rules.rules_of_kind(kind, BOB)]


def test_new_rules_go_first_unless_placed() -> None:
    def rule(rid: str) -> Any:
        return parse_user_rule(
            RuleKind.OVERRIDE, rid, {"actions": [], "conditions": []}
        )

    rules = UserRules().with_rule(rule("a")).with_rule(rule("b"))
    assert _ids(rules, RuleKind.OVERRIDE)[:3] == [".m.rule.master", "b", "a"]
    rules = rules.with_rule(rule("c"), after="a")
    assert _ids(rules, RuleKind.OVERRIDE)[1:4] == ["b", "a", "c"]
    rules = rules.with_rule(rule("d"), before="a", after="c")
    assert _ids(rules, RuleKind.OVERRIDE)[1:5] == ["b", "d", "a", "c"]
    # Moving an existing rule.
    rules = rules.with_rule(rule("b"), after="c")
    assert _ids(rules, RuleKind.OVERRIDE)[1:5] == ["d", "a", "c", "b"]
    # Updating in place keeps the position.
    updated = parse_user_rule(RuleKind.OVERRIDE, "a", {"actions": ["notify"]})
    rules = rules.with_rule(updated)
    assert _ids(rules, RuleKind.OVERRIDE)[1:5] == ["d", "a", "c", "b"]
    assert rules.get_rule(RuleKind.OVERRIDE, "a", BOB).actions == ("notify",)
    with pytest.raises(PushRuleRejected):
        rules.with_rule(rule("e"), before="nope")
    with pytest.raises(PushRuleRejected):
        rules.with_rule(rule("e"), after=".m.rule.message")
    with pytest.raises(PushRuleRejected):
        rules.with_rule(rule(".m.mine"))
    # Round trip through storage JSON.
    assert UserRules.from_json(rules.to_json()).ordered(BOB) == rules.ordered(BOB)


def test_defaults_can_be_toggled_and_given_actions_but_not_deleted() -> None:
    rules = UserRules().with_enabled(RuleKind.UNDERRIDE, ".m.rule.message", False)
    rules = rules.with_actions(RuleKind.OVERRIDE, ".m.rule.reaction", ["notify"])
    assert rules.get_rule(RuleKind.UNDERRIDE, ".m.rule.message", BOB).enabled is False
    assert rules.get_rule(RuleKind.OVERRIDE, ".m.rule.reaction", BOB).actions == (
        "notify",
    )
    with pytest.raises(PushRuleRejected):
        rules.without_rule(RuleKind.UNDERRIDE, ".m.rule.message")
    with pytest.raises(PushRuleNotFound):
        rules.without_rule(RuleKind.UNDERRIDE, "mine")
    with pytest.raises(PushRuleNotFound):
        rules.get_rule(RuleKind.OVERRIDE, ".m.rule.message", BOB)
    with pytest.raises(PushRuleNotFound):
        rules.with_enabled(RuleKind.ROOM, ROOM, True)
    stored = UserRules.from_json(rules.to_json())
    assert stored.get_rule(RuleKind.UNDERRIDE, ".m.rule.message", BOB).enabled is False


@pytest.mark.parametrize(
    ("kind", "rule_id", "body", "missing"),
    [
        (RuleKind.OVERRIDE, "x", {}, True),
        (RuleKind.OVERRIDE, "x", {"actions": "notify"}, False),
        (RuleKind.OVERRIDE, "x", {"actions": ["shout"]}, False),
        (RuleKind.OVERRIDE, "x", {"actions": [{"value": 1}]}, False),
        (RuleKind.OVERRIDE, "x", {"actions": [], "conditions": {}}, False),
        (RuleKind.OVERRIDE, "x", {"actions": [], "conditions": [{"kind": 1}]}, False),
        (
            RuleKind.OVERRIDE,
            "x",
            {"actions": [], "conditions": [{"kind": "event_match", "key": "type"}]},
            False,
        ),
        (
            RuleKind.UNDERRIDE,
            "x",
            {"actions": [], "conditions": [{"kind": "room_member_count", "is": "a"}]},
            False,
        ),
        (
            RuleKind.OVERRIDE,
            "x",
            {
                "actions": [],
                "conditions": [{"kind": "event_property_is", "key": "a", "value": [1]}],
            },
            False,
        ),
        (RuleKind.CONTENT, "x", {"actions": []}, True),
        (RuleKind.CONTENT, "x", {"actions": [], "pattern": 3}, False),
        (RuleKind.OVERRIDE, "a/b", {"actions": []}, False),
        (RuleKind.OVERRIDE, "a\\b", {"actions": []}, False),
    ],
)
def test_invalid_rules(
    kind: RuleKind, rule_id: str, body: JsonDict, missing: bool
) -> None:
    with pytest.raises(PushRuleError) as info:
        parse_user_rule(kind, rule_id, body)
    assert info.value.missing is missing


def test_room_and_sender_rule_ids_need_not_be_ids() -> None:
    # As in Synapse: stored, and matching nothing unless an event has that room/sender.
    for kind, rule_id in ((RuleKind.ROOM, "#a:example.com"), (RuleKind.SENDER, "bob")):
        rule = parse_user_rule(kind, rule_id, {"actions": ["notify"]})
        assert rule.rule_id == rule_id


def test_unknown_conditions_are_stored() -> None:
    rule = parse_user_rule(
        RuleKind.OVERRIDE, "future", {"actions": [], "conditions": [{"kind": "new"}]}
    )
    assert rule.to_json()["conditions"] == [{"kind": "new"}]


# -- push gateway bodies ----------------------------------------------------------------------


def test_gateway_notification_body() -> None:
    device = gateway_device(
        "com.example", "KEY", 1_700_000_000_123, {"url": "https://gw", "format": "x"}
    )
    assert device == {
        "app_id": "com.example",
        "pushkey": "KEY",
        "pushkey_ts": 1_700_000_000,
        "data": {"format": "x"},
    }
    event = message("hi")
    full = notification_body(
        event_id="$ev",
        event=event,
        device=device,
        tweaks={"sound": "default"},
        unread=3,
        user_id=BOB,
        event_id_only=False,
        sender_display_name="Alice",
        room_name="Tea",
    )["notification"]
    assert full["event_id"] == full["id"] == "$ev"
    assert full["content"]["body"] == "hi"
    assert full["counts"] == {"unread": 3}
    assert full["prio"] == "high"
    assert full["sender_display_name"] == "Alice"
    assert full["room_name"] == "Tea"
    assert "room_alias" not in full
    assert "user_is_target" not in full
    short = notification_body(
        event_id="$ev",
        event=event,
        device=device,
        tweaks={},
        unread=0,
        user_id=BOB,
        event_id_only=True,
    )["notification"]
    assert set(short) == {"event_id", "room_id", "counts", "prio", "devices"}
    assert short["counts"] == {}
    assert short["prio"] == "low"
    assert priority("m.room.encrypted", {}) == "high"
    assert badge_body(device=device, unread=0)["notification"]["counts"] == {
        "unread": 0
    }
    invite = notification_body(
        event_id="$inv",
        event={
            "type": "m.room.member",
            "room_id": "!r:x",
            "sender": "@a:x",
            "state_key": BOB,
            "content": {"membership": "invite"},
        },
        device=device,
        tweaks={},
        unread=1,
        user_id=BOB,
        event_id_only=False,
    )["notification"]
    assert (invite["membership"], invite["user_is_target"]) == ("invite", True)
    assert rejected_pushkeys({"rejected": ["KEY", 5]}) == ["KEY"]
    assert rejected_pushkeys(None) == []
    assert rejected_pushkeys({"rejected": "KEY"}) == []


def _reference_glob(pattern: str, value: str, words: bool) -> bool:
    """The spec's glob as a regex: fine as an oracle on short inputs only."""
    p, v = pattern.lower(), value.lower()
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in p)
    if not words:
        return re.fullmatch(body, v, re.DOTALL) is not None
    if not p:
        return False

    def edge(c: str) -> bool:
        return c in "*?" or re.fullmatch(r"[a-z0-9_]", c) is not None

    before = r"(?<![a-z0-9_])" if edge(p[0]) else ""
    after = r"(?![a-z0-9_])" if edge(p[-1]) else ""
    return re.search(before + body + after, v, re.DOTALL) is not None


@given(
    pattern=st.text(alphabet="ab *?._", max_size=7),
    value=st.text(alphabet="abA _.", max_size=10),
    words=st.booleans(),
)
def test_glob_agrees_with_a_regex_oracle(pattern: str, value: str, words: bool) -> None:
    assert compile_glob(pattern, words=words)(value) is _reference_glob(
        pattern, value, words
    )
