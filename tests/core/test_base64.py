"""Unpadded base64 (spec: Appendices > Unpadded Base64)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ranvier.core.crypto.base64 import (
    Base64Error,
    decode_base64,
    decode_urlsafe_base64,
    encode_base64,
    encode_urlsafe_base64,
)
from tests.core.spec_vectors import load_vectors

CASES = load_vectors("unpadded_base64.json")["cases"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["encoded"] or "empty")
def test_spec_vectors(case: dict[str, str]) -> None:
    raw = case["input_utf8"].encode("utf-8")
    assert encode_base64(raw) == case["encoded"]
    assert decode_base64(case["encoded"]) == raw
    assert decode_base64(case["encoded"].encode("ascii")) == raw


@settings(deadline=None)
@given(st.binary(max_size=100))
def test_round_trip_and_agrees_with_stdlib(data: bytes) -> None:
    std = encode_base64(data)
    url = encode_urlsafe_base64(data)
    assert "=" not in std
    assert "=" not in url
    assert std == base64.b64encode(data).decode().rstrip("=")
    assert url == base64.urlsafe_b64encode(data).decode().rstrip("=")
    assert decode_base64(std) == data
    assert decode_urlsafe_base64(url) == data
    # Decoders accept padded input too (spec: SHOULD accept with or without padding).
    assert decode_base64(base64.b64encode(data).decode()) == data
    assert decode_urlsafe_base64(base64.urlsafe_b64encode(data)) == data


def test_alphabets_differ() -> None:
    data = b"\xfb\xff\xbf"
    assert encode_base64(data) == "+/+/"
    assert encode_urlsafe_base64(data) == "-_-_"
    with pytest.raises(Base64Error):
        decode_base64("-_-_")
    with pytest.raises(Base64Error):
        decode_urlsafe_base64("+/+/")


@pytest.mark.parametrize(
    "bad",
    ["Z", "Zm9vY", "Zm9v=", "Zg=", "Zg===", "Zm 9v", "Zm9v\n", "Zé", "Z!9v", "=Zm9"],
)
def test_invalid_input_rejected(bad: str) -> None:
    with pytest.raises(Base64Error):
        decode_base64(bad)
