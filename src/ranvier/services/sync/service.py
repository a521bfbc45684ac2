"""`GET /sync`: one request, from token to response (DESIGN.md "A client syncs").

1. Presence: the sync marks the user online (or `set_presence`) for its duration.
2. Initial sync, `full_state`, or `timeout=0`: compute once at the current token.
3. Otherwise long-poll: register a notifier listener (user, device, joined rooms) *before*
   reading the current token, compute; if nothing is new, sleep until the listener is
   woken or the timeout passes, then compute again. A write landing between the read of
   the token and the sleep wakes the listener, so nothing is missed.

Every device syncs on its own: to-device messages are per device (and acknowledged by the
device's next `since`); everything else is per user.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ranvier.core.streams import StreamKey, SyncToken
from ranvier.services.account_data import AccountDataService
from ranvier.services.notifier import Notifier, WakeKey, device_key, room_key, user_key
from ranvier.services.presence import OFFLINE, PresenceService
from ranvier.services.sync.models import MAX_TIMEOUT_MS, SyncRequest, SyncResult
from ranvier.services.sync.rooms import RoomsSectionBuilder
from ranvier.services.to_device import ToDeviceService
from ranvier.storage.stores.sync import SyncStore
from ranvier.util.clock import Clock

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]


class KeyCounts(Protocol):
    """The E2E service's seam: one-time key counts and unused fallback key types."""

    async def get_one_time_key_counts(
        self, user_id: str, device_id: str
    ) -> dict[str, int]: ...

    async def get_unused_fallback_key_types(
        self, user_id: str, device_id: str
    ) -> list[str]: ...


class NoKeys:
    """Until E2E lands: nothing uploaded (the fields are still present, as clients expect)."""

    async def get_one_time_key_counts(
        self, user_id: str, device_id: str
    ) -> dict[str, int]:
        return {"signed_curve25519": 0}

    async def get_unused_fallback_key_types(
        self, user_id: str, device_id: str
    ) -> list[str]:
        return []


