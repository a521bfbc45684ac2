"""Content reports (Client-Server API > Modules > Reporting content).

Events: the reporter must be joined to the room and able to see the event, else 404
(the spec's answer for both). Rooms: any known room, joined or not. Users: unknown
local users are 404; remote users are accepted, since the spec lets a server
decline to disclose whether a user exists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ranvier.core.errors import MatrixError, invalid_param, not_found
from ranvier.core.ids import InvalidIdentifierError, domain_of, parse_user_id
from ranvier.storage.stores.reports import Report
from ranvier.util.clock import Clock

# Spec (deprecated `score`): -100 is the most offensive, 0 inoffensive.
MIN_SCORE = -100
MAX_SCORE = 0


class VisibleEvents(Protocol):
    async def get_visible_event(
        self, user_id: str, room_id: str, event_id: str
    ) -> object:
        """Return the event the user may see, or raise `MatrixError`."""
        ...


class Memberships(Protocol):
    async def get_membership_of(self, room_id: str, user_id: str) -> str | None: ...


class KnownRooms(Protocol):
    async def has_room(self, room_id: str) -> bool: ...


class LocalUsers(Protocol):
    async def user_exists(self, user_id: str) -> bool: ...


class ReportWriter(Protocol):
    async def add_report(self, report: Report) -> None: ...


class ReportService:
    def __init__(
        self,
        *,
        server_name: str,
        store: ReportWriter,
        events: VisibleEvents,
        memberships: Memberships,
        rooms: KnownRooms,
        users: LocalUsers,
        clock: Clock,
        random_id: Callable[[], str],
    ) -> None:
        self._server_name = server_name
        self._store = store
        self._events = events
        self._memberships = memberships
        self._rooms = rooms
        self._users = users
        self._clock = clock
        self._random_id = random_id

    async def report_event(
        self,
        reporter: str,
        room_id: str,
        event_id: str,
        reason: str | None,
        score: int | None,
    ) -> None:
        if score is not None and not MIN_SCORE <= score <= MAX_SCORE:
            raise invalid_param(f"'score' must be in [{MIN_SCORE}, {MAX_SCORE}]")
        hidden = not_found(
            "Unable to report event: it does not exist or you aren't able to see it."
        )
        if await self._memberships.get_membership_of(room_id, reporter) != "join":
            raise hidden
        try:
            await self._events.get_visible_event(reporter, room_id, event_id)
        except MatrixError:
            raise hidden from None
        await self._add(
            reporter, reason, room_id=room_id, event_id=event_id, score=score
        )

    async def report_room(self, reporter: str, room_id: str, reason: str) -> None:
        if not await self._rooms.has_room(room_id):
            raise not_found("Room does not exist.")
        await self._add(reporter, reason, room_id=room_id)

    async def report_user(self, reporter: str, user_id: str, reason: str) -> None:
        try:
            parse_user_id(user_id)
        except InvalidIdentifierError:
            raise invalid_param("Invalid user ID.") from None
        if domain_of(
            user_id
        ) == self._server_name and not await self._users.user_exists(user_id):
            raise not_found("User does not exist.")
        await self._add(reporter, reason, reported_user_id=user_id)

    async def _add(self, reporter: str, reason: str | None, **target: Any) -> None:
        await self._store.add_report(
            Report(
                report_id=self._random_id(),
                reporter=reporter,
                received_ts=self._clock.time_msec(),
                reason=reason,
                **target,
            )
        )
