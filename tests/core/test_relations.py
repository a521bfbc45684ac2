"""`m.relates_to` parsing (spec: C-S API > Forming relationships between events)."""

from __future__ import annotations

from typing import Any

import pytest

from ranvier.core.events.relations import Relation, relation_of


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"m.relates_to": {"rel_type": "m.thread", "event_id": "$a"}},
         Relation("m.thread", "$a")),
        ({"m.relates_to": {"rel_type": "m.annotation", "event_id": "$a", "key": "👍"}},
         Relation("m.annotation", "$a", "👍")),
        ({"m.relates_to": {"rel_type": "m.annotation", "event_id": "$a", "key": 1}},
         Relation("m.annotation", "$a", None)),
        # Keys only matter for annotations.
        ({"m.relates_to": {"rel_type": "m.reference", "event_id": "$a", "key": "k"}},
         Relation("m.reference", "$a", None)),
        ({}, None),
        ({"m.relates_to": []}, None),
        ({"m.relates_to": {"event_id": "$a"}}, None),
        ({"m.relates_to": {"rel_type": "m.thread"}}, None),
        ({"m.relates_to": {"rel_type": "", "event_id": "$a"}}, None),
        ({"m.relates_to": {"rel_type": "m.thread", "event_id": ""}}, None),
        ({"m.relates_to": {"rel_type": ["x"], "event_id": "$a"}}, None),
        ({"m.relates_to": {"m.in_reply_to": {"event_id": "$a"}}}, None),
    ],
)  # fmt: skip
def test_relation_of(content: dict[str, Any], expected: Relation | None) -> None:
    assert relation_of(content) == expected
