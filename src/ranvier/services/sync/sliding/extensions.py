"""Sliding sync extensions, each enabled per request:

* `to_device` (MSC3885): the device's inbox after the extension's own `since`
  (`next_batch` of the previous response); a `since` acknowledges, and deletes, what
  it covers, exactly as `/sync`'s token does.
* `e2ee` (MSC3884): `device_lists` (`changed`: users sharing a room whose devices
  changed, or who newly share one; `left`: users who no longer share any), one-time
  key counts and unused fallback key types. Not scoped to rooms.
* `account_data` (MSC3959): global account data, and per-room account data of the
  extension's rooms.
* `receipts` (MSC3960) and `typing` (MSC3961): of the extension's rooms.
* `threads` (MSC4360; also read as `io.element.msc4360.threads`, and answered under
  the name asked for): threads of the joined rooms (all of them unless `lists` /
  `rooms` scope it to the extension's rooms) with events sent into
  them since `pos` (everything for a first request), latest first, at most `limit`
  (default and cap 100). Each update (`updates[room][root]`) has a `prev_batch`
  (`/relations` `from`, `dir=b`) when the thread had more than one new event, and the
  bundled root as `thread_root` when `include_roots` is set; without it, threads whose
  new events all came down this response's timelines are left out. A top-level
  `prev_batch` says more threads were updated than sent (the `/thread_updates`
  companion endpoint is not implemented). Events are checked exactly as timeline
  events are: ignored senders dropped, history visibility at each event.

"The extension's rooms" are the rooms of the lists it names and the subscribed rooms
it names (all of either by default), among this request's lists and subscriptions.
A room sent as `initial` gets its whole current data (all receipts, current typers,
all its account data); other rooms only what changed since `pos`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ranvier.core.room_tokens import RoomToken
from ranvier.core.sliding_sync import (
    ExtensionConfig,
    SlidingSyncRequest,
    extension_rooms,
)
from ranvier.core.streams import SyncToken
from ranvier.services.account_data import AccountDataService
from ranvier.services.receipts import ReceiptService
from ranvier.services.rooms.client_events import ClientEventSerializer
from ranvier.services.rooms.visibility import EventVisibility
from ranvier.services.sync.rooms import TypingSource
from ranvier.services.sync.service import KeyCounts
from ranvier.services.to_device import ToDeviceService
from ranvier.storage.stores.account_data import AccountDataSnapshot
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.storage.stores.events import EventStore
from ranvier.storage.stores.relations import RelationStore, ThreadUpdate
from ranvier.storage.stores.sync import MembershipRow, SyncStore

JsonDict = dict[str, Any]

THREADS = ("threads", "io.element.msc4360.threads")
THREADS_DEFAULT_LIMIT = 100
# How many thread events one response reads at most (more: a top-level prev_batch).
THREAD_EVENTS_CAP = 1000


@dataclass(frozen=True, slots=True)
class ThreadsSource:
    """What the `threads` extension reads: the rooms' read side."""

    events: EventStore
    relations: RelationStore
    visibility: EventVisibility
    serializer: ClientEventSerializer


@dataclass(frozen=True, slots=True)
class ExtensionContext:
    user_id: str
    device_id: str
    since: SyncToken | None
    now: SyncToken
    list_rooms: Mapping[str, list[str]]
    subscribed: Collection[str]
    # Rooms this response sends as `initial`.
    initial_rooms: Collection[str]
    memberships: Mapping[str, MembershipRow]
    # All the user's account data (as of `now`).
    account: AccountDataSnapshot
    # IDs of the timeline events this response sends, per room.
    timeline_ids: Mapping[str, Collection[str]] = field(default_factory=dict)


