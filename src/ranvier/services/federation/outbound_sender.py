"""Outbound room traffic: locally created events and EDUs, routed through the federation
sender's persisted per-destination queues (spec: S-S API > Transactions; PDUs; EDUs).

* `RoomPduForwarder` is a `RoomEventNotifier` (the ingest pipeline's notify seam): every
  accepted event created on this server is queued to every *other* server with a joined
  member in the room, plus, for membership events other than invites, the target user's
  server (so a kicked, banned or uninvited user's server learns about it; an invite
  reaches the invitee's server through `/invite` instead). The notifier is synchronous and
  must not block; the forwarder hands events to one supervised worker that computes the
  destinations and enqueues them in order. The events-stream position handed over is
  saved, and a restart first queues the local events after it (none is lost between
  "persisted" and "queued").
* Events already delivered to the room by a `send_join`/`send_leave`/`send_knock` (the
  resident server broadcasts those) are skipped: `skip_once(event_id)`.
* `FederationEduSender` builds the EDUs: typing, receipts, presence (to servers sharing a
  room with the user), to-device messages for remote users, device-list updates and
  cross-signing key updates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol

from ranvier.core.events.event import Event
from ranvier.core.ids import InvalidIdentifierError, domain_of
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.util.clock import Clock
from ranvier.util.supervisor import TaskSupervisor

logger = logging.getLogger(__name__)

__all__ = [
    "FederationEduSender",
    "ForwardingLog",
    "OutboundQueue",
    "RoomPduForwarder",
    "RoomServers",
]

JsonDict = dict[str, Any]
# How long after a remote user's join its server is sent our members' presence.
REMOTE_JOIN_PRESENCE_DELAY_S = 2.0


class OutboundQueue(Protocol):
    """The federation sender (workers/federation_sender.py)."""

    async def enqueue_pdu(self, destinations: Iterable[str], event: Event) -> None: ...

    async def enqueue_edu(
        self, destination: str, edu_type: str, content: Mapping[str, Any]
    ) -> None: ...


class JoinedMembers(Protocol):
    async def get_joined_user_ids(self, room_id: str) -> list[str]: ...


class UserRooms(Protocol):
    async def get_joined_room_ids(self, user_id: str) -> set[str]: ...


def _domain(user_id: str) -> str | None:
    try:
        return domain_of(user_id)
    except InvalidIdentifierError:
        return None


class RoomServers:
    """Which servers are in a room: those with a joined member in its current state."""

    def __init__(self, server_name: str, members: JoinedMembers) -> None:
        self._server_name = server_name
        self._members = members

    async def get_joined_servers(self, room_id: str) -> set[str]:
        servers = {_domain(u) for u in await self._members.get_joined_user_ids(room_id)}
        return {s for s in servers if s is not None}

    async def get_other_servers(self, room_id: str) -> set[str]:
        return await self.get_joined_servers(room_id) - {self._server_name}

    async def get_joined_user_ids(self, room_id: str) -> list[str]:
        return await self._members.get_joined_user_ids(room_id)

    async def get_destinations_for_event(self, event: Event) -> set[str]:
        """The servers with a joined member, plus the target's server for a membership
        change (a kick or ban must reach it) - except invites: the invitee's server got
        the invite through `/invite` (spec: Inviting to a room), and a server whose
        only member is invited is not in the room."""
        servers = await self.get_joined_servers(event.room_id)
        if (
            event.type == "m.room.member"
            and event.state_key
            and event.content.get("membership") != "invite"
        ):
            target = _domain(event.state_key)
            if target is not None:
                servers.add(target)
        servers.discard(self._server_name)
        return servers


class ForwardingLog(Protocol):
    """How far the events stream has been handed to the sender, and the local events
    after a position (the federation store)."""

    async def get_stream_position(self, stream_name: str) -> int | None: ...

    async def set_stream_position(self, stream_name: str, position: int) -> None: ...

    async def get_local_events_after(
        self, server_name: str, after: int, upto: int, limit: int
    ) -> tuple[Sequence[StoredEvent], int]: ...


_STREAM = "events"
_REPLAY_PAGE = 500
# Without anything to forward, the saved position may lag this long (a restart then
# rescans at most that much of the stream).
_SAVE_IDLE_POSITION_MS = 30_000


class RoomPduForwarder:
    """Queues locally created events to the other servers in their room.

    Durable: the events-stream position up to which every event has been handed to the
    sender is saved (`ForwardingLog`), and `start()` queues the local events after it.
    So an event persisted just before a shutdown or crash, whose notification never
    reached the sender's database queue, is still sent after the restart (at worst
    twice; receivers de-duplicate by event ID)."""

    def __init__(
        self,
        server_name: str,
        servers: RoomServers,
        queue: OutboundQueue,
        supervisor: TaskSupervisor,
        *,
        log: ForwardingLog | None = None,
        current_position: Callable[[], int] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._server_name = server_name
        self._servers = servers
        self._queue = queue
        self._supervisor = supervisor
        self._log = log
        self._current_position = current_position
        self._clock = clock
        self._pending: asyncio.Queue[tuple[Event, int]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._skip: set[str] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        # Events at or below it were (or are being) queued by the start-up replay.
        self._replayed_upto = 0
        self._replay_from: int | None = None
        self._saved = 0
        self._saved_at = 0
        self._failed = False

    def skip_once(self, event_id: str) -> None:
        """The next notification of `event_id` is not forwarded (already delivered)."""
        self._skip.add(event_id)

    async def start(self) -> None:
        """Queue the local events a previous run persisted but never handed over."""
        if self._log is None or self._current_position is None:
            return
        saved = await self._log.get_stream_position(_STREAM)
        upto = self._current_position()
        if saved is None:
            # A new database (or federation just enabled): nothing was missed.
            await self._save(upto)
            return
        self._saved = saved
        self._replay_from = saved
        self._replayed_upto = upto
        self._ensure_worker()

    def on_new_event(
        self, event: Event, stream_ordering: int, *, extra_users: Iterable[str] = ()
    ) -> None:
        if event.event_id in self._skip:
            self._skip.discard(event.event_id)
            return
        if _domain(event.sender) != self._server_name:
            return
        self._pending.put_nowait((event, stream_ordering))
        self._ensure_worker()

    def _ensure_worker(self) -> None:
        self._idle.clear()
        if self._worker is None or self._worker.done():
            self._worker = self._supervisor.start(
                "federation-pdu-forwarder", self._drain()
            )

    async def wait_idle(self) -> None:
        """Until every notified event has been handed to the sender (tests, shutdown)."""
        await self._idle.wait()

    async def _drain(self) -> None:
        try:
            if self._replay_from is not None:
                await self._replay(self._replay_from, self._replayed_upto)
                self._replay_from = None
            while True:
                forwarded = False
                while not self._pending.empty():
                    event, ordering = self._pending.get_nowait()
                    if ordering > self._replayed_upto:
                        await self._forward(event)
                        forwarded = True
                # Nothing pending and no await since: every event at or below the
                # readable position has been handed over.
                await self._save_position(forwarded)
                if self._pending.empty():
                    return
        finally:
            if self._pending.empty():
                self._idle.set()

    async def _replay(self, after: int, upto: int) -> None:
        assert self._log is not None
        count = 0
        while after < upto:
            events, after = await self._log.get_local_events_after(
                self._server_name, after, upto, _REPLAY_PAGE
            )
            for stored in events:
                await self._forward(stored.event)
            count += len(events)
        if count:
            logger.info("queued %d events persisted before the restart", count)

    async def _forward(self, event: Event) -> None:
        try:
            destinations = await self._servers.get_destinations_for_event(event)
            if destinations:
                await self._queue.enqueue_pdu(destinations, event)
        except Exception:
            # The saved position stops here: the next start-up queues it again.
            self._failed = True
            logger.exception("could not queue %s for federation", event.event_id)

    async def _save_position(self, forwarded: bool) -> None:
        if self._log is None or self._current_position is None or self._failed:
            return
        position = self._current_position()
        if position <= self._saved:
            return
        now = self._clock.time_msec() if self._clock is not None else 0
        if forwarded or now - self._saved_at >= _SAVE_IDLE_POSITION_MS:
            await self._save(position)

    async def _save(self, position: int) -> None:
        assert self._log is not None
        await self._log.set_stream_position(_STREAM, position)
        self._saved = position
        self._saved_at = self._clock.time_msec() if self._clock is not None else 0


class FederationEduSender:
    """EDUs to other servers, through the sender's queues."""

    def __init__(
        self,
        server_name: str,
        servers: RoomServers,
        user_rooms: UserRooms,
        queue: OutboundQueue,
        clock: Clock | None = None,
    ) -> None:
        self._server_name = server_name
        self._servers = servers
        self._user_rooms = user_rooms
        self._queue = queue
        self._clock = clock

    def _is_local(self, user_id: str) -> bool:
        return _domain(user_id) == self._server_name

    async def _servers_sharing_rooms(self, user_id: str) -> set[str]:
        out: set[str] = set()
        for room_id in await self._user_rooms.get_joined_room_ids(user_id):
            out |= await self._servers.get_other_servers(room_id)
        return out

    async def send_typing(self, room_id: str, user_id: str, typing: bool) -> None:
        """`m.typing` to the room's other servers (spec: S-S API > Typing Notifications)."""
        if not self._is_local(user_id):
            return
        content = {"room_id": room_id, "user_id": user_id, "typing": typing}
        for destination in sorted(await self._servers.get_other_servers(room_id)):
            await self._queue.enqueue_edu(destination, "m.typing", content)

    async def send_receipt(
        self,
        room_id: str,
        receipt_type: str,
        user_id: str,
        event_ids: Collection[str],
        data: Mapping[str, Any],
    ) -> None:
        """`m.receipt` (public receipts only; `m.read.private` never leaves the server)."""
        if not self._is_local(user_id) or receipt_type == "m.read.private":
            return
        content = {
            room_id: {
                receipt_type: {
                    user_id: {"event_ids": list(event_ids), "data": dict(data)}
                }
            }
        }
        for destination in sorted(await self._servers.get_other_servers(room_id)):
            await self._queue.enqueue_edu(destination, "m.receipt", content)

    async def send_presence(self, user_id: str, presence: Mapping[str, Any]) -> None:
        """`m.presence` to every server sharing a room with the user. `presence` holds
        `presence` and optionally `status_msg`, `last_active_ago`, `currently_active`."""
        if not self._is_local(user_id):
            return
        content = {"push": [{**presence, "user_id": user_id}]}
        for destination in sorted(await self._servers_sharing_rooms(user_id)):
            await self._queue.enqueue_edu(destination, "m.presence", content)

    async def send_presence_on_join(
        self,
        room_id: str,
        user_id: str,
        pushes_for: Callable[[Sequence[str]], Awaitable[list[JsonDict]]],
    ) -> None:
        """A local user joined: their presence to the room's other servers. A remote
        user joined: the room's local members' presence to that user's server."""
        if self._is_local(user_id):
            destinations = await self._servers.get_other_servers(room_id)
            users = [user_id]
        else:
            server = _domain(user_id)
            if server is None:
                return
            destinations = {server}
            if self._clock is not None:
                # The joining server stores the join only once our send_join answer
                # reaches it, and drops presence of users it shares no room with.
                await self._clock.sleep(REMOTE_JOIN_PRESENCE_DELAY_S)
            users = [
                u
                for u in await self._servers.get_joined_user_ids(room_id)
                if self._is_local(u)
            ]
        if not destinations or not users:
            return
        pushes = await pushes_for(users)
        if not pushes:
            return
        for destination in sorted(destinations):
            await self._queue.enqueue_edu(destination, "m.presence", {"push": pushes})

    async def send_to_device(
        self,
        sender: str,
        event_type: str,
        message_id: str,
        messages: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """`m.direct_to_device`: `messages` maps remote user IDs to {device_id: content};
        one EDU per destination server."""
        by_server: dict[str, JsonDict] = {}
        for user_id, per_device in messages.items():
            server = _domain(user_id)
            if server is None or server == self._server_name:
                continue
            by_server.setdefault(server, {})[user_id] = dict(per_device)
        for destination, user_messages in sorted(by_server.items()):
            await self._queue.enqueue_edu(
                destination,
                "m.direct_to_device",
                {
                    "sender": sender,
                    "type": event_type,
                    "message_id": message_id,
                    "messages": user_messages,
                },
            )

    async def send_device_list_update(
        self,
        user_id: str,
        device_id: str,
        stream_id: int,
        prev_ids: Collection[int],
        *,
        deleted: bool = False,
        display_name: str | None = None,
        keys: Mapping[str, Any] | None = None,
    ) -> None:
        """`m.device_list_update` to every server sharing a room with the user (spec:
        S-S API > Device Management)."""
        if not self._is_local(user_id):
            return
        content: JsonDict = {
            "user_id": user_id,
            "device_id": device_id,
            "stream_id": stream_id,
            "prev_id": sorted(prev_ids),
            "deleted": deleted,
        }
        if display_name is not None:
            content["device_display_name"] = display_name
        if keys is not None:
            content["keys"] = dict(keys)
        for destination in sorted(await self._servers_sharing_rooms(user_id)):
            await self._queue.enqueue_edu(destination, "m.device_list_update", content)

    async def send_signing_key_update(
        self,
        user_id: str,
        master_key: Mapping[str, Any] | None,
        self_signing_key: Mapping[str, Any] | None,
    ) -> None:
        """`m.signing_key_update` to every server sharing a room with the user (spec:
        S-S API > End-to-End Encryption > Cross-signing details). The user-signing key
        is private and never sent."""
        if not self._is_local(user_id):
            return
        content: JsonDict = {"user_id": user_id}
        if master_key is not None:
            content["master_key"] = dict(master_key)
        if self_signing_key is not None:
            content["self_signing_key"] = dict(self_signing_key)
        for destination in sorted(await self._servers_sharing_rooms(user_id)):
            await self._queue.enqueue_edu(destination, "m.signing_key_update", content)
