"""The federation sender: persisted per-destination queues of PDUs and EDUs, delivered as
transactions (spec: Server-Server API > Transactions, `PUT /_matrix/federation/v1/send`).

* Enqueueing is one database write and a wake-up: callers never wait on the network.
* Each destination with queued work has its own supervised task, so a dead or slow
  peer delays nobody else; the task ends when its queue is empty.
* A transaction carries at most 50 PDUs and 100 EDUs, oldest first. Items are deleted
  only after the destination accepted the transaction, so they survive restarts.
* Failures (no answer, 5xx, 429) put the destination into backoff (the shared
  `DestinationRetryTracker`: exponential, capped). When the destination answers any
  request again, or authenticates a request to us, its queue is woken at once and
  catches up.
* A 4xx answer to the transaction itself means the peer refuses it for good: that
  transaction is dropped (logged) instead of blocking the queue forever.
* Catch-up (bounded queues): once a destination has been failing for
  `catch_up_after_ms`, or holds more than `max_pdus_per_room` PDUs of one room, only
  the newest queued PDU of that room is kept. When such a PDU is finally sent and is no
  longer one of the room's forward extremities, the room's local forward extremities
  go instead: the peer fetches what lies between with `/get_missing_events` (which we
  serve) and backfill. Typing and presence EDUs are coalesced: a newer one replaces
  the queued one for the same room and user (typing) or user (presence).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ranvier.core.events.event import Event
from ranvier.core.json import InvalidJsonError, decode_json, encode_json
from ranvier.federation.errors import FederationError, NotRetryingDestination
from ranvier.federation.retry import RecoveryListener
from ranvier.util.clock import Clock
from ranvier.util.supervisor import TaskSupervisor

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]

# `unsigned` keys that only make sense on this server.
_LOCAL_UNSIGNED_KEYS = frozenset({"transaction_id"})


@dataclass(frozen=True, slots=True)
class SenderPolicy:
    max_pdus_per_transaction: int = 50
    max_edus_per_transaction: int = 100
    # Pause after an unexpected error (e.g. the database) before the queue retries.
    error_delay_seconds: float = 5.0
    # Catch-up: a destination failing this long keeps one queued PDU per room ...
    catch_up_after_ms: int = 10 * 60 * 1000
    # ... and so does any destination holding more than this many PDUs of one room.
    max_pdus_per_room: int = 100


class QueuedPduRow(Protocol):
    @property
    def pdu_id(self) -> int: ...
    @property
    def event_id(self) -> str: ...
    @property
    def pdu_json(self) -> str: ...
    @property
    def room_id(self) -> str: ...


class QueuedEduRow(Protocol):
    @property
    def edu_id(self) -> int: ...
    @property
    def edu_type(self) -> str: ...
    @property
    def content_json(self) -> str: ...


class OutboundBatchRows(Protocol):
    @property
    def pdus(self) -> Sequence[QueuedPduRow]: ...
    @property
    def edus(self) -> Sequence[QueuedEduRow]: ...


class OutboundQueueStore(Protocol):
    async def enqueue_room_pdu(
        self,
        destinations: Sequence[str],
        event_id: str,
        room_id: str,
        pdu_json: str,
        now_ms: int,
        *,
        max_per_room: int,
        catch_up: Collection[str] = (),
    ) -> list[str]: ...

    async def enqueue_edu(
        self,
        destination: str,
        edu_type: str,
        content_json: str,
        now_ms: int,
        *,
        coalesce_key: str | None = None,
    ) -> int: ...

    async def get_pending_destinations(self) -> list[str]: ...

    async def get_outbound_batch(
        self, destination: str, max_pdus: int, max_edus: int
    ) -> OutboundBatchRows: ...

    async def delete_delivered(
        self, destination: str, pdu_ids: Sequence[int], edu_ids: Sequence[int]
    ) -> None: ...


class TransactionClient(Protocol):
    async def send_transaction(
        self, destination: str, txn_id: str, transaction: Mapping[str, Any]
    ) -> dict[str, Any]: ...


class DestinationBackoff(Protocol):
    def retry_at(self, destination: str) -> int: ...

    def failing_since(self, destination: str) -> int | None: ...

    async def record_failure(self, destination: str) -> int: ...

    def add_recovery_listener(self, listener: RecoveryListener) -> None: ...


class RoomExtremities(Protocol):
    """The local events among a room's forward extremities (catch-up)."""

    async def get_local_forward_extremities(self, room_id: str) -> list[Event]: ...


def federation_pdu(event: Event) -> JsonDict:
    """The PDU as sent to other servers: local-only `unsigned` fields removed."""
    pdu = dict(event.data)
    unsigned = pdu.get("unsigned")
    if isinstance(unsigned, dict) and _LOCAL_UNSIGNED_KEYS & unsigned.keys():
        pdu["unsigned"] = {
            k: v for k, v in unsigned.items() if k not in _LOCAL_UNSIGNED_KEYS
        }
    return pdu


