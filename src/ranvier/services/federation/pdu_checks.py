"""Checking PDUs received from other servers before anything trusts them (spec: S-S API
> Checks performed on receipt of a PDU, steps 1-3).

1. Format: `validate_pdu` for the room's version (else dropped);
2. signatures of every server that must sign (`required_signature_servers`), with keys
   prefetched from the keyring for the whole batch at once (else dropped);
3. content hash: on mismatch the event is *redacted* and processing continues with the
   redacted form (the signatures cover only that).

`unsigned` is cleaned first (`clean_received_pdu`): nothing in it is signed.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ranvier.core.crypto.errors import SignatureError
from ranvier.core.crypto.hashes import check_content_hash
from ranvier.core.crypto.keys import VerifyKey
from ranvier.core.crypto.signing import signature_key_ids
from ranvier.core.events.errors import EventFormatError
from ranvier.core.events.event import Event
from ranvier.core.events.federation_format import clean_received_pdu
from ranvier.core.events.format import event_from_pdu
from ranvier.core.events.ids import compute_event_id
from ranvier.core.events.redaction import redact_pdu
from ranvier.core.events.signatures import (
    required_signature_servers,
    verify_event_signatures,
)
from ranvier.core.room_versions import RoomVersion

logger = logging.getLogger(__name__)

__all__ = ["CheckedPdu", "PduChecker", "PduRejected", "SignatureKeys"]


class SignatureKeys(Protocol):
    """The keyring's two halves: async prefetch, then sync lookup."""

    async def prefetch(
        self, keys: Mapping[str, Collection[str]], minimum_valid_until_ts: int
    ) -> None: ...

    def lookup(
        self, server_name: str, key_id: str, minimum_valid_until_ts: int
    ) -> VerifyKey | None: ...


@dataclass(frozen=True, slots=True)
class CheckedPdu:
    event: Event
    # The content hash did not match: `event` is the redacted form.
    redacted: bool = False


@dataclass(frozen=True, slots=True)
class PduRejected:
    """A PDU that failed format or signature checks; `event_id` when it could be told."""

    event_id: str | None
    reason: str


def _event_id_hint(pdu: Any, room_version: RoomVersion) -> str | None:
    """The ID of an invalid PDU when it can still be told (to key the error result)."""
    if isinstance(pdu, dict) and isinstance(pdu.get("event_id"), str):
        return str(pdu["event_id"])
    try:
        return compute_event_id(pdu, room_version)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


class PduChecker:
    def __init__(self, keys: SignatureKeys) -> None:
        self._keys = keys

    def parse(self, pdu: Any, room_version: RoomVersion) -> Event | PduRejected:
        """Step 1 only (no signatures): the `Event`, or why it is not one."""
        if not isinstance(pdu, dict):
            return PduRejected(None, "PDU is not an object")
        try:
            return event_from_pdu(clean_received_pdu(pdu), room_version)
        except EventFormatError as e:
            return PduRejected(_event_id_hint(pdu, room_version), f"invalid event: {e}")
        except (ValueError, TypeError, KeyError) as e:
            # Not one of our format errors: its text is Python's, not for peers.
            logger.info("malformed PDU: %s: %s", type(e).__name__, e)
            return PduRejected(_event_id_hint(pdu, room_version), "invalid event")

    async def check_events(
        self, events: Sequence[Event]
    ) -> list[CheckedPdu | PduRejected]:
        """Steps 2-3 for already parsed events, keys fetched for all of them at once."""
        await self._prefetch(events)
        return [self._check_one(e) for e in events]

    async def check_pdus(
        self, pdus: Sequence[Any], room_version: RoomVersion
    ) -> list[CheckedPdu | PduRejected]:
        parsed = [self.parse(p, room_version) for p in pdus]
        events = [p for p in parsed if isinstance(p, Event)]
        checked = iter(await self.check_events(events))
        return [p if isinstance(p, PduRejected) else next(checked) for p in parsed]

    async def _prefetch(self, events: Sequence[Event]) -> None:
        wanted: dict[str, set[str]] = {}
        newest = 0
        for event in events:
            try:
                servers = required_signature_servers(event)
            except SignatureError:
                continue
            for server in servers:
                wanted.setdefault(server, set()).update(
                    signature_key_ids(event.data, server)
                )
            if event.room_version.enforce_key_validity:
                newest = max(newest, event.origin_server_ts)
        if wanted:
            await self._keys.prefetch(wanted, newest)

    def _check_one(self, event: Event) -> CheckedPdu | PduRejected:
        try:
            verify_event_signatures(event, self._keys.lookup)
        except SignatureError as e:
            logger.info("dropping %s: %s", event.event_id, e)
            return PduRejected(event.event_id, f"signature check failed: {e}")
        rv = event.room_version
        if check_content_hash(event.data, rv):
            return CheckedPdu(event)
        logger.info("content hash mismatch on %s: redacting", event.event_id)
        return CheckedPdu(Event(redact_pdu(event.data, rv), event.event_id, rv), True)
