"""Typed calls to another server's room endpoints, used when filling gaps (spec: S-S
API > Retrieving events; Backfilling and retrieving missing events).

Answers are checked for shape only (lists of objects / strings); the PDUs inside are not
trusted until `PduChecker` has looked at them. A malformed answer raises
`FederationError` like a failed request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from ranvier.federation.client import QueryArgs, federation_path
from ranvier.federation.errors import FederationError

__all__ = ["RemoteRoomApi", "RemoteState", "SignedRequests"]

JsonDict = dict[str, Any]

# Gap filling must not hold a room's PDUs for a whole default request timeout.
FETCH_TIMEOUT_SECONDS: Final = 30.0


class SignedRequests(Protocol):
    async def get_json(
        self, destination: str, path: str, *, args: QueryArgs | None = None, **kw: Any
    ) -> Any: ...

    async def post_json(
        self, destination: str, path: str, content: Any, **kw: Any
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class RemoteState:
    state_ids: list[str]
    auth_chain_ids: list[str]


def _objects(destination: str, doc: Any, key: str) -> list[JsonDict]:
    value = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(value, list):
        raise FederationError(destination, f"answer has no '{key}' list")
    return [v for v in value if isinstance(v, dict)]


def _strings(destination: str, doc: Any, key: str) -> list[str]:
    value = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(value, list):
        raise FederationError(destination, f"answer has no '{key}' list")
    return [v for v in value if isinstance(v, str)]


class RemoteRoomApi:
    def __init__(self, client: SignedRequests) -> None:
        self._client = client

    async def get_missing_events(
        self,
        destination: str,
        room_id: str,
        *,
        earliest: Sequence[str],
        latest: Sequence[str],
        limit: int,
        min_depth: int,
    ) -> list[JsonDict]:
        path = federation_path("/_matrix/federation/v1/get_missing_events/{}", room_id)
        body = {
            "earliest_events": list(earliest),
            "latest_events": list(latest),
            "limit": limit,
            "min_depth": min_depth,
        }
        doc = await self._client.post_json(
            destination, path, body, request_timeout=FETCH_TIMEOUT_SECONDS
        )
        return _objects(destination, doc, "events")

    async def get_event_auth(
        self, destination: str, room_id: str, event_id: str
    ) -> list[JsonDict]:
        path = federation_path(
            "/_matrix/federation/v1/event_auth/{}/{}", room_id, event_id
        )
        doc = await self._client.get_json(
            destination, path, request_timeout=FETCH_TIMEOUT_SECONDS
        )
        return _objects(destination, doc, "auth_chain")

    async def get_state_ids(
        self, destination: str, room_id: str, event_id: str
    ) -> RemoteState:
        path = federation_path("/_matrix/federation/v1/state_ids/{}", room_id)
        doc = await self._client.get_json(
            destination,
            path,
            args={"event_id": event_id},
            request_timeout=FETCH_TIMEOUT_SECONDS,
        )
        return RemoteState(
            _strings(destination, doc, "pdu_ids"),
            _strings(destination, doc, "auth_chain_ids"),
        )

    async def get_state(
        self, destination: str, room_id: str, event_id: str
    ) -> tuple[list[JsonDict], list[JsonDict]]:
        """(state PDUs, auth chain PDUs) before `event_id`."""
        path = federation_path("/_matrix/federation/v1/state/{}", room_id)
        doc = await self._client.get_json(
            destination,
            path,
            args={"event_id": event_id},
            request_timeout=FETCH_TIMEOUT_SECONDS,
        )
        return _objects(destination, doc, "pdus"), _objects(
            destination, doc, "auth_chain"
        )

    async def get_event(self, destination: str, event_id: str) -> JsonDict | None:
        path = federation_path("/_matrix/federation/v1/event/{}", event_id)
        doc = await self._client.get_json(
            destination, path, request_timeout=FETCH_TIMEOUT_SECONDS
        )
        pdus = _objects(destination, doc, "pdus")
        return pdus[0] if pdus else None
