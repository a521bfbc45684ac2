"""Homeserver → application service: transactions, user/alias queries, pings.

Spec: Application Service API > Pushing events (`PUT /_matrix/app/v1/transactions/
{txnId}`), Querying (`GET /_matrix/app/v1/users/{userId}`, `/rooms/{roomAlias}`),
Pinging (`POST /_matrix/app/v1/ping`).

One `AppServiceSender` runs per service under the supervisor, so a service that is down
only delays itself. It loops: send the oldest persisted transaction until the service
acknowledges it (backing off between failures); otherwise read the events after the
service's stream position, keep those it is interested in, and persist them as the next
transaction together with the new position (`AppServiceStore.create_txn`). A restart
resumes from the database: unacknowledged transactions are sent again with the same ID,
which the spec requires services to treat idempotently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any, Final, Protocol
from urllib.parse import quote

import aiohttp
import orjson

from ranvier.core.appservice import AppService, AppServiceRegistry
from ranvier.federation.dns import DnsResolver
from ranvier.federation.ip_filter import IpRangeFilter
from ranvier.federation.transport import (
    TransportError,
    guarded_connector,
    read_capped,
)
from ranvier.storage.stores.appservices import PendingTxn
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.util.clock import Clock

logger = logging.getLogger(__name__)

APP_V1: Final = "/_matrix/app/v1"
MAX_RESPONSE_BYTES: Final = 64 * 1024
# Events per transaction: bounds the body and the time one request takes.
MAX_EVENTS_PER_TXN: Final = 100
MIN_BACKOFF_SECONDS: Final = 1.0
MAX_BACKOFF_SECONDS: Final = 300.0

JsonDict = dict[str, Any]


class AppServiceUnreachable(Exception):
    """The service did not answer, or answered with an error status."""


class AppServiceHttp:
    """Requests to application services: `Authorization: Bearer <hs_token>` plus the
    legacy `access_token` query (older bridges only read that one).

    The connector is the shared `guarded_connector`. Its policy (built in
    `app/appservices.py`) is the federation blocklist with the addresses of the
    operator-configured service URLs let through, and redirects are never followed:
    the operator chose the URL, nobody else chooses where a request goes next."""

    def __init__(
        self, ip_filter: IpRangeFilter, dns: DnsResolver, *, timeout: float = 30.0
    ) -> None:
        self._filter = ip_filter
        self._dns = dns
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=guarded_connector(self._dns, self._filter, limit=100),
                timeout=self._timeout,
                headers={"User-Agent": "Ranvier"},
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def request(
        self, service: AppService, method: str, path: str, body: bytes | None = None
    ) -> tuple[int, Any]:
        """(status, parsed JSON or None); raises `AppServiceUnreachable` without an
        answer."""
        if service.url is None:
            raise AppServiceUnreachable(f"{service.id} has no url")
        headers = {"Authorization": f"Bearer {service.hs_token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._get_session().request(
                method,
                service.url + path,
                params={"access_token": service.hs_token},
                data=body,
                headers=headers,
                allow_redirects=False,
            ) as resp:
                raw = await read_capped(resp, MAX_RESPONSE_BYTES)
                try:
                    parsed = orjson.loads(raw) if raw else None
                except orjson.JSONDecodeError:
                    parsed = None
                return resp.status, parsed
        except (aiohttp.ClientError, OSError, TimeoutError, TransportError) as e:
            raise AppServiceUnreachable(f"{type(e).__name__}: {e}") from None

    async def send_transaction(
        self, service: AppService, txn_id: int, body: bytes
    ) -> None:
        status, _ = await self.request(
            service, "PUT", f"{APP_V1}/transactions/{txn_id}", body
        )
        if status != 200:
            raise AppServiceUnreachable(f"transaction {txn_id}: HTTP {status}")

    async def query_user(self, service: AppService, user_id: str) -> bool:
        """Spec: 200 means the service created the user; anything else, it did not."""
        return await self._query(service, f"{APP_V1}/users/{quote(user_id, safe='')}")

    async def query_alias(self, service: AppService, alias: str) -> bool:
        return await self._query(service, f"{APP_V1}/rooms/{quote(alias, safe='')}")

    async def _query(self, service: AppService, path: str) -> bool:
        try:
            status, _ = await self.request(service, "GET", path)
        except AppServiceUnreachable as e:
            logger.warning("application service %s query failed: %s", service.id, e)
            return False
        return status == 200

    async def ping(self, service: AppService, transaction_id: str | None) -> int | None:
        """The service's HTTP status, None when it could not be reached."""
        body: JsonDict = {}
        if transaction_id is not None:
            body["transaction_id"] = transaction_id
        try:
            status, _ = await self.request(
                service, "POST", f"{APP_V1}/ping", orjson.dumps(body)
            )
        except AppServiceUnreachable as e:
            logger.info("application service %s ping failed: %s", service.id, e)
            return None
        return status

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._dns.close()


