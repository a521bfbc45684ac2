"""Matrix scopes (MSC2967; spec: OAuth 2.0 API > Scope).

    urn:matrix:client:api:*               full Client-Server API access
    urn:matrix:client:device:<device_id>  the device the tokens belong to
    openid                                accepted (no ID token is issued)

The unstable MSC2967 spellings (`urn:matrix:org.matrix.msc2967.client:…`) are
accepted as aliases, since deployed clients still send them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ranvier.services.oauth.errors import invalid_scope

API_SCOPES = ("urn:matrix:client:api:*", "urn:matrix:org.matrix.msc2967.client:api:*")
DEVICE_PREFIXES = (
    "urn:matrix:client:device:",
    "urn:matrix:org.matrix.msc2967.client:device:",
)
OPENID = "openid"
# Spec: device IDs in the scope use only RFC 3986 unreserved characters.
_DEVICE_ID = re.compile(r"[A-Za-z0-9\-._~]{1,255}")
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


@dataclass(frozen=True, slots=True)
class MatrixScope:
    device_id: str | None
    scope: str  # normalised: the tokens as requested, in order, without duplicates


def parse_scope(scope: str | None) -> MatrixScope:
    """Validate a requested scope; raises `invalid_scope`."""
    if not scope:
        raise invalid_scope("The scope must include urn:matrix:client:api:*.")
    tokens = list(dict.fromkeys(scope.split(" ")))
    device_id: str | None = None
    has_api = False
    for token in tokens:
        if _SCOPE_TOKEN.fullmatch(token) is None:
            raise invalid_scope("Malformed scope.")
        if token in API_SCOPES:
            has_api = True
        elif token == OPENID:
            pass
        elif token.startswith(DEVICE_PREFIXES):
            value = token.split(":")[-1]
            if _DEVICE_ID.fullmatch(value) is None:
                raise invalid_scope("Invalid device ID in the device scope.")
            if device_id is not None and device_id != value:
                raise invalid_scope("Only one device scope may be requested.")
            device_id = value
        else:
            raise invalid_scope(f"Unsupported scope {token[:80]}.")
    if not has_api:
        raise invalid_scope("The scope must include urn:matrix:client:api:*.")
    return MatrixScope(device_id, " ".join(tokens))


def with_device(scope: MatrixScope, device_id: str) -> str:
    """The scope string granted once a device ID was chosen for a request without one."""
    if scope.device_id is not None:
        return scope.scope
    return f"{scope.scope} {DEVICE_PREFIXES[0]}{device_id}"
