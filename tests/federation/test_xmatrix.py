"""X-Matrix request signing and header parsing (pure)."""

from __future__ import annotations

import pytest

from ranvier.core.crypto.errors import SignatureError
from ranvier.core.crypto.keys import SigningKey
from ranvier.federation.xmatrix import (
    XMatrixAuth,
    XMatrixParseError,
    format_x_matrix,
    parse_x_matrix,
    sign_request,
    verify_request_signature,
)

KEY = SigningKey(bytes(range(32)), "k1")
OTHER_KEY = SigningKey(bytes(range(1, 33)), "k1")
URI = "/_matrix/federation/v1/query/profile?user_id=%40alice%3Aa.test&field=displayname"


def test_round_trip_with_and_without_content() -> None:
    for content in (None, {"pdus": [], "edus": [{"edu_type": "m.typing"}]}):
        header = sign_request(KEY, "a.test", "b.test", "PUT", URI, content)
        auth = parse_x_matrix(header)
        assert auth.origin == "a.test"
        assert auth.destination == "b.test"
        assert auth.key_id == "ed25519:k1"
        verify_request_signature(auth, "b.test", "PUT", URI, content, KEY.verify_key)


@pytest.mark.parametrize(
    ("method", "uri", "content", "our_name", "key"),
    [
        ("GET", URI, {"x": 1}, "b.test", KEY),  # method changed
        ("PUT", URI + "&more=1", {"x": 1}, "b.test", KEY),  # uri changed
        ("PUT", URI, {"x": 2}, "b.test", KEY),  # content changed
        ("PUT", URI, None, "b.test", KEY),  # content dropped
        ("PUT", URI, {"x": 1}, "c.test", KEY),  # delivered to another server
        ("PUT", URI, {"x": 1}, "b.test", OTHER_KEY),  # another key
    ],
)
def test_any_change_breaks_the_signature(
    method: str, uri: str, content: object, our_name: str, key: SigningKey
) -> None:
    auth = parse_x_matrix(sign_request(KEY, "a.test", "b.test", "PUT", URI, {"x": 1}))
    with pytest.raises(SignatureError):
        verify_request_signature(auth, our_name, method, uri, content, key.verify_key)


def test_tampered_signature_is_rejected() -> None:
    auth = parse_x_matrix(sign_request(KEY, "a.test", "b.test", "GET", URI, None))
    sig = auth.signature
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    bad = XMatrixAuth(auth.origin, auth.destination, auth.key_id, flipped)
    with pytest.raises(SignatureError):
        verify_request_signature(bad, "b.test", "GET", URI, None, KEY.verify_key)
    garbage = XMatrixAuth(auth.origin, auth.destination, auth.key_id, "!!not base64")
    with pytest.raises(SignatureError):
        verify_request_signature(garbage, "b.test", "GET", URI, None, KEY.verify_key)


def test_header_without_destination_verifies_against_our_name() -> None:
    # Older servers sign `destination` but do not send it in the header.
    full = parse_x_matrix(sign_request(KEY, "a.test", "b.test", "GET", URI, None))
    old_style = f'X-Matrix origin=a.test,key="{full.key_id}",sig="{full.signature}"'
    auth = parse_x_matrix(old_style)
    assert auth.destination is None
    verify_request_signature(auth, "b.test", "GET", URI, None, KEY.verify_key)


@pytest.mark.parametrize(
    "header",
    [
        'X-Matrix origin="a.test",destination="b.test",key="ed25519:k1",sig="c2ln"',
        "X-Matrix origin=a.test,destination=b.test,key=ed25519:k1,sig=c2ln",
        'x-matrix  origin = "a.test" , Destination="b.test",KEY="ed25519:k1", sig=c2ln',
        'X-Matrix sig="c2ln",key="ed25519:k1",destination="b.test",origin="a.test"',
    ],
)
def test_parse_quoted_unquoted_any_order_case(header: str) -> None:
    assert parse_x_matrix(header) == XMatrixAuth(
        "a.test", "b.test", "ed25519:k1", "c2ln"
    )


def test_parse_quoted_escapes_and_ipv6_origin() -> None:
    auth = parse_x_matrix(r'X-Matrix origin="[::1]:8448",key="ed25519:a\"b",sig="x"')
    assert auth.origin == "[::1]:8448"
    assert auth.key_id == 'ed25519:a"b'
    assert parse_x_matrix(format_x_matrix(auth)) == auth


@pytest.mark.parametrize(
    "header",
    [
        "Bearer abc",
        "X-Matrix",
        'X-Matrix origin="a.test",key="ed25519:k1"',  # no sig
        'X-Matrix key="ed25519:k1",sig="x"',  # no origin
        'X-Matrix origin="a.test" key="ed25519:k1" sig="x"',  # no commas
        'X-Matrix origin="a.test,key="ed25519:k1",sig="x"',  # unterminated quote
        "X-Matrix =x,origin=a",
    ],
)
def test_malformed_headers(header: str) -> None:
    with pytest.raises(XMatrixParseError):
        parse_x_matrix(header)
