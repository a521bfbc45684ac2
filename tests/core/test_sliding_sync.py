"""core/sliding_sync.py: parsing what clients send, required_state matching and
combining, list filters, ordering and ranges."""

from __future__ import annotations

import pytest

from ranvier.core.errors import MatrixError
from ranvier.core.sliding_sync import (
    ExtensionConfig,
    ListFilters,
    RequiredState,
    RoomConfig,
    RoomFacts,
    extension_rooms,
    parse_request,
    parse_required_state,
    room_matches,
    rooms_in_ranges,
    sort_rooms,
)

ME = "@me:x"


def test_required_state_pairs_wildcards_me_and_lazy() -> None:
    spec = parse_required_state(
        [
            ["m.room.name", ""],
            ["m.room.member", "$ME"],
            ["m.room.member", "$LAZY"],
            ["m.space.child", "*"],
            ["*", "special"],
        ]
    )
    assert spec.lazy
    assert spec.matches(("m.room.name", ""), ME)
    assert not spec.matches(("m.room.topic", ""), ME)
    assert spec.matches(("m.room.member", ME), ME)
    assert not spec.matches(("m.room.member", "@other:x"), ME)
    assert spec.matches(("m.space.child", "!a:x"), ME)
    assert spec.matches(("anything", "special"), ME)
    everything = parse_required_state([["*", "*"]])
    assert everything.matches(("m.room.member", "@other:x"), ME)
    assert everything.state_query(ME).full
    query = spec.state_query(ME)
    assert query.full  # ["*", "special"] needs every type
    query = parse_required_state(
        [["m.room.name", ""], ["m.room.member", "$ME"], ["m.space.child", "*"]]
    ).state_query(ME)
    assert not query.full
    assert query.types == {"m.space.child"}
    assert query.keys == {("m.room.name", ""), ("m.room.member", ME)}


def test_required_state_object_form_and_round_trip() -> None:
    spec = parse_required_state(
        {"include": [{}], "exclude": [{"type": "m.room.create"}], "lazy_members": True}
    )
    assert spec.lazy
    assert spec.matches(("m.room.name", ""), ME)
    assert not spec.matches(("m.room.create", ""), ME)
    assert RequiredState.from_json(spec.to_json()) == spec
    # Combined, an exclusion of one config does not hide what the other asks for.
    other = parse_required_state([["m.room.create", ""]])
    assert spec.combine(other).matches(("m.room.create", ""), ME)


@pytest.mark.parametrize(
    "raw", ["nope", [["a"]], [["a", 1]], {"include": "x"}, {"lazy_members": "yes"}]
)
def test_required_state_bad_input(raw: object) -> None:
    with pytest.raises(MatrixError) as e:
        parse_required_state(raw)
    assert e.value.errcode == "M_BAD_JSON"


def test_room_config_combine() -> None:
    a = RoomConfig(1, parse_required_state([["m.room.name", ""]]))
    b = RoomConfig(10, parse_required_state([["m.room.member", "$LAZY"]]))
    c = a.combine(b)
    assert c.timeline_limit == 10
    assert c.required_state.lazy
    assert c.required_state.matches(("m.room.name", ""), ME)


def test_parse_request_both_spellings() -> None:
    req = parse_request(
        {
            "conn_id": "room-list",
            "lists": {
                "a": {"ranges": [[0, 19], [40, 49]], "timeline_limit": 1},
                "b": {
                    "range": [0, 5],
                    "timeline_limit": 500,
                    "filters": {"is_invited": True, "room_types": [None, "m.space"]},
                },
            },
            "room_subscriptions": {"!r:x": {"timeline_limit": 20}},
            "unsubscribe_rooms": ["!old:x"],
            "extensions": {
                "typing": {"enabled": True, "lists": ["*"], "rooms": ["!r:x"]}
            },
        }
    )
    assert req.conn_id == "room-list"
    assert req.lists["a"].ranges == ((0, 19), (40, 49))
    assert req.lists["b"].ranges == ((0, 5),)
    assert req.lists["b"].config.timeline_limit == 100  # capped
    assert req.lists["b"].filters.is_invite is True
    assert req.lists["b"].filters.room_types == (None, "m.space")
    assert req.room_subscriptions["!r:x"].timeline_limit == 20
    assert req.unsubscribe_rooms == ("!old:x",)
    typing = req.extension("typing")
    assert typing == ExtensionConfig(enabled=True, lists=None, rooms=("!r:x",))
    assert req.extension("receipts").enabled is False


def test_filters() -> None:
    dm = RoomFacts("!dm", "join", 5, is_dm=True, encrypted=True)
    space = RoomFacts("!space", "join", 4, room_type="m.space")
    invite = RoomFacts("!inv", "invite", 3, tags=frozenset({"m.favourite"}))
    rooms = [dm, space, invite]

    def ids(flt: ListFilters, children: frozenset[str] | None = None) -> list[str]:
        return [f.room_id for f in rooms if room_matches(f, flt, children)]

    assert ids(ListFilters(is_dm=True)) == ["!dm"]
    assert ids(ListFilters(is_dm=False)) == ["!space", "!inv"]
    assert ids(ListFilters(is_invite=True)) == ["!inv"]
    assert ids(ListFilters(is_encrypted=True)) == ["!dm"]
    assert ids(ListFilters(room_types=(None,))) == ["!dm", "!inv"]
    assert ids(ListFilters(not_room_types=("m.space",))) == ["!dm", "!inv"]
    assert ids(ListFilters(room_types=("m.space",), not_room_types=("m.space",))) == []
    assert ids(ListFilters(tags=("m.favourite",))) == ["!inv"]
    assert ids(ListFilters(not_tags=("m.favourite",))) == ["!dm", "!space"]
    assert ids(ListFilters(tags=("m.favourite",), not_tags=("m.favourite",))) == []
    assert ids(ListFilters(spaces=("!space",)), frozenset({"!dm"})) == ["!dm"]


def test_order_ranges_and_extension_scope() -> None:
    facts = [
        RoomFacts("!b", "join", 2),
        RoomFacts("!a", "join", 2),
        RoomFacts("!c", "join", 9),
    ]
    ordered = [f.room_id for f in sort_rooms(facts)]
    assert ordered == ["!c", "!a", "!b"]
    assert rooms_in_ranges(ordered, ((0, 0), (2, 10))) == ["!c", "!b"]
    assert rooms_in_ranges(ordered, ((0, 1), (1, 2))) == ["!c", "!a", "!b"]
    assert rooms_in_ranges(ordered, None) == ordered
    lists = {"all": ["!a", "!b"], "dms": ["!c"]}
    assert extension_rooms(ExtensionConfig(enabled=True), lists, ["!s"]) == {
        "!a",
        "!b",
        "!c",
        "!s",
    }
    only = ExtensionConfig(enabled=True, lists=("dms",), rooms=())
    assert extension_rooms(only, lists, ["!s"]) == {"!c"}


def test_parse_threads_extension() -> None:
    req = parse_request(
        {
            "extensions": {
                "threads": {"enabled": True, "limit": 5, "include_roots": True}
            }
        }
    )
    ext = req.extension("threads")
    assert (ext.enabled, ext.limit, ext.include_roots) == (True, 5, True)
    plain = parse_request({"extensions": {"threads": {"enabled": True}}})
    assert (
        plain.extension("threads").limit,
        plain.extension("threads").include_roots,
    ) == (
        None,
        False,
    )
    for bad in (0, -1, "5", True):
        with pytest.raises(MatrixError):
            parse_request({"extensions": {"threads": {"enabled": True, "limit": bad}}})