def transaction_id(
    now_ms: int, batch: OutboundBatchRows, substituted: Sequence[str] = ()
) -> str:
    """Unique per content: the same items at the same time give the same ID, anything
    else a different one (a receiver de-duplicates on it, so it must never repeat
    for different content, across restarts and clocks included). `substituted`: the
    event IDs sent instead of queued PDUs (catch-up)."""
    ids = ",".join(
        [f"p{p.pdu_id}" for p in batch.pdus]
        + [f"e{e.edu_id}" for e in batch.edus]
        + [f"x{event_id}" for event_id in substituted]
    )
    digest = hashlib.sha256(ids.encode()).hexdigest()[:16]
    return f"{now_ms}-{digest}"


def _decode(text: str) -> Any:
    try:
        return decode_json(text)
    except InvalidJsonError:
        return None


def coalesce_key(edu_type: str, content: Mapping[str, Any]) -> str | None:
    """For EDUs where only the latest matters: what a newer one replaces."""
    if edu_type == "m.typing":
        room_id, user_id = content.get("room_id"), content.get("user_id")
        if isinstance(room_id, str) and isinstance(user_id, str):
            return f"{room_id} {user_id}"
    elif edu_type == "m.presence":
        push = content.get("push")
        if isinstance(push, list) and len(push) == 1 and isinstance(push[0], dict):
            user_id = push[0].get("user_id")
            if isinstance(user_id, str):
                return user_id
    return None


