"""The server-default push rules (spec v1.19: Push Notifications > Predefined Rules).

Checked against `tests/data/spec/vectors/push_rules_default.json` by the tests, plus the
three legacy mention rules (`LEGACY_MENTION_RULE_IDS`): `.m.rule.contains_display_name`,
`.m.rule.roomnotif` and `.m.rule.contains_user_name`. They left the spec in v1.17
(MSC4210) but Synapse still ships them by default, and clients that do not send
`m.mentions` yet (bridges, bots, older apps) rely on them: without `.m.rule.roomnotif`
an "@room" from such a client notifies nobody. They sit where spec v1.16 and Synapse
put them (each right after its intentional-mentions counterpart), and the evaluator
skips them for any event with an `m.mentions` property (spec v1.7, MSC3952), so a
client sending intentional mentions is judged by those alone.

`USER_ID` is replaced by the rule owner's user ID, `USER_LOCALPART` by its localpart.

Priority (spec): `.m.rule.master` comes before every other rule; otherwise a user's own
rules of a kind come before the server-default rules of that kind.
"""

from __future__ import annotations

from typing import Any, Final

from ranvier.core.push.rules import PushRule, RuleKind

USER_ID: Final = "[the user's Matrix ID]"
USER_LOCALPART: Final = "[the local part of the user's Matrix ID]"
LEGACY_MENTION_RULE_IDS: Final = frozenset(
    {".m.rule.contains_display_name", ".m.rule.roomnotif", ".m.rule.contains_user_name"}
)
MASTER_RULE_ID: Final = ".m.rule.master"

JsonDict = dict[str, Any]

_SOUND_DEFAULT: JsonDict = {"set_tweak": "sound", "value": "default"}
_HIGHLIGHT: JsonDict = {"set_tweak": "highlight"}


def _match(key: str, pattern: str) -> JsonDict:
    return {"kind": "event_match", "key": key, "pattern": pattern}


def _rule(rule_id: str, conditions: list[JsonDict], actions: list[Any]) -> JsonDict:
    return {
        "rule_id": rule_id,
        "default": True,
        "enabled": True,
        "conditions": conditions,
        "actions": actions,
    }


DEFAULT_OVERRIDE: Final[tuple[JsonDict, ...]] = (
    {**_rule(MASTER_RULE_ID, [], []), "enabled": False},
    _rule(".m.rule.suppress_notices", [_match("content.msgtype", "m.notice")], []),
    _rule(
        ".m.rule.invite_for_me",
        [
            _match("type", "m.room.member"),
            _match("content.membership", "invite"),
            _match("state_key", USER_ID),
        ],
        ["notify", _SOUND_DEFAULT],
    ),
    _rule(".m.rule.member_event", [_match("type", "m.room.member")], []),
    _rule(
        ".m.rule.is_user_mention",
        [
            {
                "kind": "event_property_contains",
                "key": "content.m\\.mentions.user_ids",
                "value": USER_ID,
            }
        ],
        ["notify", _SOUND_DEFAULT, _HIGHLIGHT],
    ),
    _rule(
        ".m.rule.contains_display_name",
        [{"kind": "contains_display_name"}],
        ["notify", _SOUND_DEFAULT, _HIGHLIGHT],
    ),
    _rule(
        ".m.rule.is_room_mention",
        [
            {
                "kind": "event_property_is",
                "key": "content.m\\.mentions.room",
                "value": True,
            },
            {"kind": "sender_notification_permission", "key": "room"},
        ],
        ["notify", _HIGHLIGHT],
    ),
    _rule(
        ".m.rule.roomnotif",
        [
            _match("content.body", "@room"),
            {"kind": "sender_notification_permission", "key": "room"},
        ],
        ["notify", _HIGHLIGHT],
    ),
    _rule(
        ".m.rule.tombstone",
        [_match("type", "m.room.tombstone"), _match("state_key", "")],
        ["notify", _HIGHLIGHT],
    ),
    _rule(".m.rule.reaction", [_match("type", "m.reaction")], []),
    _rule(
        ".m.rule.room.server_acl",
        [_match("type", "m.room.server_acl"), _match("state_key", "")],
        [],
    ),
    _rule(
        ".m.rule.suppress_edits",
        [
            {
                "kind": "event_property_is",
                "key": "content.m\\.relates_to.rel_type",
                "value": "m.replace",
            }
        ],
        [],
    ),
)

DEFAULT_CONTENT: Final[tuple[JsonDict, ...]] = (
    {
        "rule_id": ".m.rule.contains_user_name",
        "default": True,
        "enabled": True,
        "pattern": USER_LOCALPART,
        "actions": ["notify", _SOUND_DEFAULT, _HIGHLIGHT],
    },
)

DEFAULT_UNDERRIDE: Final[tuple[JsonDict, ...]] = (
    _rule(
        ".m.rule.call",
        [_match("type", "m.call.invite")],
        ["notify", {"set_tweak": "sound", "value": "ring"}],
    ),
    _rule(
        ".m.rule.encrypted_room_one_to_one",
        [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.encrypted")],
        ["notify", _SOUND_DEFAULT],
    ),
    _rule(
        ".m.rule.room_one_to_one",
        [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.message")],
        ["notify", _SOUND_DEFAULT],
    ),
    _rule(".m.rule.message", [_match("type", "m.room.message")], ["notify"]),
    _rule(".m.rule.encrypted", [_match("type", "m.room.encrypted")], ["notify"]),
)

DEFAULT_RULES: Final[dict[RuleKind, tuple[JsonDict, ...]]] = {
    RuleKind.OVERRIDE: DEFAULT_OVERRIDE,
    RuleKind.CONTENT: DEFAULT_CONTENT,
    RuleKind.ROOM: (),
    RuleKind.SENDER: (),
    RuleKind.UNDERRIDE: DEFAULT_UNDERRIDE,
}

DEFAULT_RULE_KINDS: Final[dict[str, RuleKind]] = {
    str(rule["rule_id"]): kind
    for kind, rules in DEFAULT_RULES.items()
    for rule in rules
}


def _substitute(value: Any, user_id: str) -> Any:
    if value == USER_ID:
        return user_id
    if value == USER_LOCALPART:
        return user_id[1:].split(":", 1)[0]
    if isinstance(value, dict):
        return {k: _substitute(v, user_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, user_id) for v in value]
    return value


def default_rules(kind: RuleKind, user_id: str) -> list[PushRule]:
    """The server-default rules of `kind` for `user_id`, in priority order."""
    return [
        PushRule.from_json(kind, _substitute(rule, user_id), default=True)
        for rule in DEFAULT_RULES[kind]
    ]