class TransactionSink(Protocol):
    async def send_transaction(
        self, service: AppService, txn_id: int, body: bytes
    ) -> None: ...


class DeliveryStore(Protocol):
    async def get_or_init_position(self, as_id: str, current: int) -> int: ...

    async def get_oldest_txn(self, as_id: str) -> PendingTxn | None: ...

    async def count_txns(self, as_id: str) -> int: ...

    async def create_txn(self, as_id: str, body: str, position: int) -> int: ...

    async def set_position(self, as_id: str, position: int) -> None: ...

    async def delete_txn(self, as_id: str, txn_id: int) -> None: ...

    async def get_events_after(
        self, from_pos: int, to_pos: int, limit: int
    ) -> list[StoredEvent]: ...

    async def get_joined_members(
        self, room_ids: Collection[str]
    ) -> dict[str, set[str]]: ...


class EventSerializer(Protocol):
    async def serialize(
        self,
        events: Sequence[StoredEvent],
        *,
        user_id: str | None = None,
        device_id: str | None = None,
        include_room_id: bool = True,
        bundle_relations: bool = True,
    ) -> list[JsonDict]: ...


def interesting_events(
    service: AppService,
    events: Sequence[StoredEvent],
    members: dict[str, set[str]],
) -> list[StoredEvent]:
    out = []
    for stored in events:
        e = stored.event
        if service.is_interested_in_event(
            room_id=e.room_id,
            sender=e.sender,
            event_type=e.type,
            state_key=e.state_key,
            members=members.get(e.room_id, ()),
        ):
            out.append(stored)
    return out


