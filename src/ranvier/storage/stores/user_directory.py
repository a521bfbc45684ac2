"""Who the user directory may show a requester: joined members of the rooms the
requester is joined to, and of public rooms (join rule `public` or history
`world_readable`, Synapse's `search_all_users: false`), with their member-event profile.

Read at search time from current state (no table of its own): memberships and profile
changes are already reflected there, since a profile change rewrites member events.

A public room counts only while a local user is joined to it: once the last one leaves,
this server hears nothing more of it (its state here goes stale: a later change of its
join rule would never arrive), so, as Synapse does, its members drop out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ranvier.core.json import decode_json
from ranvier.storage.database import Database
from ranvier.storage.txn import Txn


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    user_id: str
    display_name: str | None
    avatar_url: str | None


class UserDirectoryStore:
    def __init__(self, db: Database, server_name: str) -> None:
        self._db = db
        self._local_pattern = "%:" + _escape_like(server_name)

    async def get_visible_users(self, requester: str) -> list[DirectoryEntry]:
        """Every user the requester may find, once each, sorted by user ID."""
        return await self._db.run_read_txn(
            "get_visible_users",
            _get_visible_users_txn,
            requester,
            self._local_pattern,
        )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _public_room_ids_txn(txn: Txn, local_pattern: str) -> list[str]:
    txn.execute(
        "SELECT c.room_id, c.type, e.json FROM current_state_events c"
        " JOIN events e ON e.event_id = c.event_id"
        " WHERE c.type IN ('m.room.join_rules', 'm.room.history_visibility')"
        " AND c.state_key = ''"
        " AND EXISTS (SELECT 1 FROM current_memberships l"
        " WHERE l.room_id = c.room_id AND l.membership = 'join'"
        " AND l.user_id LIKE ? ESCAPE '\\')",
        (local_pattern,),
    )
    public: set[str] = set()
    for room_id, etype, raw in txn.fetchall():
        content = _content(raw)
        if (etype == "m.room.join_rules" and content.get("join_rule") == "public") or (
            etype == "m.room.history_visibility"
            and content.get("history_visibility") == "world_readable"
        ):
            public.add(str(room_id))
    return sorted(public)


def _get_visible_users_txn(
    txn: Txn, requester: str, local_pattern: str
) -> list[DirectoryEntry]:
    txn.execute(
        "SELECT room_id FROM current_memberships WHERE user_id = ? AND membership = ?",
        (requester, "join"),
    )
    room_ids = {str(r[0]) for r in txn.fetchall()}
    room_ids.update(_public_room_ids_txn(txn, local_pattern))
    if not room_ids:
        return []
    cond, params = txn.in_list("m.room_id", sorted(room_ids))
    txn.execute(
        "SELECT m.user_id, e.json FROM current_memberships m"
        " JOIN events e ON e.event_id = m.event_id"
        f" WHERE m.membership = ? AND {cond} ORDER BY m.user_id, m.room_id",
        ["join", *params],
    )
    entries: dict[str, DirectoryEntry] = {}
    for user_id, raw in txn.fetchall():
        uid = str(user_id)
        if uid in entries:
            continue
        content = _content(raw)
        entries[uid] = DirectoryEntry(
            user_id=uid,
            display_name=_opt_str(content.get("displayname")),
            avatar_url=_opt_str(content.get("avatar_url")),
        )
    return list(entries.values())


def _content(raw: Any) -> dict[str, Any]:
    pdu = decode_json(str(raw))
    content = pdu.get("content") if isinstance(pdu, dict) else None
    return content if isinstance(content, dict) else {}


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
