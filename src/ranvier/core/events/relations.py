"""Reading `m.relates_to` (spec: C-S API > Forming relationships between events).

An event relates to another when its content has an `m.relates_to` object with a string
`rel_type` and a string `event_id`. Rich replies (`m.in_reply_to` without `rel_type`)
are not relationships in this sense and are not indexed. For `m.annotation` the
`key` is kept (the aggregation key of reactions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "REL_ANNOTATION",
    "REL_REFERENCE",
    "REL_REPLACE",
    "REL_THREAD",
    "Relation",
    "relation_of",
]

REL_THREAD = "m.thread"
REL_REPLACE = "m.replace"
REL_REFERENCE = "m.reference"
REL_ANNOTATION = "m.annotation"


@dataclass(frozen=True, slots=True)
class Relation:
    rel_type: str
    event_id: str
    key: str | None = None


def relation_of(content: Mapping[str, Any]) -> Relation | None:
    """The relationship `content` declares, or None when it declares none (or a
    malformed one, which the spec says servers must ignore)."""
    relates_to = content.get("m.relates_to")
    if not isinstance(relates_to, dict):
        return None
    rel_type = relates_to.get("rel_type")
    parent = relates_to.get("event_id")
    if not isinstance(rel_type, str) or not isinstance(parent, str):
        return None
    if not rel_type or not parent:
        return None
    key: str | None = None
    if rel_type == REL_ANNOTATION:
        raw_key = relates_to.get("key")
        key = raw_key if isinstance(raw_key, str) else None
    return Relation(rel_type, parent, key)
