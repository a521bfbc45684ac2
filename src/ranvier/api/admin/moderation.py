"""Event reports and registration tokens (Synapse admin API).

    GET    /_synapse/admin/v1/event_reports            from, limit, dir (b), user_id, room_id
    GET    /_synapse/admin/v1/event_reports/{reportId}
    DELETE /_synapse/admin/v1/event_reports/{reportId}
    GET    /_synapse/admin/v1/registration_tokens      valid=true|false
    POST   /_synapse/admin/v1/registration_tokens/new
    GET    /_synapse/admin/v1/registration_tokens/{token}
    PUT    /_synapse/admin/v1/registration_tokens/{token}     uses_allowed, expiry_time
    DELETE /_synapse/admin/v1/registration_tokens/{token}

Reports are what users reported through the client API (api/client/reports.py); only
reports of an event are event reports. Tokens are the CLI's (`ranvier registration-token`),
through the same registration service.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

import orjson

from ranvier.api.admin.users import AdminCheck, AdminGate, page_params
from ranvier.api.http import Endpoint, MatrixRequest
from ranvier.core.errors import invalid_param, not_found
from ranvier.storage.stores.admin import EventReportRow, ReportQuery
from ranvier.storage.stores.registration import RegistrationTokenRow
from ranvier.util.clock import Clock

V1: Final = "/_synapse/admin/v1"


class EventReports(Protocol):
    async def list_event_reports(
        self, query: ReportQuery
    ) -> tuple[list[EventReportRow], int]: ...

    async def get_event_report(self, report_id: str) -> EventReportRow | None: ...

    async def delete_event_report(self, report_id: str) -> bool: ...


class RegistrationTokens(Protocol):
    async def create_registration_token(
        self,
        token: str | None = None,
        *,
        uses_allowed: int | None = None,
        expires_in_ms: int | None = None,
    ) -> RegistrationTokenRow: ...

    async def get_registration_tokens(self) -> list[RegistrationTokenRow]: ...

    async def delete_registration_token(self, token: str) -> bool: ...


class TokenUpdates(Protocol):
    async def update_registration_token(
        self,
        token: str,
        *,
        uses_allowed: object = ...,
        expiry_ts: object = ...,
    ) -> bool: ...


def report_json(r: EventReportRow) -> dict[str, Any]:
    return {
        "id": r.report_id,
        "received_ts": r.received_ts,
        "room_id": r.room_id,
        "event_id": r.event_id,
        "user_id": r.reporter,
        "reason": r.reason,
        "score": r.score,
        "sender": r.sender,
        # Synapse also names the room (name, canonical_alias); not joined in here yet.
        "name": None,
        "canonical_alias": None,
    }


def token_json(t: RegistrationTokenRow) -> dict[str, Any]:
    return {
        "token": t.token,
        "uses_allowed": t.uses_allowed,
        "pending": t.pending,
        "completed": t.completed,
        "expiry_time": t.expiry_ts,
    }


class ModerationResource:
    def __init__(
        self,
        admins: AdminCheck,
        reports: EventReports,
        tokens: RegistrationTokens,
        updates: TokenUpdates,
        clock: Clock,
    ) -> None:
        self._gate = AdminGate(admins)
        self._reports = reports
        self._tokens = tokens
        self._updates = updates
        self._clock = clock

    async def list_reports(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        start, limit = page_params(req)
        d = req.query.get("dir", "b")
        if d not in ("f", "b"):
            raise invalid_param("Query parameter 'dir' must be one of ['b', 'f']")
        rows, total = await self._reports.list_event_reports(
            ReportQuery(
                start=start,
                limit=limit,
                forwards=d == "f",
                user_id=req.query.get("user_id"),
                room_id=req.query.get("room_id"),
            )
        )
        out: dict[str, Any] = {
            "event_reports": [report_json(r) for r in rows],
            "total": total,
        }
        if start + len(rows) < total:
            out["next_token"] = start + len(rows)
        return out

    async def get_report(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        row = await self._reports.get_event_report(req.path_param("reportId"))
        if row is None:
            raise not_found("Event report not found")
        out = report_json(row)
        out["event_json"] = (
            None if row.event_json is None else orjson.loads(row.event_json)
        )
        return out

    async def delete_report(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        if not await self._reports.delete_event_report(req.path_param("reportId")):
            raise not_found("Event report not found")
        return {}

    async def list_tokens(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        valid = req.query_bool("valid") if "valid" in req.query else None
        now = self._clock.time_msec()
        tokens = [
            token_json(t)
            for t in await self._tokens.get_registration_tokens()
            if valid is None or t.is_valid(now) == valid
        ]
        return {"registration_tokens": tokens}

    async def _find(self, token: str) -> RegistrationTokenRow:
        for t in await self._tokens.get_registration_tokens():
            if t.token == token:
                return t
        raise not_found("No such registration token: " + token)

    async def get_token(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        return token_json(await self._find(req.path_param("token")))

    async def new_token(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        body = await req.json()
        expiry = body.get_int("expiry_time")
        now = self._clock.time_msec()
        if expiry is not None and expiry <= now:
            raise invalid_param("expiry_time must not be in the past")
        row = await self._tokens.create_registration_token(
            body.get_str("token"),
            uses_allowed=body.get_int("uses_allowed"),
            expires_in_ms=None if expiry is None else expiry - now,
        )
        return token_json(row)

    async def put_token(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        token = req.path_param("token")
        body = await req.json()
        changes: dict[str, int | None] = {}
        if "uses_allowed" in body:
            uses = body.get_int("uses_allowed")
            if uses is not None and uses < 0:
                raise invalid_param(
                    "uses_allowed must be a non-negative integer or null"
                )
            changes["uses_allowed"] = uses
        if "expiry_time" in body:
            expiry = body.get_int("expiry_time")
            if expiry is not None and expiry <= self._clock.time_msec():
                raise invalid_param("expiry_time must not be in the past")
            changes["expiry_ts"] = expiry
        if not await self._updates.update_registration_token(token, **changes):
            raise not_found("No such registration token: " + token)
        return token_json(await self._find(token))

    async def delete_token(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        token = req.path_param("token")
        if not await self._tokens.delete_registration_token(token):
            raise not_found("No such registration token: " + token)
        return {}

    def endpoints(self) -> list[Endpoint]:
        report = (f"{V1}/event_reports/{{reportId}}",)
        token = (f"{V1}/registration_tokens/{{token}}",)
        return [
            Endpoint("GET", (f"{V1}/event_reports",), self.list_reports),
            Endpoint("GET", report, self.get_report),
            Endpoint("DELETE", report, self.delete_report),
            Endpoint("GET", (f"{V1}/registration_tokens",), self.list_tokens),
            Endpoint("POST", (f"{V1}/registration_tokens/new",), self.new_token),
            Endpoint("GET", token, self.get_token),
            Endpoint("PUT", token, self.put_token),
            Endpoint("DELETE", token, self.delete_token),
        ]
