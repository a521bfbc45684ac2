"""The sync token: round trips, ordering helpers, and rejection of anything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ranvier.core.streams import InvalidTokenError, StreamKey, SyncToken

positions = st.integers(min_value=0, max_value=2**63 - 1)


@given(st.lists(positions, min_size=7, max_size=7))
def test_round_trip(values: list[int]) -> None:
    token = SyncToken(*values)
    text = token.encode()
    assert text.startswith("s")
    assert SyncToken.decode(text) == token


def test_encoding_is_in_stream_order() -> None:
    token = SyncToken(1, 2, 3, 4, 5, 6, 7)
    assert token.encode() == "s1_2_3_4_5_6_7"
    assert [token.get(k) for k in StreamKey] == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "s",
        "t1-2",
        "s1_2_3",
        "s1_2_3_4_5_6_7_8",
        "s1_2_3_4_5_6_x",
        "s1_2_3_4_5_6_-7",
        "s1_2_3_4_5_6_²",
        "s1_2_3_4_5_6_99999999999999999999",
        "s1_2_3_4_5_6_9223372036854775808",
        "S1_2_3_4_5_6_7",
        "s1_2_3_4_5_6_ 7",
    ],
)
def test_rejects_malformed(text: str) -> None:
    with pytest.raises(InvalidTokenError):
        SyncToken.decode(text)


def test_advance_and_compare() -> None:
    a = SyncToken(events=5, typing=2)
    assert a.advanced_to(StreamKey.EVENTS, 3) is a
    b = a.advanced_to(StreamKey.EVENTS, 9)
    assert b.events == 9
    assert b.is_after(a)
    assert not a.is_after(b)
    assert not a.is_after(a)
    assert a.with_position(StreamKey.TO_DEVICE, 4).to_device == 4
