"""Dot-separated property paths (spec: Appendices > Dot-separated property paths).

`content.m\\.relates_to` names the key `m.relates_to` inside `content`: a backslash
escapes a dot or another backslash; any other backslash is kept as-is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

MISSING: Final = object()


def split_path(path: str) -> tuple[str, ...]:
    """The keys of a dotted path, escapes resolved."""
    keys: list[str] = []
    current: list[str] = []
    i = 0
    n = len(path)
    while i < n:
        c = path[i]
        if c == "\\" and i + 1 < n and path[i + 1] in ".\\":
            current.append(path[i + 1])
            i += 2
            continue
        if c == ".":
            keys.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    keys.append("".join(current))
    return tuple(keys)


def lookup(obj: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    """The value at `keys` inside `obj`, or `MISSING` when any step is absent or is not
    an object."""
    value: Any = obj
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return MISSING
        value = value[key]
    return value