class ExtensionsBuilder:
    def __init__(
        self,
        *,
        store: SyncStore,
        to_device: ToDeviceService,
        keys: KeyCounts,
        account_data: AccountDataService,
        receipts: ReceiptService,
        typing: TypingSource,
        threads: ThreadsSource | None = None,
    ) -> None:
        self._store = store
        self._to_device = to_device
        self._keys = keys
        self._account_data = account_data
        self._receipts = receipts
        self._typing = typing
        self._threads = threads

    async def build(self, req: SlidingSyncRequest, ctx: ExtensionContext) -> JsonDict:
        out: JsonDict = {}
        if req.extension("to_device").enabled:
            out["to_device"] = await self._to_device_ext(req, ctx)
        if req.extension("e2ee").enabled:
            out["e2ee"] = await self._e2ee(ctx)
        for name, build in (
            ("account_data", self._account_data_ext),
            ("receipts", self._receipts_ext),
            ("typing", self._typing_ext),
        ):
            ext = req.extension(name)
            if ext.enabled:
                rooms = extension_rooms(ext, ctx.list_rooms, ctx.subscribed)
                out[name] = await build(ctx, rooms)
        for name in THREADS:
            ext = req.extension(name)
            if ext.enabled and self._threads is not None:
                # Unscoped, it covers every joined room (MSC4360: "the user's joined
                # rooms"), not only those of this response's windows.
                rooms = (
                    set(ctx.memberships)
                    if ext.lists is None and ext.rooms is None
                    else extension_rooms(ext, ctx.list_rooms, ctx.subscribed)
                )
                threads = await self._threads_ext(ctx, ext, self._threads, rooms)
                if threads:
                    out[name] = threads
        return out

    @staticmethod
    def has_news(extensions: JsonDict) -> bool:
        """Whether a long-poll should answer for these (key counts do not count)."""
        if extensions.get("to_device", {}).get("events"):
            return True
        lists = extensions.get("e2ee", {}).get("device_lists", {})
        if lists.get("changed") or lists.get("left"):
            return True
        account = extensions.get("account_data", {})
        if account.get("global") or account.get("rooms"):
            return True
        if any(extensions.get(n) for n in THREADS):
            return True
        return any(extensions.get(n, {}).get("rooms") for n in ("receipts", "typing"))

    async def _to_device_ext(
        self, req: SlidingSyncRequest, ctx: ExtensionContext
    ) -> JsonDict:
        raw = req.extension("to_device").since
        since = int(raw) if raw is not None and raw.isdigit() else 0
        # A `since` ahead of the stream (a client of another server's database) is
        # read as the current position.
        since = min(since, ctx.now.to_device)
        messages, next_pos = await self._to_device.get_messages_for_sync(
            ctx.user_id, ctx.device_id, since, ctx.now.to_device
        )
        return {"next_batch": str(next_pos), "events": messages}

    async def _e2ee(self, ctx: ExtensionContext) -> JsonDict:
        out: JsonDict = {
            "device_one_time_keys_count": await self._keys.get_one_time_key_counts(
                ctx.user_id, ctx.device_id
            ),
            "device_unused_fallback_key_types": (
                await self._keys.get_unused_fallback_key_types(
                    ctx.user_id, ctx.device_id
                )
            ),
        }
        if ctx.since is not None:
            changed, left = await self._device_lists(ctx, ctx.since)
            out["device_lists"] = {"changed": sorted(changed), "left": sorted(left)}
        else:
            out["device_lists"] = {"changed": [], "left": []}
        return out

    async def _device_lists(
        self, ctx: ExtensionContext, since: SyncToken
    ) -> tuple[set[str], set[str]]:
        user_id, now = ctx.user_id, ctx.now
        changed = await self._store.get_device_list_changes_for_cohabitants(
            user_id, since.device_lists, now.device_lists
        )
        if since.events >= now.events:
            return changed, set()
        mine = await self._store.get_membership_changes(
            user_id, since.events, now.events
        )
        newly_joined = {m.room_id for m in mine if m.membership == "join"}
        newly_left = {m.room_id for m in mine if m.membership in ("leave", "ban")}
        joined = {r for r, m in ctx.memberships.items() if m.membership == "join"}
        candidates_left: set[str] = set()
        for m in await self._store.get_others_membership_changes(
            joined | newly_left, user_id, since.events, now.events
        ):
            if m.membership == "join" and m.room_id in joined:
                changed.add(m.user_id)
            elif m.membership in ("leave", "ban"):
                candidates_left.add(m.user_id)
        changed |= await self._store.get_joined_members(newly_joined & joined)
        candidates_left |= await self._store.get_joined_members(newly_left - joined)
        candidates_left.discard(user_id)
        still = await self._store.get_users_sharing_rooms(user_id, candidates_left)
        left = candidates_left - still
        return changed - left, left

    async def _account_data_ext(
        self, ctx: ExtensionContext, rooms: set[str]
    ) -> JsonDict:
        if ctx.since is None:
            snapshot = await self._account_data.get_account_data_since(
                ctx.user_id, 0, ctx.now.account_data, initial=True
            )
        elif ctx.since.account_data < ctx.now.account_data:
            snapshot = await self._account_data.get_account_data_since(
                ctx.user_id, ctx.since.account_data, ctx.now.account_data
            )
        else:
            snapshot = AccountDataSnapshot()
        per_room: JsonDict = {}
        for room_id in sorted(rooms):
            entries = (
                ctx.account.room_data.get(room_id)
                if room_id in ctx.initial_rooms
                else snapshot.room_data.get(room_id)
            )
            if entries:
                per_room[room_id] = [
                    {"type": t, "content": c} for t, c in sorted(entries.items())
                ]
        return {
            "global": [
                {"type": t, "content": c}
                for t, c in sorted(snapshot.global_data.items())
            ],
            "rooms": per_room,
        }

    async def _receipts_ext(self, ctx: ExtensionContext, rooms: set[str]) -> JsonDict:
        joined = {r for r in rooms if _is_joined(ctx, r)}
        full = [r for r in joined if ctx.since is None or r in ctx.initial_rooms]
        events = await self._receipts.get_receipt_events(
            ctx.user_id, full, 0, ctx.now.receipts
        )
        if ctx.since is not None and ctx.since.receipts < ctx.now.receipts:
            rest = [r for r in joined if r not in ctx.initial_rooms]
            events.update(
                await self._receipts.get_receipt_events(
                    ctx.user_id, rest, ctx.since.receipts, ctx.now.receipts
                )
            )
        return {"rooms": events}

    async def _typing_ext(self, ctx: ExtensionContext, rooms: set[str]) -> JsonDict:
        joined = [r for r in sorted(rooms) if _is_joined(ctx, r)]
        if ctx.since is None:
            typers = {r: self._typing.get_typing_users(r) for r in joined}
        else:
            typers = self._typing.get_changed_rooms(
                [r for r in joined if r not in ctx.initial_rooms],
                ctx.since.typing,
                ctx.now.typing,
            )
            for r in joined:
                if r in ctx.initial_rooms:
                    typers[r] = self._typing.get_typing_users(r)
        return {
            "rooms": {
                r: {"type": "m.typing", "content": {"user_ids": users}}
                for r, users in typers.items()
                if users or (ctx.since is not None and r not in ctx.initial_rooms)
            }
        }

    async def _threads_ext(
        self,
        ctx: ExtensionContext,
        ext: ExtensionConfig,
        source: ThreadsSource,
        rooms: set[str],
    ) -> JsonDict:
        """The MSC4360 response; empty (left out) when no thread was updated."""
        limit = min(ext.limit or THREADS_DEFAULT_LIMIT, THREADS_DEFAULT_LIMIT)
        joined = sorted(r for r in rooms if _is_joined(ctx, r))
        after = ctx.since.events if ctx.since is not None else 0
        if not joined or after >= ctx.now.events:
            return {}
        updates = await source.relations.get_thread_updates(
            joined, after, ctx.now.events, THREAD_EVENTS_CAP
        )
        truncated = len(updates) >= THREAD_EVENTS_CAP
        events = await _load(source, [u.event_id for u in updates])
        visible = {
            e.event_id
            for e in await source.visibility.filter_events_for_user(
                ctx.user_id, events, is_peeking=False
            )
        }
        # Per thread, its visible new events, newest first (updates are ordered).
        per_thread: dict[tuple[str, str], list[ThreadUpdate]] = {}
        for u in updates:
            if u.event_id in visible:
                per_thread.setdefault((u.room_id, u.thread_id), []).append(u)
        roots = {
            e.event_id: e
            for e in await source.visibility.filter_events_for_user(
                ctx.user_id,
                await _load(source, [t for _, t in per_thread]),
                is_peeking=False,
            )
        }
        chosen: list[tuple[str, str, list[ThreadUpdate]]] = []
        for (room_id, thread_id), news in per_thread.items():
            if thread_id not in roots or roots[thread_id].event.room_id != room_id:
                continue
            if not ext.include_roots:
                sent = ctx.timeline_ids.get(room_id, ())
                if all(u.event_id in sent for u in news):
                    continue
            chosen.append((room_id, thread_id, news))
        more = truncated or len(chosen) > limit
        chosen = chosen[:limit]
        if not chosen:
            return {}
        serialized: dict[str, JsonDict] = {}
        if ext.include_roots:
            stored = [roots[t] for _, t, _ in chosen]
            serialized = dict(
                zip(
                    [s.event_id for s in stored],
                    await source.serializer.serialize(
                        stored, user_id=ctx.user_id, device_id=ctx.device_id
                    ),
                    strict=True,
                )
            )
        out: JsonDict = {}
        for room_id, thread_id, news in chosen:
            entry: JsonDict = {}
            if ext.include_roots:
                entry["thread_root"] = serialized[thread_id]
            if len(news) > 1:
                # `/relations` `from` is exclusive: it starts at the prior-to-latest.
                entry["prev_batch"] = RoomToken(news[0].stream_ordering).encode()
            out.setdefault(room_id, {})[thread_id] = entry
        body: JsonDict = {"updates": out}
        if more:
            body["prev_batch"] = RoomToken(chosen[-1][2][0].stream_ordering).encode()
        return body


async def _load(source: ThreadsSource, event_ids: list[str]) -> list[StoredEvent]:
    """The stored events of `event_ids`, in that order (unknown ones skipped)."""
    loaded = await source.events.get_events(event_ids)
    return [loaded[e] for e in event_ids if e in loaded]


def _is_joined(ctx: ExtensionContext, room_id: str) -> bool:
    m = ctx.memberships.get(room_id)
    return m is not None and m.membership == "join"
