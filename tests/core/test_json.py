"""Canonical JSON (spec: Appendices > Signing JSON > Canonical JSON) against the spec
vectors and the `canonicaljson` package as an oracle."""

from __future__ import annotations

import json
import random
from typing import Any

import canonicaljson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ranvier.core.json import (
    CANONICAL_JSON_INT_MAX,
    CANONICAL_JSON_INT_MIN,
    CanonicalJsonError,
    InvalidJsonError,
    decode_json,
    encode_canonical_json,
    encode_json,
)
from tests.core.spec_vectors import load_vectors, parse_spec_json

CANONICAL_CASES = load_vectors("canonical_json.json")["cases"]

canonical_ints = st.integers(
    min_value=CANONICAL_JSON_INT_MIN, max_value=CANONICAL_JSON_INT_MAX
)
json_scalars = st.none() | st.booleans() | canonical_ints | st.text()


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=6) | st.dictionaries(
        st.text(), children, max_size=6
    )


canonical_values = st.recursive(json_scalars, _containers, max_leaves=40)
lenient_scalars = (
    json_scalars | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
)
lenient_values = st.recursive(lenient_scalars, _containers, max_leaves=40)


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


@pytest.mark.parametrize("case", CANONICAL_CASES, ids=lambda c: c["canonical"][:30])
def test_spec_vectors(case: dict[str, str]) -> None:
    value = parse_spec_json(case["input"])
    assert encode_canonical_json(value) == case["canonical"].encode("utf-8")
    assert canonicaljson.encode_canonical_json(value) == case["canonical"].encode(
        "utf-8"
    )


@settings(deadline=None)
@given(canonical_values)
def test_same_bytes_as_oracle(value: Any) -> None:
    assert encode_canonical_json(value) == canonicaljson.encode_canonical_json(value)


@settings(deadline=None)
@given(lenient_values)
def test_lenient_mode_same_bytes_as_oracle(value: Any) -> None:
    assert encode_canonical_json(
        value, strict=False
    ) == canonicaljson.encode_canonical_json(value)


@settings(deadline=None)
@given(canonical_values, st.randoms(use_true_random=False))
def test_key_order_does_not_matter(value: Any, rng: random.Random) -> None:
    assert encode_canonical_json(_shuffled(value, rng)) == encode_canonical_json(value)


@settings(deadline=None)
@given(canonical_values)
def test_round_trip(value: Any) -> None:
    encoded = encode_canonical_json(value)
    assert decode_json(encoded) == value
    assert encode_canonical_json(decode_json(encoded)) == encoded


@settings(deadline=None)
@given(canonical_values)
def test_output_has_no_insignificant_whitespace(value: Any) -> None:
    assert json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8") == encode_canonical_json(value)


def test_escapes_only_what_json_requires() -> None:
    s = "".join(chr(i) for i in range(0x30)) + "\x7f\u2028\u2029é日\U0001f600\\"
    out = encode_canonical_json({"s": s})
    assert out == canonicaljson.encode_canonical_json({"s": s})
    assert "é日\U0001f600".encode() in out
    for escaped in (b"\\u001f", b"\\n", b'\\"', b"\\\\"):
        assert escaped in out


def test_keys_sorted_by_code_point_not_utf16() -> None:
    # U+FFFF sorts before U+1F600 by code point, but after it in UTF-16 order.
    out = encode_canonical_json({"\U0001f600": 1, "\uffff": 2, "a": 3})
    assert out == '{"a":3,"\uffff":2,"\U0001f600":1}'.encode()


@pytest.mark.parametrize("n", [CANONICAL_JSON_INT_MIN, CANONICAL_JSON_INT_MAX, 0, -1])
def test_integer_limits_inclusive(n: int) -> None:
    assert encode_canonical_json([n]) == f"[{n}]".encode()


@pytest.mark.parametrize(
    "n",
    [CANONICAL_JSON_INT_MAX + 1, CANONICAL_JSON_INT_MIN - 1, 2**63, 2**64, -(2**70)],
)
def test_integers_out_of_range_rejected_when_strict(n: int) -> None:
    with pytest.raises(CanonicalJsonError):
        encode_canonical_json({"a": {"b": [n]}})
    assert encode_canonical_json(
        {"a": n}, strict=False
    ) == canonicaljson.encode_canonical_json({"a": n})


def test_integers_parsed_as_floats_are_out_of_range() -> None:
    # orjson reads integers past 64 bits as floats: for the sender they are integers.
    value = decode_json(b'{"a": 99999999999999999999}')
    with pytest.raises(CanonicalJsonError, match="integer out of range"):
        encode_canonical_json(value)


@pytest.mark.parametrize("f", [1.0, 0.5, -0.0, 1e100, 1e-7])
def test_floats_rejected_when_strict_and_python_formatted_when_lenient(
    f: float,
) -> None:
    # An integral float past 2**53 reads as "integer out of range" instead.
    with pytest.raises(CanonicalJsonError, match=r"float|integer out of range"):
        encode_canonical_json({"a": [1, {"b": f}]})
    assert encode_canonical_json({"a": f}, strict=False) == json.dumps(
        {"a": f}, separators=(",", ":")
    ).encode("utf-8")


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_infinity_always_rejected(strict: bool, bad: float) -> None:
    with pytest.raises(CanonicalJsonError):
        encode_canonical_json({"a": bad}, strict=strict)


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize(
    "bad", [{1: "a"}, {"a": object()}, {"a": {1, 2}}, {"a": "\ud800"}, b"x"]
)
def test_non_json_values_rejected(strict: bool, bad: Any) -> None:
    with pytest.raises(CanonicalJsonError):
        encode_canonical_json(bad, strict=strict)


def test_tuples_and_subclasses_encode_like_lists_and_dicts() -> None:
    class D(dict[str, Any]):
        pass

    value = D(b=(1, 2), a=D(c=[]))
    assert encode_canonical_json(value) == b'{"a":{"c":[]},"b":[1,2]}'
    with pytest.raises(CanonicalJsonError):
        encode_canonical_json(D(x=(1.5,)))


def test_booleans_are_not_integers() -> None:
    assert encode_canonical_json([True, False, None]) == b"[true,false,null]"


@pytest.mark.parametrize(
    "text",
    [
        b"NaN",
        b"[Infinity]",
        b"[-Infinity]",
        b"{",
        b'{"a":1}x',
        b"[1e400]",
        b'"\\ud800"',
        b'"\xff"',
        b"",
        b"{'a': 1}",
    ],
)
def test_decode_rejects_invalid_json(text: bytes) -> None:
    with pytest.raises(InvalidJsonError, match="invalid JSON"):
        decode_json(text)


def test_decode_accepts_str_and_bytes() -> None:
    assert decode_json('{"a": [1, 2.5, "é"]}') == {"a": [1, 2.5, "é"]}
    assert decode_json(b'{"a":null}') == {"a": None}


def test_decoded_floats_are_rejected_by_strict_encoding() -> None:
    # Synapse behaves the same: `1e10` parses as a float, which v6+ events may not carry.
    value = decode_json(b'{"a":1e10}')
    with pytest.raises(CanonicalJsonError):
        encode_canonical_json(value)


def test_encode_json_is_compact_and_unsorted() -> None:
    assert encode_json({"b": 1, "a": [1.5, None]}) == b'{"b":1,"a":[1.5,null]}'
    with pytest.raises(TypeError, match="cannot encode as JSON"):
        encode_json({"a": object()})
