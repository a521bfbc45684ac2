"""JSON encoding and decoding, including Matrix canonical JSON.

Spec: Appendices > Signing JSON > Canonical JSON. Canonical JSON is UTF-8 with no
insignificant whitespace, object keys sorted by code point, no escaping beyond what JSON
requires (`"`, `\\`, control characters), and numbers only as integers in
[-(2**53)+1, (2**53)-1]. Room versions 1-5 do not enforce the number rule ("Canonical JSON"
section of the v1 room version): their events may carry floats and big integers, which
must then be encoded exactly as Synapse does (Python's `json` module) so that hashes and
signatures agree.

orjson produces the same bytes as the `canonicaljson` package for strings and integers
(checked by property tests), at ~10x the speed; the number checks are a single cheap walk.
"""

from __future__ import annotations

import json as _stdlib_json
from typing import Any, Final

import orjson

__all__ = [
    "CANONICAL_JSON_INT_MAX",
    "CANONICAL_JSON_INT_MIN",
    "MAX_JSON_NESTING",
    "CanonicalJsonError",
    "InvalidJsonError",
    "contains_nul",
    "decode_json",
    "encode_canonical_json",
    "encode_json",
    "exceeds_nesting",
    "is_big_integer",
]

CANONICAL_JSON_INT_MAX: Final = 2**53 - 1
CANONICAL_JSON_INT_MIN: Final = -(2**53) + 1


# How deeply objects and arrays may nest in what clients send and in events. orjson
# encodes at most 254 levels (and decodes 1024): a value accepted deeper than that could
# be stored but never served again, and a room event nested that deep would break /sync
# and /messages for every member (the event is wrapped in ~10 more levels there).
# serde_json (Conduit, Tuwunel) stops at 128, so no deeper event federates everywhere.
MAX_JSON_NESTING: Final = 128


class CanonicalJsonError(ValueError):
    """The value cannot be encoded as (strict) canonical JSON."""


class InvalidJsonError(ValueError):
    """The bytes are not valid JSON (syntax, encoding, NaN/Infinity, lone surrogates)."""


# orjson would otherwise silently serialise dataclasses and datetimes, which are never
# part of a Matrix JSON object; with passthrough and no `default` they raise instead.
_BASE_OPTS: Final = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
# OPT_STRICT_INTEGER is exactly the spec's range: [-(2**53)+1, (2**53)-1].
_STRICT_OPTS: Final = _BASE_OPTS | orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
_LENIENT_OPTS: Final = _BASE_OPTS | orjson.OPT_SORT_KEYS

# What `canonicaljson` (and so Synapse) emits for room v1-v5 values orjson cannot
# reproduce byte for byte: floats (repr formatting) and integers beyond 64 bits.
_PY_CANONICAL_ENCODER: Final = _stdlib_json.JSONEncoder(
    ensure_ascii=False,
    allow_nan=False,
    separators=(",", ":"),
    sort_keys=True,
)

_PLAIN_SCALARS: Final = frozenset({str, int, bool, type(None)})


def exceeds_nesting(value: Any, limit: int = MAX_JSON_NESTING) -> bool:
    """True if objects/arrays in `value` nest more than `limit` levels deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if type(item) is dict else item if type(item) is list else ()
        )
        for child in children:
            if type(child) is dict or type(child) is list:
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def contains_nul(value: Any) -> bool:
    """True if any string in `value`, object keys included, contains U+0000."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if type(item) is str:
            if "\x00" in item:
                return True
        elif type(item) is dict:
            for k, v in item.items():
                if "\x00" in k:
                    return True
                stack.append(v)
        elif type(item) is list:
            stack.extend(item)
    return False


def _contains_float(value: Any) -> bool:
    """True if any number in `value` is a float (incl. NaN/Infinity and subclasses).

    Called after orjson has accepted the value, so only JSON-able containers remain and
    nesting is bounded by orjson's recursion limit. The loops skip strings and ints
    without a call: events are mostly strings.
    """
    t = type(value)
    if t is dict:
        for v in value.values():
            tv = type(v)
            if tv is str or tv is int:
                continue
            if _contains_float(v):
                return True
        return False
    if t is list or t is tuple:
        for v in value:
            tv = type(v)
            if tv is str or tv is int:
                continue
            if _contains_float(v):
                return True
        return False
    if t in _PLAIN_SCALARS:
        return False
    if isinstance(value, dict):
        return _contains_float(dict(value))
    if isinstance(value, list | tuple):
        return _contains_float(list(value))
    return isinstance(value, float)


def is_big_integer(value: Any) -> bool:
    """An integral number past canonical JSON's range. orjson parses integers beyond
    64 bits as floats, so `99999999999999999999` arrives as `1e20`: for the client it
    is an integer out of range, not a float."""
    return (
        isinstance(value, float)
        and value.is_integer()
        and not CANONICAL_JSON_INT_MIN <= value <= CANONICAL_JSON_INT_MAX
    )


def _number_problem(value: Any) -> str:
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif is_big_integer(item):
            return "integer out of range (canonical JSON allows ±(2**53 - 1))"
    return "floats are not allowed (numbers must be integers)"


def encode_canonical_json(value: Any, *, strict: bool = True) -> bytes:
    """Encode `value` as canonical JSON bytes.

    `strict=True` (room v6+ and every non-event use) rejects floats and integers outside
    [-(2**53)+1, (2**53)-1] with `CanonicalJsonError`. `strict=False` (room v1-v5) accepts
    them and formats them as Python's `json` module does, matching Synapse.
    Non-string keys, NaN/Infinity, lone surrogates and non-JSON types always raise.
    """
    if strict:
        try:
            out = orjson.dumps(value, option=_STRICT_OPTS)
        except orjson.JSONEncodeError as e:
            raise CanonicalJsonError(f"not canonical JSON: {e}") from None
        if _contains_float(value):
            raise CanonicalJsonError(f"not canonical JSON: {_number_problem(value)}")
        return out
    try:
        out = orjson.dumps(value, option=_LENIENT_OPTS)
    except orjson.JSONEncodeError as e:
        if "Integer exceeds 64-bit range" not in str(e):
            raise CanonicalJsonError(f"not canonical JSON: {e}") from None
        return _encode_with_stdlib(value)
    if _contains_float(value):
        return _encode_with_stdlib(value)
    return out


def _encode_with_stdlib(value: Any) -> bytes:
    try:
        return _PY_CANONICAL_ENCODER.encode(value).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as e:
        raise CanonicalJsonError(f"not canonical JSON: {e}") from None


def encode_json(value: Any) -> bytes:
    """Compact JSON (no key sorting) for responses and storage.

    Non-JSON values (non-string keys, sets, other objects) raise `TypeError`: they are
    programming errors, not bad input. Note that orjson writes NaN/Infinity as `null`.
    """
    try:
        return orjson.dumps(value, option=_BASE_OPTS)
    except orjson.JSONEncodeError as e:
        raise TypeError(f"cannot encode as JSON: {e}") from None


def decode_json(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON text; raise `InvalidJsonError` for anything that is not strict JSON.

    Rejected: syntax errors, invalid UTF-8, `NaN`/`Infinity` literals, numbers that
    overflow a double, and lone UTF-16 surrogate escapes (they cannot be re-encoded as
    UTF-8, so no signature over them could be checked). Note that integers beyond 64 bits
    come back as floats, and `1e10` as a float: strict canonical JSON then rejects them,
    as Synapse does.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise InvalidJsonError(f"invalid JSON: {e}") from None