class _Queue:
    __slots__ = ("task", "wakeup")

    def __init__(self) -> None:
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class FederationSender:
    def __init__(
        self,
        server_name: str,
        store: OutboundQueueStore,
        client: TransactionClient,
        backoff: DestinationBackoff,
        clock: Clock,
        supervisor: TaskSupervisor,
        *,
        policy: SenderPolicy = SenderPolicy(),
        enabled: bool = True,
    ) -> None:
        self._server_name = server_name
        self._store = store
        self._client = client
        self._backoff = backoff
        self._clock = clock
        self._supervisor = supervisor
        self._policy = policy
        self._enabled = enabled
        self._queues: dict[str, _Queue] = {}
        # Rooms whose queue was cut short, per destination: their next PDU is replaced
        # by the room's local forward extremities if it is no longer one itself.
        self._catching_up: dict[str, set[str]] = {}
        self._extremities: RoomExtremities | None = None
        backoff.add_recovery_listener(self.wake)

    def set_room_extremities(self, extremities: RoomExtremities) -> None:
        """Bound late: the rooms side is wired after the sender (app/room_federation)."""
        self._extremities = extremities

    @property
    def active_destinations(self) -> list[str]:
        """Destinations whose queue task is running (has work or is backing off)."""
        return sorted(self._queues)

    async def start(self) -> None:
        """Resume the queues persisted before a restart."""
        if not self._enabled:
            return
        for destination in await self._store.get_pending_destinations():
            self.wake(destination)

    async def enqueue_pdu(self, destinations: Iterable[str], event: Event) -> None:
        targets = sorted({d for d in destinations if d != self._server_name})
        if not targets or not self._enabled:
            return
        now = self._clock.time_msec()
        trimmed = await self._store.enqueue_room_pdu(
            targets,
            event.event_id,
            event.room_id,
            encode_json(federation_pdu(event)).decode(),
            now,
            max_per_room=self._policy.max_pdus_per_room,
            catch_up=[d for d in targets if self._is_long_failing(d, now)],
        )
        for destination in trimmed:
            if event.room_id not in self._catching_up.setdefault(destination, set()):
                logger.info(
                    "%s: catching up on %s (older queued events dropped)",
                    destination,
                    event.room_id,
                )
                self._catching_up[destination].add(event.room_id)
        for destination in targets:
            self.wake(destination)

    def _is_long_failing(self, destination: str, now: int) -> bool:
        since = self._backoff.failing_since(destination)
        return since is not None and now - since >= self._policy.catch_up_after_ms

    async def enqueue_edu(
        self, destination: str, edu_type: str, content: Mapping[str, Any]
    ) -> None:
        if destination == self._server_name or not self._enabled:
            return
        await self._store.enqueue_edu(
            destination,
            edu_type,
            encode_json(dict(content)).decode(),
            self._clock.time_msec(),
            coalesce_key=coalesce_key(edu_type, content),
        )
        self.wake(destination)

    def wake(self, destination: str) -> None:
        """New work, or the destination is back: make its queue look now."""
        if not self._enabled:
            return
        queue = self._queues.get(destination)
        if queue is not None:
            queue.wakeup.set()
            return
        queue = self._queues[destination] = _Queue()
        queue.task = self._supervisor.start(
            f"federation-sender:{destination}", self._run(destination, queue)
        )

    async def _run(self, destination: str, queue: _Queue) -> None:
        try:
            while True:
                queue.wakeup.clear()
                await self._wait_out_backoff(destination, queue)
                try:
                    more = await self._send_next(destination)
                except Exception:
                    logger.exception("federation sender for %s failed", destination)
                    await self._sleep_or_wake(self._policy.error_delay_seconds, queue)
                    continue
                # No await between this check and leaving `_queues`: an enqueue either
                # set `wakeup` before it or finds no queue and starts a new task.
                if not more and not queue.wakeup.is_set():
                    return
        finally:
            if self._queues.get(destination) is queue:
                del self._queues[destination]

    async def _wait_out_backoff(self, destination: str, queue: _Queue) -> None:
        while True:
            wait_ms = self._backoff.retry_at(destination) - self._clock.time_msec()
            if wait_ms <= 0:
                return
            await self._sleep_or_wake(wait_ms / 1000, queue)
            queue.wakeup.clear()

    async def _sleep_or_wake(self, seconds: float, queue: _Queue) -> None:
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        waker = asyncio.ensure_future(queue.wakeup.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)

    async def _send_next(self, destination: str) -> bool:
        """Send one transaction; False when the queue was empty."""
        batch = await self._store.get_outbound_batch(
            destination,
            self._policy.max_pdus_per_transaction,
            self._policy.max_edus_per_transaction,
        )
        if not batch.pdus and not batch.edus:
            return False
        if await self._transmit(destination, batch):
            await self._store.delete_delivered(
                destination,
                [p.pdu_id for p in batch.pdus],
                [e.edu_id for e in batch.edus],
            )
        return True

    async def _transmit(self, destination: str, batch: OutboundBatchRows) -> bool:
        """True when the batch is done with (accepted, or refused for good)."""
        pdus, substituted = await self._pdus_to_send(destination, batch)
        now = self._clock.time_msec()
        txn_id = transaction_id(now, batch, substituted)
        transaction = {
            "origin": self._server_name,
            "origin_server_ts": now,
            "pdus": pdus,
            "edus": [
                {"edu_type": e.edu_type, "content": _decode(e.content_json) or {}}
                for e in batch.edus
            ],
        }
        try:
            response = await self._client.send_transaction(
                destination, txn_id, transaction
            )
        except NotRetryingDestination:
            return False
        except FederationError as e:
            done = await self._on_error(destination, txn_id, e)
        else:
            _log_pdu_errors(destination, txn_id, response)
            done = True
        if done:
            self._caught_up(destination, batch)
        return done

    async def _pdus_to_send(
        self, destination: str, batch: OutboundBatchRows
    ) -> tuple[list[JsonDict], list[str]]:
        """The batch's PDUs; in rooms catching up, a PDU that is no longer a forward
        extremity is replaced by the room's local forward extremities."""
        rooms = self._catching_up.get(destination, set())
        pdus: dict[str, JsonDict] = {}
        substituted: list[str] = []
        for row in batch.pdus:
            pdu = _decode(row.pdu_json)
            if not isinstance(pdu, dict) or row.event_id in pdus:
                continue
            if row.room_id not in rooms or self._extremities is None:
                pdus[row.event_id] = pdu
                continue
            latest = await self._extremities.get_local_forward_extremities(row.room_id)
            if not latest or row.event_id in {e.event_id for e in latest}:
                pdus[row.event_id] = pdu
                continue
            for event in latest:
                if event.event_id not in pdus:
                    pdus[event.event_id] = federation_pdu(event)
                    substituted.append(event.event_id)
        return list(pdus.values()), substituted

    def _caught_up(self, destination: str, batch: OutboundBatchRows) -> None:
        rooms = self._catching_up.get(destination)
        if rooms is None:
            return
        rooms.difference_update(p.room_id for p in batch.pdus)
        if not rooms:
            del self._catching_up[destination]

    async def _on_error(
        self, destination: str, txn_id: str, error: FederationError
    ) -> bool:
        status = error.status
        if status is not None and 400 <= status < 500 and status != 429:
            logger.warning(
                "%s refused transaction %s (%s): dropping it",
                destination,
                txn_id,
                error,
            )
            return True
        if status == 429:
            # Not a failure of the server, but we must slow down all the same.
            await self._backoff.record_failure(destination)
        logger.info("transaction %s to %s failed: %s", txn_id, destination, error)
        return False


def _log_pdu_errors(destination: str, txn_id: str, response: Mapping[str, Any]) -> None:
    results = response.get("pdus")
    if not isinstance(results, dict):
        return
    for event_id, result in results.items():
        if isinstance(result, dict) and "error" in result:
            logger.info(
                "%s rejected %s in transaction %s: %s",
                destination,
                event_id,
                txn_id,
                result.get("error"),
            )
