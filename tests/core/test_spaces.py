"""Spaces in the protocol core: which children count, their order, who may preview a
room, and the pagination token."""

from __future__ import annotations

import pytest

from ranvier.core.spaces import (
    HierarchyToken,
    InvalidHierarchyToken,
    ordered_children,
    parse_space_child,
    room_is_previewable,
)


def test_children_need_a_via() -> None:
    assert parse_space_child("!a:hs", {}, "@s:hs", 1) is None
    assert parse_space_child("!a:hs", {"via": []}, "@s:hs", 1) is None
    assert parse_space_child("!a:hs", {"via": [5]}, "@s:hs", 1) is None
    child = parse_space_child("!a:hs", {"via": ["hs"], "suggested": True}, "@s:hs", 1)
    assert child is not None
    assert child.suggested
    assert child.stripped() == {
        "type": "m.space.child",
        "state_key": "!a:hs",
        "sender": "@s:hs",
        "content": {"via": ["hs"], "suggested": True},
        "origin_server_ts": 1,
    }


def test_spec_order() -> None:
    def child(room: str, ts: int, order: object = None) -> object:
        content: dict[str, object] = {"via": ["hs"]}
        if order is not None:
            content["order"] = order
        return parse_space_child(room, content, "@s:hs", ts)

    children = [
        child("!z", 1),
        child("!y", 1),
        child("!x", 0),
        child("!b", 9, "b"),
        child("!a", 9, "a"),
        child("!bad", 0, "\n"),  # not printable ASCII: no order
        child("!long", 0, "x" * 51),
        child("!num", 0, 5),
    ]
    got = [c.room_id for c in ordered_children(children)]  # type: ignore[arg-type]
    assert got == ["!a", "!b", "!bad", "!long", "!num", "!x", "!y", "!z"]


@pytest.mark.parametrize(
    ("join_rule", "world_readable", "membership", "allowed", "expected"),
    [
        ("public", False, None, False, True),
        ("knock", False, None, False, True),
        ("knock_restricted", False, None, False, True),
        ("invite", False, None, False, False),
        ("invite", True, None, False, True),
        ("invite", False, "invite", False, True),
        ("invite", False, "join", False, True),
        ("invite", False, "leave", False, False),
        ("public", False, "ban", False, False),
        ("restricted", False, None, True, True),
        ("restricted", False, None, False, False),
    ],
)
def test_previewable(
    join_rule: str,
    world_readable: bool,
    membership: str | None,
    allowed: bool,
    expected: bool,
) -> None:
    assert (
        room_is_previewable(
            join_rule=join_rule,
            world_readable=world_readable,
            membership=membership,
            in_allowed_room=allowed,
        )
        is expected
    )


def test_token_round_trip_is_bound_to_the_room() -> None:
    token = HierarchyToken(20, 3, True, "!space:hs")
    assert HierarchyToken.decode(token.encode(), "!space:hs") == token
    with pytest.raises(InvalidHierarchyToken):
        HierarchyToken.decode(token.encode(), "!other:hs")
    with pytest.raises(InvalidHierarchyToken):
        HierarchyToken.decode("20_3_1", "!space:hs")
