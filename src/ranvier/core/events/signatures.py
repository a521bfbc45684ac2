"""Which servers must sign an event, and checking their signatures (spec: S-S API >
Validating hashes and signatures on received events; Rooms > vN > Authorization rules).

Signatures cover the redacted event, so they stay valid after redaction. Required:

* the sender's server, except for invites made from a third-party invite
  (`m.room.member`, membership `invite`, content has `third_party_invite`): the sender
  there is the user who made the 3PID invite, but another server may send the event;
* for event format v1 (rooms v1, v2), also the server named in the `event_id`;
* since room v8 (restricted rooms), for joins with `join_authorised_via_users_server`,
  also that user's server.

Keys are looked up through a caller-supplied function: core code does no I/O, so the
caller pre-fetches keys (e.g. from the keyring) and answers from memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias

from ranvier.core.crypto.base64 import Base64Error, decode_base64
from ranvier.core.crypto.errors import SignatureError
from ranvier.core.crypto.keys import VerifyKey
from ranvier.core.crypto.signing import signature_key_ids, signing_bytes
from ranvier.core.events.event import Event
from ranvier.core.events.redaction import redact_pdu
from ranvier.core.ids import InvalidIdentifierError, domain_of
from ranvier.core.json import CanonicalJsonError
from ranvier.core.room_versions import EventFormat

__all__ = ["KeyLookup", "required_signature_servers", "verify_event_signatures"]

KeyLookup: TypeAlias = Callable[[str, str, int], VerifyKey | None]
"""`lookup(server_name, key_id, minimum_valid_until_ts) -> VerifyKey | None`.

Return the server's key with that ID if it is known and was valid at the given time,
else None. The time is the event's `origin_server_ts` for room v5+ (keys must be valid
when the event was sent: `RoomVersion.enforce_key_validity`) and 0 for older rooms (any
key the server ever published counts).
"""

_AUTHORISING_USER: Final = "join_authorised_via_users_server"


def _domain(identifier: str, what: str) -> str:
    try:
        return domain_of(identifier)
    except InvalidIdentifierError:
        raise SignatureError(
            f"cannot tell which server must sign: bad {what}"
        ) from None


def _is_invite_via_3pid(event: Event) -> bool:
    return (
        event.type == "m.room.member"
        and event.membership == "invite"
        and "third_party_invite" in event.content
    )


def required_signature_servers(event: Event) -> set[str]:
    """The servers whose signatures `event` must carry."""
    servers: set[str] = set()
    if not _is_invite_via_3pid(event):
        servers.add(_domain(event.sender, "sender"))
    if event.room_version.event_format is EventFormat.V1:
        servers.add(_domain(event.event_id, "event_id"))
    authoriser = event.content.get(_AUTHORISING_USER)
    if (
        event.room_version.restricted_join_rule
        and event.type == "m.room.member"
        and event.membership == "join"
        and isinstance(authoriser, str)
    ):
        servers.add(_domain(authoriser, _AUTHORISING_USER))
    return servers


def _verify_server(
    redacted: Mapping[str, Any],
    message: bytes,
    server: str,
    lookup_key: KeyLookup,
    minimum_valid_ts: int,
) -> None:
    """At least one of the server's signatures must use a key we know; every signature
    whose key we know must verify (as Synapse does)."""
    key_ids = signature_key_ids(redacted, server)
    if not key_ids:
        raise SignatureError(f"event is not signed by {server}", server_name=server)
    server_sigs = redacted["signatures"][server]
    verified = False
    for key_id in key_ids:
        key = lookup_key(server, key_id, minimum_valid_ts)
        if key is None:
            continue
        sig_b64 = server_sigs[key_id]
        try:
            key.verify(
                message, decode_base64(sig_b64) if isinstance(sig_b64, str) else b""
            )
        except (SignatureError, Base64Error):
            raise SignatureError(
                f"invalid signature from {server} with key {key_id}",
                server_name=server,
                key_id=key_id,
            ) from None
        verified = True
    if not verified:
        raise SignatureError(
            f"no known valid key of {server} among {sorted(key_ids)}",
            server_name=server,
        )


def verify_event_signatures(event: Event, lookup_key: KeyLookup) -> None:
    """Raise `SignatureError` (naming the server) unless every required server signed
    the redacted form of `event` with a key `lookup_key` knows."""
    room_version = event.room_version
    redacted = redact_pdu(event.data, room_version)
    try:
        message = signing_bytes(redacted, strict=room_version.strict_canonicaljson)
    except CanonicalJsonError as e:
        raise SignatureError(f"cannot check signatures: {e}") from None
    minimum_valid_ts = (
        event.origin_server_ts if room_version.enforce_key_validity else 0
    )
    for server in sorted(required_signature_servers(event)):
        _verify_server(redacted, message, server, lookup_key, minimum_valid_ts)
