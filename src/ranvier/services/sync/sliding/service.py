"""Simplified sliding sync (MSC4186): one request, from `pos` to response.

1. Presence: like `/sync`, the request marks the user online (or `set_presence`).
2. Connection: without `pos` the connection (user, device, `conn_id`) starts over;
   with one, its stored state at that position is loaded and the position
   acknowledged. An unknown, superseded or expired `pos` is 400 `M_UNKNOWN_POS`, and
   clients start a new connection.
3. Compute: the room list and its lists, the rooms to send (lists' ranges and room
   subscriptions, configs combined), the extensions.
4. Long-poll (`timeout` with a `pos`): when nothing is new, wait on the same notifier
   as `/sync` (user, device and joined-room keys registered before the token is read,
   so no write is missed) and compute again.
5. Save: a new position with the rows of the rooms whose sent-state changed; rooms
   that changed but were not sent (outside the ranges) are marked `previously`, so
   they are brought up to date when they come back into view.

Room subscriptions are sticky on the connection (`unsubscribe_rooms` ends one):
matrix-js-sdk sends each subscription once; matrix-rust-sdk sends them every time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ranvier.core.errors import MatrixError
from ranvier.core.sliding_sync import RequiredState, RoomConfig, SlidingSyncRequest
from ranvier.core.streams import InvalidTokenError, SyncToken
from ranvier.services.account_data import AccountDataService
from ranvier.services.notifier import Notifier, WakeKey, device_key, room_key, user_key
from ranvier.services.presence import PresenceService
from ranvier.services.sync.models import MAX_TIMEOUT_MS
from ranvier.services.sync.rooms import RoomChanges
from ranvier.services.sync.sliding.extensions import ExtensionContext, ExtensionsBuilder
from ranvier.services.sync.sliding.room_list import ListResult, RoomListBuilder
from ranvier.services.sync.sliding.rooms import RoomRequest, RoomResultsBuilder
from ranvier.storage.stores.account_data import AccountDataSnapshot
from ranvier.storage.stores.sliding_sync import (
    LIVE,
    PREVIOUSLY,
    ConnectionState,
    SentRoom,
    SlidingSyncStore,
)
from ranvier.storage.stores.sync import MembershipRow
from ranvier.util.clock import Clock
from ranvier.util.lru import LruCache

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]

# Connections unused this long are forgotten (Synapse uses the same week).
CONNECTION_TTL_MS: Final = 7 * 24 * 3600 * 1000
CLEANUP_INTERVAL_S: Final = 3600
# Users whose account data (m.direct, tags, ignored users) is kept between requests.
ACCOUNT_CACHE_USERS: Final = 10_000


def unknown_pos() -> MatrixError:
    return MatrixError(
        400, "M_UNKNOWN_POS", "Unknown position: start a new connection."
    )


@dataclass(frozen=True, slots=True)
class SlidingSyncCall:
    user_id: str
    device_id: str
    request: SlidingSyncRequest
    pos: str | None = None
    timeout_ms: int = 0
    set_presence: str | None = None


@dataclass(slots=True)
class _Computed:
    now: SyncToken
    body: JsonDict
    rows: list[SentRoom]
    data: JsonDict
    has_news: bool


class SlidingSyncService:
    def __init__(
        self,
        *,
        clock: Clock,
        notifier: Notifier,
        store: SlidingSyncStore,
        room_list: RoomListBuilder,
        results: RoomResultsBuilder,
        extensions: ExtensionsBuilder,
        account_data: AccountDataService,
        presence: PresenceService,
        changes: RoomChanges,
    ) -> None:
        self._clock = clock
        self._notifier = notifier
        self._store = store
        self._room_list = room_list
        self._results = results
        self._extensions = extensions
        self._account_data = account_data
        self._presence = presence
        self._changes = changes
        self._accounts: LruCache[str, tuple[int, AccountDataSnapshot]] = LruCache(
            ACCOUNT_CACHE_USERS
        )

    async def sync(self, call: SlidingSyncCall) -> JsonDict:
        await self._presence.sync_started(call.user_id, call.set_presence)
        try:
            return await self._sync(call)
        finally:
            self._presence.sync_finished(call.user_id)

    async def _sync(self, call: SlidingSyncCall) -> JsonDict:
        state = await self._load(call)
        since = None if state is None else _decode_token(state.stream_token)
        if since is None or call.timeout_ms <= 0:
            computed = await self._compute(call, state, since)
        else:
            computed = await self._long_poll(call, state, since)
        return await self._save(call, state, computed)

    async def _load(self, call: SlidingSyncCall) -> ConnectionState | None:
        if call.pos is None:
            return None
        if not call.pos.isdigit() or len(call.pos) > 18:
            raise unknown_pos()
        now_ms = self._clock.time_msec()
        state = await self._store.acknowledge(
            call.user_id,
            call.device_id,
            call.request.conn_id,
            int(call.pos),
            now_ms,
            now_ms - CONNECTION_TTL_MS,
        )
        if state is None or _decode_token(state.stream_token) is None:
            raise unknown_pos()
        return state

    async def _long_poll(
        self, call: SlidingSyncCall, state: ConnectionState | None, since: SyncToken
    ) -> _Computed:
        timeout_s = min(call.timeout_ms, MAX_TIMEOUT_MS) / 1000
        deadline = self._clock.monotonic() + timeout_s
        listener = self._notifier.listen()
        try:
            while True:
                listener.set_keys(await self._wake_keys(call))
                listener.rearm()
                computed = await self._compute(call, state, since)
                remaining = deadline - self._clock.monotonic()
                if computed.has_news or remaining <= 0 or self._notifier.closed:
                    return computed
                if not await listener.wait(remaining):
                    return await self._compute(call, state, since)
        finally:
            listener.close()

    async def _wake_keys(self, call: SlidingSyncCall) -> list[WakeKey]:
        rooms = await self._room_list.joined_room_ids(call.user_id)
        return [
            user_key(call.user_id),
            device_key(call.user_id, call.device_id),
            *(room_key(r) for r in rooms),
        ]

    # -- one computation ----------------------------------------------------------------------
    async def _compute(
        self,
        call: SlidingSyncCall,
        state: ConnectionState | None,
        since: SyncToken | None,
    ) -> _Computed:
        now = self._notifier.current_token()
        req = call.request
        sent = state.rooms if state is not None else {}
        old_data = state.data if state is not None else {}
        subscriptions = _subscriptions(old_data, req)
        memberships = await self._room_list.memberships_at(call.user_id, now.events)
        account = await self._account_snapshot(call.user_id, now.account_data)
        ignored = _ignored_users(account)
        candidates = await self._room_list.candidates(
            call.user_id, memberships, sent, ignored
        )
        facts = await self._room_list.facts(candidates, now.events, account)
        lists = await self._room_list.build_lists(call.user_id, req.lists, facts)
        configs = _room_configs(req, lists, subscriptions, memberships)
        requests = [
            RoomRequest(
                room_id=room_id,
                config=config,
                lists=names,
                membership=memberships[room_id],
                prev=sent.get(room_id),
                bump_stamp=facts[room_id].bump_stamp
                if room_id in facts
                else max(memberships[room_id].stream_ordering, 0),
                is_dm=room_id in facts and facts[room_id].is_dm,
            )
            for room_id, (config, names) in configs.items()
        ]
        dm_changed = since is not None and await self._dm_changed(
            call.user_id, since, now
        )
        outcome = await self._results.build(
            call.user_id, call.device_id, requests, since, now, dm_changed
        )
        initial_rooms = {r for r, body in outcome.rooms.items() if body.get("initial")}
        extensions = await self._extensions.build(
            req,
            ExtensionContext(
                user_id=call.user_id,
                device_id=call.device_id,
                since=since,
                now=now,
                list_rooms={n: r.room_ids for n, r in lists.items()},
                subscribed=[r for r in subscriptions if r in memberships],
                initial_rooms=initial_rooms,
                memberships=memberships,
                account=account,
                timeline_ids={
                    r: {e["event_id"] for e in body.get("timeline", ())}
                    for r, body in outcome.rooms.items()
                },
            ),
        )
        rows = list(outcome.sent.values())
        rows += _refreshed(requests, outcome.current, outcome.limit_confirmed)
        rows += await self._downgrades(
            sent, set(outcome.sent) | outcome.current, since, now
        )
        counts = {name: r.count for name, r in lists.items()}
        data = {
            "subscriptions": {r: _config_json(c) for r, c in subscriptions.items()},
            "list_counts": counts,
        }
        body: JsonDict = {
            "lists": {name: r.to_json() for name, r in lists.items()},
            "rooms": outcome.rooms,
            "extensions": extensions,
        }
        has_news = (
            bool(outcome.rooms)
            or ExtensionsBuilder.has_news(extensions)
            or counts != old_data.get("list_counts")
        )
        return _Computed(now, body, rows, data, has_news)

    async def _account_snapshot(
        self, user_id: str, position: int
    ) -> AccountDataSnapshot:
        """All the user's account data as of `position`: the cached copy brought up
        to date with what changed since it was read (one small read per request)."""
        cached = self._accounts.get(user_id)
        if cached is None or cached[0] > position:
            snapshot = await self._account_data.get_account_data_since(
                user_id, 0, position
            )
        else:
            snapshot = _copy_snapshot(cached[1])
            if cached[0] < position:
                delta = await self._account_data.get_account_data_since(
                    user_id, cached[0], position
                )
                snapshot.global_data.update(delta.global_data)
                for room_id, entries in delta.room_data.items():
                    snapshot.room_data.setdefault(room_id, {}).update(entries)
        self._accounts.set(user_id, (position, snapshot))
        return _copy_snapshot(snapshot)

    async def _dm_changed(self, user_id: str, since: SyncToken, now: SyncToken) -> bool:
        changed = await self._account_data.get_account_data_since(
            user_id, since.account_data, now.account_data
        )
        return "m.direct" in changed.global_data

    async def _downgrades(
        self,
        sent: Mapping[str, SentRoom],
        handled: set[str],
        since: SyncToken | None,
        now: SyncToken,
    ) -> list[SentRoom]:
        """Live rooms that got events but were not looked at: the client has them
        only up to `since`."""
        if since is None:
            return []
        live = [r for r, s in sent.items() if s.status == LIVE and r not in handled]
        if not live:
            return []
        changed = self._changes.rooms_changed_since(live, since.events)
        if changed is None:
            changed = await self._room_list.rooms_with_events(
                live, since.events, now.events
            )
        return [
            SentRoom(r, PREVIOUSLY, since.events, sent[r].membership, sent[r].config)
            for r in sorted(changed)
        ]

    # -- saving -------------------------------------------------------------------------------
    async def _save(
        self, call: SlidingSyncCall, state: ConnectionState | None, computed: _Computed
    ) -> JsonDict:
        now_ms = self._clock.time_msec()
        token = computed.now.encode()
        if state is None:
            position: int | None = await self._store.create_connection(
                call.user_id,
                call.device_id,
                call.request.conn_id,
                now_ms,
                token,
                computed.data,
                computed.rows,
            )
        else:
            position = await self._store.add_position(
                state.connection_key,
                state.position,
                now_ms,
                token,
                computed.data,
                computed.rows,
            )
        if position is None:
            # Another request of this connection moved on meanwhile: this response
            # can never be continued from.
            raise unknown_pos()
        return {"pos": str(position), **computed.body}

    async def run_cleanup(self) -> None:
        while True:
            await self._clock.sleep(CLEANUP_INTERVAL_S)
            try:
                removed = await self._store.delete_expired(
                    self._clock.time_msec() - CONNECTION_TTL_MS
                )
                if removed:
                    logger.info("expired %d sliding sync connections", removed)
            except Exception:
                logger.exception("sliding sync connection cleanup failed")

    async def on_devices_deleted(self, user_id: str, device_ids: Sequence[str]) -> None:
        await self._store.delete_device_connections(user_id, device_ids)


# -- helpers --------------------------------------------------------------------------------------


def _copy_snapshot(s: AccountDataSnapshot) -> AccountDataSnapshot:
    return AccountDataSnapshot(
        dict(s.global_data), {r: dict(e) for r, e in s.room_data.items()}
    )


def _ignored_users(account: AccountDataSnapshot) -> frozenset[str]:
    """Spec (Ignoring users): `m.ignored_user_list` = {"ignored_users": {user: {}}}."""
    content = account.global_data.get("m.ignored_user_list")
    users = content.get("ignored_users") if isinstance(content, dict) else None
    return frozenset(users) if isinstance(users, dict) else frozenset()


def _decode_token(text: str) -> SyncToken | None:
    try:
        return SyncToken.decode(text)
    except InvalidTokenError:
        return None


def _config_json(config: RoomConfig) -> JsonDict:
    return {
        "timeline_limit": config.timeline_limit,
        "required_state": config.required_state.to_json(),
    }


def _subscriptions(old: JsonDict, req: SlidingSyncRequest) -> dict[str, RoomConfig]:
    out: dict[str, RoomConfig] = {}
    stored = old.get("subscriptions")
    if isinstance(stored, dict):
        for room_id, raw in stored.items():
            if isinstance(raw, dict) and isinstance(raw.get("timeline_limit"), int):
                out[room_id] = RoomConfig(
                    raw["timeline_limit"],
                    RequiredState.from_json(raw.get("required_state")),
                )
    out.update(req.room_subscriptions)
    for room_id in req.unsubscribe_rooms:
        out.pop(room_id, None)
    return out


def _room_configs(
    req: SlidingSyncRequest,
    lists: Mapping[str, ListResult],
    subscriptions: Mapping[str, RoomConfig],
    memberships: Mapping[str, MembershipRow],
) -> dict[str, tuple[RoomConfig, tuple[str, ...]]]:
    """Each room to consider, with its combined config and the lists it is in."""
    out: dict[str, tuple[RoomConfig, tuple[str, ...]]] = {}
    for name, result in lists.items():
        config = req.lists[name].config
        for room_id in result.room_ids:
            prev = out.get(room_id)
            out[room_id] = (
                (config, (name,))
                if prev is None
                else (prev[0].combine(config), (*prev[1], name))
            )
    # Subscriptions only reach rooms the user has a membership in (MSC4186
    # "Subscriptions": no peeking yet).
    for room_id, config in subscriptions.items():
        if room_id not in memberships:
            continue
        prev = out.get(room_id)
        out[room_id] = (
            (config, ()) if prev is None else (prev[0].combine(config), prev[1])
        )
    return out


def _refreshed(
    requests: list[RoomRequest], current: set[str], limit_confirmed: set[str]
) -> list[SentRoom]:
    """Rooms found up to date whose row says otherwise (a `previously` room with
    nothing new) or whose config changed: rewrite the row, live, with the new config."""
    out: list[SentRoom] = []
    for r in requests:
        prev = r.prev
        if r.room_id not in current or prev is None:
            continue
        old_limit = prev.config.get("timeline_limit")
        limit = r.config.timeline_limit
        if isinstance(old_limit, int) and r.room_id not in limit_confirmed:
            # A grown limit is kept back until the older events are actually sent.
            limit = min(limit, old_limit)
        config = {
            **prev.config,
            "timeline_limit": limit,
            "required_state": r.config.required_state.to_json(),
        }
        if prev.status != LIVE or config != prev.config:
            out.append(
                SentRoom(r.room_id, LIVE, prev.last_stream, prev.membership, config)
            )
    return out
