"""Federation destinations (Synapse admin API).

    GET  /_synapse/admin/v1/federation/destinations         from, limit, destination, dir
    GET  /_synapse/admin/v1/federation/destinations/{destination}
    POST /_synapse/admin/v1/federation/destinations/{destination}/reset_connection

Destinations listed are those with retry state (failing, backing off) and those with
queued work; resetting forgets the backoff and wakes the destination's queue, as if it
had contacted us.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from ranvier.api.admin.users import AdminCheck, AdminGate, direction, page_params
from ranvier.api.http import Endpoint, MatrixRequest
from ranvier.core.errors import MatrixError, not_found
from ranvier.storage.stores.admin import DestinationRow

V1: Final = "/_synapse/admin/v1/federation/destinations"


class Destinations(Protocol):
    async def get_destinations(self) -> list[DestinationRow]: ...

    async def reset_destination(self, destination: str) -> None: ...


def destination_json(d: DestinationRow) -> dict[str, Any]:
    return {
        "destination": d.destination,
        "retry_last_ts": d.retry_last_ts,
        "retry_interval": d.retry_interval_ms,
        "failure_ts": d.failure_ts,
        "last_successful_stream_ordering": None,
    }


class FederationAdminResource:
    def __init__(self, admins: AdminCheck, destinations: Destinations) -> None:
        self._gate = AdminGate(admins)
        self._destinations = destinations

    async def list_destinations(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        start, limit = page_params(req)
        forwards = direction(req)
        rows = await self._destinations.get_destinations()
        needle = req.query.get("destination")
        if needle is not None:
            rows = [d for d in rows if needle.lower() in d.destination.lower()]
        rows.sort(key=lambda d: d.destination, reverse=not forwards)
        page = rows[start : start + limit]
        out: dict[str, Any] = {
            "destinations": [destination_json(d) for d in page],
            "total": len(rows),
        }
        if start + len(page) < len(rows):
            out["next_token"] = str(start + len(page))
        return out

    async def _find(self, destination: str) -> DestinationRow:
        for d in await self._destinations.get_destinations():
            if d.destination == destination:
                return d
        raise not_found("Unknown destination")

    async def get_destination(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        return destination_json(await self._find(req.path_param("destination")))

    async def reset_connection(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        row = await self._find(req.path_param("destination"))
        if row.retry_last_ts == 0 and row.retry_interval_ms == 0:
            raise MatrixError(
                400,
                "M_UNKNOWN",
                "The retry timing does not need to be reset for this destination.",
            )
        await self._destinations.reset_destination(row.destination)
        return {}

    def endpoints(self) -> list[Endpoint]:
        one = f"{V1}/{{destination}}"
        return [
            Endpoint("GET", (V1,), self.list_destinations),
            Endpoint("GET", (one,), self.get_destination),
            Endpoint("POST", (f"{one}/reset_connection",), self.reset_connection),
        ]
