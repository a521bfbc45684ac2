"""Filter parsing, validation and matching (spec: Filtering)."""

from __future__ import annotations

from typing import Any

import pytest

from ranvier.core.filters import (
    DEFAULT_TIMELINE_LIMIT,
    MAX_TIMELINE_LIMIT,
    FilterError,
    only_fields,
    parse_filter,
    split_field_path,
)


def test_empty_filter_allows_everything() -> None:
    f = parse_filter({})
    assert f.event_format == "client"
    assert f.room.timeline_limit == DEFAULT_TIMELINE_LIMIT
    assert f.room.includes_room("!a:x")
    assert f.room.timeline.matches({"type": "m.room.message", "sender": "@a:x"})
    assert f.presence.matches("m.presence", "@a:x")


def test_types_senders_and_wildcards() -> None:
    f = parse_filter(
        {
            "room": {
                "timeline": {
                    "types": ["m.room.*", "org.example"],
                    "not_types": ["m.room.member"],
                    "not_senders": ["@spam:x"],
                    "limit": 3,
                }
            }
        }
    )
    tl = f.room.timeline
    assert tl.matches({"type": "m.room.message", "sender": "@a:x"})
    assert tl.matches({"type": "org.example", "sender": "@a:x"})
    assert not tl.matches({"type": "org.example.other", "sender": "@a:x"})
    assert not tl.matches({"type": "m.room.member", "sender": "@a:x"})
    assert not tl.matches({"type": "m.room.message", "sender": "@spam:x"})
    assert f.room.timeline_limit == 3


def test_not_lists_win_and_rooms_apply() -> None:
    f = parse_filter(
        {
            "room": {
                "rooms": ["!a:x", "!b:x"],
                "not_rooms": ["!b:x"],
                "state": {"senders": ["@a:x"], "not_senders": ["@a:x"]},
                "include_leave": True,
            }
        }
    )
    assert f.room.includes_room("!a:x")
    assert not f.room.includes_room("!b:x")
    assert not f.room.includes_room("!c:x")
    assert f.room.include_leave
    assert not f.room.state.matches({"type": "m.room.name", "sender": "@a:x"})


def test_empty_type_list_means_nothing() -> None:
    f = parse_filter({"presence": {"types": []}, "room": {"ephemeral": {"types": []}}})
    assert f.presence.excludes_everything()
    assert not f.presence.matches("m.presence")
    assert f.room.ephemeral.excludes_everything()


def test_contains_url_and_lazy_loading_flags() -> None:
    f = parse_filter(
        {
            "room": {
                "timeline": {"contains_url": True},
                "state": {"lazy_load_members": True, "include_redundant_members": True},
            }
        }
    )
    tl = f.room.timeline
    assert tl.matches({"type": "m.room.message", "content": {"url": "mxc://x/y"}})
    assert not tl.matches({"type": "m.room.message", "content": {"body": "hi"}})
    assert f.room.state.lazy_load_members
    assert f.room.state.include_redundant_members


def test_limit_is_capped() -> None:
    assert parse_filter(
        {"room": {"timeline": {"limit": 10**6}}}
    ).room.timeline_limit == (MAX_TIMELINE_LIMIT)
    assert parse_filter({"room": {"timeline": {"limit": 0}}}).room.timeline_limit == 0


@pytest.mark.parametrize(
    "raw",
    [
        [],
        "x",
        {"event_format": "xml"},
        {"event_fields": "content.body"},
        {"event_fields": [1]},
        {"event_fields": [".x"]},
        {"room": []},
        {"room": {"timeline": {"limit": "10"}}},
        {"room": {"timeline": {"limit": -1}}},
        {"room": {"timeline": {"limit": True}}},
        {"room": {"timeline": {"types": "m.room.message"}}},
        {"room": {"timeline": {"senders": ["alice"]}}},
        {"room": {"rooms": ["#alias:x"]}},
        {"room": {"state": {"lazy_load_members": "yes"}}},
        {"room": {"include_leave": 1}},
        {"presence": {"not_types": [None]}},
    ],
)
def test_invalid_filters_raise_filter_error(raw: Any) -> None:
    with pytest.raises(FilterError):
        parse_filter(raw)


def test_event_fields() -> None:
    assert split_field_path("content.body") == ["content", "body"]
    assert split_field_path(r"content.m\.relates_to") == ["content", "m.relates_to"]
    event = {
        "type": "m.room.message",
        "sender": "@a:x",
        "content": {"body": "hi", "msgtype": "m.text", "m.relates_to": {"x": 1}},
    }
    assert only_fields(event, ("type", "content.body", r"content.m\.relates_to")) == {
        "type": "m.room.message",
        "content": {"body": "hi", "m.relates_to": {"x": 1}},
    }
    assert only_fields(event, ("missing", "type.sub")) == {}
