"""Request authentication between servers: the `X-Matrix` Authorization scheme.

Spec: Server-Server API > Authentication > Request Authentication. The sender signs the
JSON object `{method, uri, origin, destination, content?}` (content only when the request
has a body) with its server key and sends

    Authorization: X-Matrix origin="a.example",destination="b.example",key="ed25519:k",sig="…"

Parameter values are RFC 9110 `token` or `quoted-string`; names are case-insensitive.
Pure functions: signing and parsing do no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from ranvier.core.crypto.keys import SigningKey, VerifyKey
from ranvier.core.crypto.signing import (
    add_signature,
    compute_json_signature,
    verify_json_signature,
)

__all__ = [
    "XMatrixAuth",
    "XMatrixParseError",
    "format_x_matrix",
    "parse_x_matrix",
    "request_signing_object",
    "sign_request",
    "verify_request_signature",
]

_SCHEME: Final = "x-matrix"
# One `name=value` pair and the separator after it; value is a quoted-string (with
# backslash escapes) or a token-ish run without separators.
_PARAM_RE: Final = re.compile(
    r'\s*([A-Za-z0-9_\-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^",\s]*)\s*(?:,|$)'
)
_ESCAPE_RE: Final = re.compile(r"\\(.)")


class XMatrixParseError(ValueError):
    """The Authorization header is not a well-formed X-Matrix header."""


@dataclass(frozen=True, slots=True)
class XMatrixAuth:
    origin: str
    # Optional for compatibility with older senders; always sent by us.
    destination: str | None
    key_id: str
    signature: str


# Request bodies are signed with the lenient canonical JSON (floats allowed), as Synapse
# does: they carry room v1-v5 events, which may hold floats, and a malformed v6+ event
# in a body must reach the event checks (400 M_BAD_JSON), not fail as a bad request
# signature. The strict rules are the event format's to enforce.
REQUEST_JSON_STRICT: Final = False


def request_signing_object(
    method: str, uri: str, origin: str, destination: str, content: Any | None
) -> dict[str, Any]:
    """The JSON object whose signature goes into the header."""
    obj: dict[str, Any] = {
        "method": method,
        "uri": uri,
        "origin": origin,
        "destination": destination,
    }
    if content is not None:
        obj["content"] = content
    return obj


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_x_matrix(auth: XMatrixAuth) -> str:
    params = [f"origin={_quote(auth.origin)}"]
    if auth.destination is not None:
        params.append(f"destination={_quote(auth.destination)}")
    params.append(f"key={_quote(auth.key_id)}")
    params.append(f"sig={_quote(auth.signature)}")
    return "X-Matrix " + ",".join(params)


def sign_request(
    signing_key: SigningKey,
    origin: str,
    destination: str,
    method: str,
    uri: str,
    content: Any | None,
) -> str:
    """The full `Authorization` header value for one outbound request."""
    obj = request_signing_object(method, uri, origin, destination, content)
    signature = compute_json_signature(obj, signing_key, strict=REQUEST_JSON_STRICT)
    return format_x_matrix(
        XMatrixAuth(origin, destination, signing_key.key_id, signature)
    )


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return _ESCAPE_RE.sub(r"\1", value[1:-1])
    return value


def _parse_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _PARAM_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise XMatrixParseError("malformed X-Matrix parameters")
        params.setdefault(m.group(1).lower(), _unquote(m.group(2)))
        pos = m.end()
    return params


def parse_x_matrix(header: str) -> XMatrixAuth:
    """Parse an `Authorization` header value; raise `XMatrixParseError` if it is not
    X-Matrix or lacks `origin`, `key` or `sig`."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != _SCHEME:
        raise XMatrixParseError("not an X-Matrix Authorization header")
    params = _parse_params(rest.strip())
    missing = [p for p in ("origin", "key", "sig") if not params.get(p)]
    if missing:
        raise XMatrixParseError(f"X-Matrix header lacks {', '.join(missing)}")
    return XMatrixAuth(
        origin=params["origin"],
        destination=params.get("destination") or None,
        key_id=params["key"],
        signature=params["sig"],
    )


def verify_request_signature(
    auth: XMatrixAuth,
    our_server_name: str,
    method: str,
    uri: str,
    content: Any | None,
    verify_key: VerifyKey,
) -> None:
    """Raise `SignatureError` unless `auth.signature` signs this request.

    The signed JSON always names the receiving server as `destination`, even when an
    older sender left it out of the header; the caller checks a header `destination`
    equals `our_server_name`.
    """
    obj = request_signing_object(method, uri, auth.origin, our_server_name, content)
    signed = add_signature(obj, auth.origin, auth.key_id, auth.signature)
    verify_json_signature(
        signed, auth.origin, auth.key_id, verify_key, strict=REQUEST_JSON_STRICT
    )
