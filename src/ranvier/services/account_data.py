"""Account data and room tags (spec: Client Config, Room Tagging).

Tags are stored as the `m.tag` room account data entry (`{"tags": {tag: {...}}}`), which
is exactly what sync delivers. Every write wakes the user's syncs (all their devices).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ranvier.core.errors import MatrixError, bad_json, not_found
from ranvier.core.streams import StreamKey
from ranvier.services.notifier import Notifier
from ranvier.storage.stores.account_data import AccountDataSnapshot, AccountDataStore

JsonDict = dict[str, Any]

# Server-managed types clients must not write directly (spec: "Servers MUST reject
# setting account data of these types through this API with 405 M_BAD_JSON").
SERVER_MANAGED_TYPES = frozenset({"m.fully_read", "m.push_rules"})
TAG_TYPE = "m.tag"
MAX_TAG_LENGTH = 255


# The current content of a server-computed global entry (`m.push_rules`) for a user.
DefaultProvider = Callable[[str], Awaitable[JsonDict]]
WriteListener = Callable[[str, "str | None", str], None]


class AccountDataService:
    def __init__(self, store: AccountDataStore, notifier: Notifier) -> None:
        self._store = store
        self._notifier = notifier
        self._providers: dict[str, DefaultProvider] = {}
        self._write_listeners: list[WriteListener] = []

    def add_write_listener(self, listener: WriteListener) -> None:
        """Called with (user_id, room_id, data_type) after each committed write (caches
        of what account data decides, e.g. the ignored users)."""
        self._write_listeners.append(listener)

    def register_provider(self, data_type: str, provider: DefaultProvider) -> None:
        """Serve global `data_type` from `provider`: on reads and initial syncs (the
        entry exists for every user, and reflects today's server defaults); writes
        through `set_server_account_data` still announce changes to incremental syncs."""
        self._providers[data_type] = provider

    def get_current_position(self) -> int:
        return self._store.get_current_position()

    async def set_account_data(
        self, user_id: str, room_id: str | None, data_type: str, content: JsonDict
    ) -> None:
        """Client writes (`PUT .../account_data/{type}`)."""
        if data_type in SERVER_MANAGED_TYPES:
            raise MatrixError(
                405, "M_BAD_JSON", f"Cannot set {data_type} through this API."
            )
        await self.set_server_account_data(user_id, room_id, data_type, content)

    async def set_server_account_data(
        self, user_id: str, room_id: str | None, data_type: str, content: JsonDict
    ) -> None:
        """Writes the server makes for the user (`m.fully_read` from read markers)."""
        position = await self._store.set_account_data(
            user_id, room_id, data_type, content
        )
        for listener in self._write_listeners:
            listener(user_id, room_id, data_type)
        self._notifier.notify(StreamKey.ACCOUNT_DATA, position, users=(user_id,))

    async def get_account_data(
        self, user_id: str, room_id: str | None, data_type: str
    ) -> JsonDict:
        provider = self._providers.get(data_type) if room_id is None else None
        if provider is not None:
            return await provider(user_id)
        content = await self._store.get_account_data(user_id, room_id, data_type)
        if content is None:
            raise not_found("Account data not found.")
        return content

    async def get_account_data_since(
        self, user_id: str, from_id: int, to_id: int, *, initial: bool = False
    ) -> AccountDataSnapshot:
        """Entries written in (from_id, to_id]; `initial` (an initial sync) adds the
        provided entries."""
        snapshot = await self._store.get_account_data_since(user_id, from_id, to_id)
        if initial:
            for data_type, provider in self._providers.items():
                snapshot.global_data[data_type] = await provider(user_id)
        return snapshot

    # -- tags ---------------------------------------------------------------------------------
    async def get_tags(self, user_id: str, room_id: str) -> JsonDict:
        content = await self._store.get_account_data(user_id, room_id, TAG_TYPE)
        tags = (content or {}).get("tags")
        return tags if isinstance(tags, dict) else {}

    async def set_tag(
        self, user_id: str, room_id: str, tag: str, content: JsonDict
    ) -> None:
        if len(tag) > MAX_TAG_LENGTH:
            raise bad_json("Tag names are at most 255 characters.")
        order = content.get("order")
        if order is not None and (
            isinstance(order, bool) or not isinstance(order, int | float)
        ):
            raise bad_json("'order' must be a number.")

        def add(current: JsonDict) -> JsonDict | None:
            tags = current.get("tags")
            tags = dict(tags) if isinstance(tags, dict) else {}
            if tags.get(tag) == content:
                return None
            tags[tag] = content
            return {"tags": tags}

        await self._update_tags(user_id, room_id, add)

    async def delete_tag(self, user_id: str, room_id: str, tag: str) -> None:
        def remove(current: JsonDict) -> JsonDict | None:
            tags = current.get("tags")
            if not isinstance(tags, dict) or tag not in tags:
                return None
            return {"tags": {k: v for k, v in tags.items() if k != tag}}

        await self._update_tags(user_id, room_id, remove)

    async def _update_tags(self, user_id: str, room_id: str, update: Any) -> None:
        position = await self._store.update_account_data(
            user_id, room_id, TAG_TYPE, update
        )
        if position is not None:
            self._notifier.notify(StreamKey.ACCOUNT_DATA, position, users=(user_id,))