class AppServiceSender:
    def __init__(
        self,
        service: AppService,
        *,
        store: DeliveryStore,
        current_position: Callable[[], int],
        serializer: EventSerializer,
        sink: TransactionSink,
        clock: Clock,
    ) -> None:
        self.service = service
        self._store = store
        self._current = current_position
        self._serializer = serializer
        self._sink = sink
        self._clock = clock
        self._wake = asyncio.Event()
        self.last_error: str | None = None
        # Typing and receipts waiting for the next transaction: kept in memory only
        # until then (ephemeral by nature; lost if the server stops before).
        self._ephemeral: list[tuple[str, JsonDict]] = []

    def wake(self) -> None:
        """New events exist (called by the notifier; must not block)."""
        self._wake.set()

    def add_ephemeral(self, room_id: str, edu: JsonDict) -> None:
        if self.service.receive_ephemeral:
            self._ephemeral.append((room_id, edu))
            self._wake.set()

    async def run(self) -> None:
        position = await self._store.get_or_init_position(
            self.service.id, self._current()
        )
        backoff = MIN_BACKOFF_SECONDS
        while True:
            self._wake.clear()
            pending = await self._store.get_oldest_txn(self.service.id)
            if pending is not None:
                if await self._deliver(pending):
                    backoff = MIN_BACKOFF_SECONDS
                else:
                    await self._clock.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            moved, position = await self._fill(position)
            if not moved:
                await self._wake.wait()

    async def _deliver(self, pending: PendingTxn) -> bool:
        try:
            await self._sink.send_transaction(
                self.service, pending.txn_id, pending.body.encode()
            )
        except AppServiceUnreachable as e:
            self.last_error = str(e)
            logger.warning(
                "application service %s: transaction %d not delivered (%s); %d queued",
                self.service.id,
                pending.txn_id,
                e,
                await self._store.count_txns(self.service.id),
            )
            return False
        self.last_error = None
        await self._store.delete_txn(self.service.id, pending.txn_id)
        return True

    async def _fill(self, position: int) -> tuple[bool, int]:
        """Turn the events after `position` (and waiting ephemeral events) into at most
        one new transaction; returns whether anything was consumed, and the new
        position."""
        ephemeral, self._ephemeral = self._ephemeral, []
        to_pos = self._current()
        events = (
            await self._store.get_events_after(position, to_pos, MAX_EVENTS_PER_TXN)
            if to_pos > position
            else []
        )
        new_pos = events[-1].stream_ordering if events else max(position, to_pos)
        if not events and not ephemeral:
            if new_pos == position:
                return False, position
            await self._store.set_position(self.service.id, new_pos)
            return True, new_pos
        rooms = {s.event.room_id for s in events} | {r for r, _ in ephemeral}
        members = await self._store.get_joined_members(rooms)
        chosen = interesting_events(self.service, events, members)
        edus = [
            edu
            for room_id, edu in ephemeral
            if self.service.is_interested_in_room(room_id)
            or any(
                self.service.is_user_in_namespace(m) for m in members.get(room_id, ())
            )
        ]
        if not chosen and not edus:
            await self._store.set_position(self.service.id, new_pos)
            return True, new_pos
        serialized = await self._serializer.serialize(chosen, bundle_relations=False)
        # MSC2409's unstable key too: bridges written before it was merged read that.
        body = orjson.dumps(
            {
                "events": serialized,
                "ephemeral": edus,
                "de.sorunome.msc2409.ephemeral": edus,
            }
        ).decode()
        await self._store.create_txn(self.service.id, body, new_pos)
        return True, new_pos


class AppServiceNotifier:
    """The `RoomEventNotifier` that wakes every sender (house rule 5). It joins the
    notifier chain before the rooms are built; the senders, which need the rooms'
    serializer, are added afterwards."""

    def __init__(self) -> None:
        self._senders: list[AppServiceSender] = []

    def add(self, sender: AppServiceSender) -> None:
        self._senders.append(sender)

    def on_new_event(
        self, event: Any, stream_ordering: int, *, extra_users: Any = ()
    ) -> None:
        for sender in self._senders:
            sender.wake()

    def on_ephemeral(self, room_id: str, edu: JsonDict) -> None:
        """Typing and receipt changes (`TypingService`/`ReceiptService.edu_listeners`)."""
        for sender in self._senders:
            sender.add_ephemeral(room_id, edu)


class AppServiceQueries:
    """Namespace checks and first-use queries for the rest of the server: the
    directory's `AppServiceAliases`."""

    def __init__(self, registry: AppServiceRegistry, http: AppServiceHttp) -> None:
        self._registry = registry
        self._http = http

    def may_create_alias(self, user_id: str, alias: str) -> bool:
        owner = self._registry.exclusive_alias_owner(alias)
        return owner is None or owner.is_user_in_namespace(user_id)

    async def query_alias(self, alias: str) -> bool:
        for service in self._registry.services:
            if (
                service.url is not None
                and service.is_interested_in_alias(alias)
                and await self._http.query_alias(service, alias)
            ):
                return True
        return False

    async def query_user(self, user_id: str) -> bool:
        for service in self._registry.services:
            if (
                service.url is not None
                and any(n.matches(user_id) for n in service.users)
                and await self._http.query_user(service, user_id)
            ):
                return True
        return False