class SyncService:
    def __init__(
        self,
        *,
        clock: Clock,
        notifier: Notifier,
        store: SyncStore,
        rooms: RoomsSectionBuilder,
        account_data: AccountDataService,
        presence: PresenceService,
        to_device: ToDeviceService,
        keys: KeyCounts,
    ) -> None:
        self._clock = clock
        self._notifier = notifier
        self._store = store
        self._rooms = rooms
        self._account_data = account_data
        self._presence = presence
        self._to_device = to_device
        self._keys = keys

    async def sync(self, req: SyncRequest) -> SyncResult:
        await self._presence.sync_started(req.user_id, req.set_presence)
        try:
            if req.since is None or req.full_state or req.timeout_ms <= 0:
                return await self.generate(req, self._notifier.current_token())
            return await self._long_poll(req, req.since)
        finally:
            self._presence.sync_finished(req.user_id)

    async def _long_poll(self, req: SyncRequest, since: SyncToken) -> SyncResult:
        timeout_s = min(req.timeout_ms, MAX_TIMEOUT_MS) / 1000
        deadline = self._clock.monotonic() + timeout_s
        listener = self._notifier.listen()
        try:
            while True:
                listener.set_keys(await self._wake_keys(req))
                listener.rearm()
                now = self._notifier.current_token()
                closed = self._notifier.closed
                if now.is_after(since) or closed:
                    result = await self.generate(req, now)
                    remaining = deadline - self._clock.monotonic()
                    if not result.is_empty() or remaining <= 0 or closed:
                        return result
                else:
                    # No stream moved past the client's token, so the result would be
                    # empty: skip computing it (most long-polls wait right away).
                    remaining = deadline - self._clock.monotonic()
                    if remaining <= 0:
                        return await self.generate(req, now)
                if not await listener.wait(remaining):
                    return await self.generate(req, self._notifier.current_token())
        finally:
            listener.close()

    async def _wake_keys(self, req: SyncRequest) -> list[WakeKey]:
        rooms = await self._store.get_joined_room_ids(req.user_id)
        keys = [user_key(req.user_id), *(room_key(r) for r in rooms)]
        if req.device_id is not None:
            keys.append(device_key(req.user_id, req.device_id))
        return keys

    # -- one computation ----------------------------------------------------------------------
    async def generate(self, req: SyncRequest, now: SyncToken) -> SyncResult:
        since = req.since or SyncToken()
        account_since = await self._account_data.get_account_data_since(
            req.user_id, since.account_data, now.account_data, initial=req.since is None
        )
        result = SyncResult(next_batch=now)
        result.rooms = await self._rooms.build(req, now, account_since)
        acc_filter = req.filter.account_data
        result.account_data = [
            {"type": t, "content": c}
            for t, c in sorted(account_since.global_data.items())
            if acc_filter.matches(t)
        ]
        result.presence = await self._presence_events(req, since, now)
        if req.since is not None:
            result.presence += await self._joined_members_presence(
                req, req.since, now, result
            )
        if req.device_id is not None:
            messages, to_device_pos = await self._to_device.get_messages_for_sync(
                req.user_id, req.device_id, since.to_device, now.to_device
            )
            result.to_device = messages
            result.next_batch = now.with_position(StreamKey.TO_DEVICE, to_device_pos)
            result.one_time_keys_count = await self._keys.get_one_time_key_counts(
                req.user_id, req.device_id
            )
            result.unused_fallback_key_types = (
                await self._keys.get_unused_fallback_key_types(
                    req.user_id, req.device_id
                )
            )
        if req.since is not None:
            changed, left = await self._device_lists(req, req.since, now, result)
            result.device_lists_changed = sorted(changed)
            result.device_lists_left = sorted(left)
        return result

    async def _presence_events(
        self, req: SyncRequest, since: SyncToken, now: SyncToken
    ) -> list[JsonDict]:
        flt = req.filter.presence
        if flt.excludes_everything() or not flt.matches("m.presence"):
            return []
        rows = await self._store.get_presence_for_cohabitants(
            req.user_id, since.presence, now.presence
        )
        initial = req.since is None
        return [
            self._presence.format_event(row)
            for row in rows
            if not (initial and row.state == OFFLINE)
            and flt.matches("m.presence", row.user_id)
        ]

    async def _joined_members_presence(
        self, req: SyncRequest, since: SyncToken, now: SyncToken, result: SyncResult
    ) -> list[JsonDict]:
        """An incremental sync after joins carries the presence of the new company (as
        Synapse does): every member of a room the user just joined, and everyone who
        just joined one of the user's rooms, even when their presence did not change."""
        flt = req.filter.presence
        if since.events >= now.events or flt.excludes_everything():
            return []
        users: set[str] = set()
        if result.rooms.newly_joined:
            users |= await self._store.get_joined_members(result.rooms.newly_joined)
        joined_rooms = await self._store.get_joined_room_ids(req.user_id)
        others = await self._store.get_others_membership_changes(
            joined_rooms, req.user_id, since.events, now.events
        )
        users |= {m.user_id for m in others if m.membership == "join"}
        users.discard(req.user_id)
        users -= {e["sender"] for e in result.presence}
        events = await self._presence.get_presence_events(sorted(users))
        return [e for e in events if flt.matches("m.presence", e["sender"])]

    async def _device_lists(
        self, req: SyncRequest, since: SyncToken, now: SyncToken, result: SyncResult
    ) -> tuple[set[str], set[str]]:
        """`device_lists`: users whose devices changed and who share a room, users who
        newly share a room (their devices are new to the client; joined, invited or
        knocking, as Synapse: an encrypted room's invitees get its keys), and users who
        no longer share any room (`left`)."""
        changed = await self._store.get_device_list_changes_for_cohabitants(
            req.user_id, since.device_lists, now.device_lists
        )
        candidates_left: set[str] = set()
        if since.events >= now.events and not result.rooms.leave:
            return changed, set()
        joined_rooms = await self._store.get_joined_room_ids(req.user_id)
        others = await self._store.get_others_membership_changes(
            joined_rooms | set(result.rooms.leave),
            req.user_id,
            since.events,
            now.events,
        )
        for m in others:
            if (
                m.membership in ("join", "invite", "knock")
                and m.room_id in joined_rooms
            ):
                changed.add(m.user_id)
            elif m.membership in ("leave", "ban"):
                candidates_left.add(m.user_id)
        if result.rooms.newly_joined:
            changed |= await self._store.get_joined_members(result.rooms.newly_joined)
        if result.rooms.leave:
            candidates_left |= await self._store.get_joined_members(result.rooms.leave)
        candidates_left.discard(req.user_id)
        still_shared = await self._store.get_users_sharing_rooms(
            req.user_id, candidates_left
        )
        left = candidates_left - still_shared
        return changed - left, left
