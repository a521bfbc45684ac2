"""Received transactions: `PUT /_matrix/federation/v1/send/{txnId}` (spec: S-S API >
Transactions; Checks performed on receipt of a PDU).

* At most 50 PDUs and 100 EDUs (else 400, nothing processed).
* Idempotent per (origin, txnId): a retry gets the stored answer; a retry that arrives
  while the first is still being processed waits for, and gets, the same answer.
* PDUs are grouped by room. Rooms run concurrently; one room's PDUs run in order
  (oldest first) through that room's pipeline, so a slow room delays only itself.
* Per PDU: the room must be known here (else an error result), the origin must pass
  the room's server ACL, then format, signatures and hashes (`PduChecker`), gap filling
  and the pipeline (`RemoteEventIngester`). The answer maps each event ID to `{}` or
  `{"error": …}`. As Synapse does, every PDU we processed gets `{}`: soft-failed and
  rejected ones included (a rejection is logged and stored, not an error of the
  transaction); an error means we could not process it (bad format, signatures or
  hashes, unknown room, ACL, prev or auth events we could not get).
* EDUs are handled after the PDUs (a receipt may point at an event of the same
  transaction); a bad EDU is dropped, never failing the transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from ranvier.core.errors import MatrixError, bad_json
from ranvier.core.events.event import Event
from ranvier.core.room_versions import RoomVersion
from ranvier.services.federation.edus import EduHandler
from ranvier.services.federation.ingest import FetchBudget, RemoteEventIngester
from ranvier.services.federation.pdu_checks import CheckedPdu, PduChecker, PduRejected
from ranvier.util.clock import Clock

logger = logging.getLogger(__name__)

__all__ = ["TransactionHandler"]

JsonDict = dict[str, Any]

MAX_PDUS: Final = 50
MAX_EDUS: Final = 100
DEFAULT_MAX_FETCHED_EVENTS: Final = 1_000


class ReceivedTransactions(Protocol):
    async def get_received_transaction(
        self, origin: str, txn_id: str
    ) -> JsonDict | None: ...

    async def set_received_transaction(
        self, origin: str, txn_id: str, response: JsonDict, now_ms: int
    ) -> None: ...


class RoomVersions(Protocol):
    async def get_room_version(self, room_id: str) -> RoomVersion | None: ...


class AclCheck(Protocol):
    async def is_server_allowed(self, room_id: str, server_name: str) -> bool: ...


@dataclass(slots=True)
class _RoomBatch:
    version: RoomVersion
    events: list[Event] = field(default_factory=list)


def _parse_body(body: Any) -> tuple[list[Any], list[Any]]:
    if not isinstance(body, dict):
        raise bad_json("Transaction must be an object.")
    pdus = body.get("pdus")
    edus = body.get("edus", [])
    if not isinstance(pdus, list):
        raise bad_json("'pdus' must be an array.")
    if edus is None:
        edus = []
    if not isinstance(edus, list):
        raise bad_json("'edus' must be an array.")
    if len(pdus) > MAX_PDUS or len(edus) > MAX_EDUS:
        raise MatrixError(
            400,
            "M_BAD_JSON",
            f"Too many PDUs or EDUs (at most {MAX_PDUS} and {MAX_EDUS}).",
        )
    return pdus, edus


def _error(message: str) -> JsonDict:
    return {"error": message}


class TransactionHandler:
    def __init__(
        self,
        *,
        txns: ReceivedTransactions,
        versions: RoomVersions,
        acl: AclCheck,
        checker: PduChecker,
        ingester: RemoteEventIngester,
        edus: EduHandler,
        clock: Clock,
        max_fetched_events: int = DEFAULT_MAX_FETCHED_EVENTS,
    ) -> None:
        self._txns = txns
        self._versions = versions
        self._acl = acl
        self._checker = checker
        self._ingester = ingester
        self._edus = edus
        self._clock = clock
        self._max_fetched = max_fetched_events
        self._inflight: dict[tuple[str, str], asyncio.Future[JsonDict]] = {}

    async def on_send_transaction(
        self, origin: str, txn_id: str, body: Any
    ) -> JsonDict:
        pdus, edus = _parse_body(body)
        key = (origin, txn_id)
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        done = await self._txns.get_received_transaction(origin, txn_id)
        if done is not None:
            return done
        future: asyncio.Future[JsonDict] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            response = await self._process(origin, pdus, edus)
            await self._txns.set_received_transaction(
                origin, txn_id, response, self._clock.time_msec()
            )
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as e:
            future.set_exception(e)
            future.exception()  # retrieved: waiters (if any) re-raise it
            raise
        else:
            future.set_result(response)
            return response
        finally:
            del self._inflight[key]

    async def _process(
        self, origin: str, pdus: Sequence[Any], edus: Sequence[Any]
    ) -> JsonDict:
        results: dict[str, JsonDict] = {}
        batches = await self._group(origin, pdus, results)
        budget = FetchBudget(self._max_fetched)
        room_results = await asyncio.gather(
            *(
                self._process_room(origin, room_id, batch, budget)
                for room_id, batch in batches.items()
            )
        )
        for per_room in room_results:
            results.update(per_room)
        for edu in edus:
            await self._process_edu(origin, edu)
        return {"pdus": results}

    async def _group(
        self, origin: str, pdus: Sequence[Any], results: dict[str, JsonDict]
    ) -> dict[str, _RoomBatch]:
        batches: dict[str, _RoomBatch] = {}
        for pdu in pdus:
            room_id = pdu.get("room_id") if isinstance(pdu, dict) else None
            if not isinstance(room_id, str):
                logger.info("dropping PDU without room_id from %s", origin)
                continue
            batch = batches.get(room_id)
            if batch is None:
                rv = await self._versions.get_room_version(room_id)
                if rv is None:
                    hint = pdu.get("event_id") if isinstance(pdu, dict) else None
                    if isinstance(hint, str):
                        results[hint] = _error("Unknown room.")
                    logger.info("dropping PDU for unknown room %s", room_id)
                    continue
                batch = batches[room_id] = _RoomBatch(rv)
            parsed = self._checker.parse(pdu, batch.version)
            if isinstance(parsed, PduRejected):
                if parsed.event_id is not None:
                    results[parsed.event_id] = _error(parsed.reason)
                continue
            batch.events.append(parsed)
        return batches

    async def _process_room(
        self, origin: str, room_id: str, batch: _RoomBatch, budget: FetchBudget
    ) -> dict[str, JsonDict]:
        out: dict[str, JsonDict] = {}
        if not batch.events:
            return out
        if not await self._acl.is_server_allowed(room_id, origin):
            logger.info("dropping PDUs from %s: denied by %s's ACL", origin, room_id)
            return {e.event_id: _error("Server denied by ACL.") for e in batch.events}
        checked: list[CheckedPdu] = []
        for result in await self._checker.check_events(batch.events):
            if isinstance(result, CheckedPdu):
                checked.append(result)
            elif result.event_id is not None:
                out[result.event_id] = _error(result.reason)
        try:
            ingested = await self._ingester.ingest(
                origin, room_id, batch.version, checked, budget
            )
        except Exception:
            logger.exception("failed to ingest PDUs of %s from %s", room_id, origin)
            out.update({c.event.event_id: _error("Internal error.") for c in checked})
            return out
        for event_id, res in ingested.items():
            if res.rejected is not None:
                logger.info(
                    "PDU %s from %s rejected: %s", event_id, origin, res.rejected
                )
            out[event_id] = {} if res.error is None else _error(res.error)
        return out

    async def _process_edu(self, origin: str, edu: Any) -> None:
        if not isinstance(edu, dict):
            return
        edu_type, content = edu.get("edu_type"), edu.get("content")
        if not isinstance(edu_type, str) or not isinstance(content, dict):
            return
        try:
            await self._edus.on_edu(origin, edu_type, content)
        except Exception:
            logger.exception("EDU %s from %s failed", edu_type, origin)
