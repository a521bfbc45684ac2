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

"The extension's rooms" are the rooms of the lists it names and the subscribed rooms
it names (all of either by default), among this request's lists and subscriptions.
A room sent as `initial` gets its whole current data (all receipts, current typers,
all its account data); other rooms only what changed since `pos`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ranvier.core.sliding_sync import SlidingSyncRequest, extension_rooms
from ranvier.core.streams import SyncToken
from ranvier.services.account_data import AccountDataService
from ranvier.services.receipts import ReceiptService
from ranvier.services.sync.rooms import TypingSource
from ranvier.services.sync.service import KeyCounts
from ranvier.services.to_device import ToDeviceService
from ranvier.storage.stores.account_data import AccountDataSnapshot
from ranvier.storage.stores.sync import MembershipRow, SyncStore

JsonDict = dict[str, Any]


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
    ) -> None:
        self._store = store
        self._to_device = to_device
        self._keys = keys
        self._account_data = account_data
        self._receipts = receipts
        self._typing = typing

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


def _is_joined(ctx: ExtensionContext, room_id: str) -> bool:
    m = ctx.memberships.get(room_id)
    return m is not None and m.membership == "join"
