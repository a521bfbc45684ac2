"""Guest access revoked over federation (as Synapse's `_maybe_kick_guest_users`): when an
accepted remote `m.room.guest_access` event ends `can_join`, this server's guests in the
room leave, as they do after a local change (`MembershipService.remove_guests`).

An `RemoteEventIngester` whose `ingest` (a transaction's PDUs for one room, persisted
and unlocked when it returns) looks at what it accepted; the remover checks the room's
current state itself, so a soft-failed or superseded change removes nobody.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from ranvier.core.room_versions import RoomVersion
from ranvier.services.federation.ingest import (
    FetchBudget,
    IngestResult,
    RemoteEventIngester,
)
from ranvier.services.federation.pdu_checks import CheckedPdu

logger = logging.getLogger(__name__)

__all__ = ["GuestAccessIngester", "GuestRemover"]

GUEST_ACCESS = "m.room.guest_access"


class GuestRemover(Protocol):
    async def remove_guests(self, room_id: str) -> None: ...


class GuestAccessIngester(RemoteEventIngester):
    def __init__(self, *, guests: GuestRemover, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guests = guests

    async def ingest(
        self,
        origin: str,
        room_id: str,
        room_version: RoomVersion,
        checked: Sequence[CheckedPdu],
        budget: FetchBudget,
    ) -> dict[str, IngestResult]:
        results = await super().ingest(origin, room_id, room_version, checked, budget)
        revoked = any(
            c.event.type == GUEST_ACCESS
            and c.event.state_key == ""
            and c.event.content.get("guest_access") != "can_join"
            and results.get(c.event.event_id, IngestResult("missing")).error is None
            for c in checked
        )
        if revoked:
            try:
                await self._guests.remove_guests(room_id)
            except Exception:
                logger.exception("removing guests from %s failed", room_id)
        return results
