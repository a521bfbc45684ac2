"""Room administration (Synapse admin API).

    GET    /_synapse/admin/v1/rooms                   from, limit, order_by, dir, search_term
    GET    /_synapse/admin/v1/rooms/{roomId}
    GET    /_synapse/admin/v1/rooms/{roomId}/members
    GET    /_synapse/admin/v1/rooms/{roomId}/state
    GET    /_synapse/admin/v1/rooms/{roomId}/messages      from, to, dir (f), limit
    GET    /_synapse/admin/v1/rooms/{roomId}/block    (PUT {"block": bool})
    GET    /_synapse/admin/v1/rooms/{roomId}/forward_extremities
    POST   /_synapse/admin/v1/rooms/{roomIdOrAlias}/make_room_admin  {"user_id"}
    DELETE /_synapse/admin/v2/rooms/{roomId}          asynchronous: {"delete_id"}
    GET    /_synapse/admin/v2/rooms/{roomId}/delete_status
    GET    /_synapse/admin/v2/rooms/delete_status/{deleteId}

The room list is Synapse's shape: `rooms`, `offset`, `total_rooms`, `next_batch`,
`prev_batch`. A v2 delete makes every local member leave, removes the room from the
directory and its local aliases, and blocks it when asked; purging the room's events
from the database is not done yet (`purge` is accepted and reported as not done).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from ranvier.api.admin.users import AdminCheck, AdminGate, page_params
from ranvier.api.http import Endpoint, MatrixRequest
from ranvier.core.errors import MatrixError, invalid_param, missing_param, not_found
from ranvier.storage.stores.admin_rooms import RoomSummaryRow

V1: Final = "/_synapse/admin/v1"
V2: Final = "/_synapse/admin/v2"


class RoomAdminReads(Protocol):
    async def get_room_summaries(self) -> list[RoomSummaryRow]: ...

    async def get_room_summary(self, room_id: str) -> RoomSummaryRow | None: ...

    async def get_joined_members(self, room_id: str) -> list[str]: ...

    async def get_block(self, room_id: str) -> str | None: ...

    async def set_block(self, room_id: str, user_id: str, block: bool) -> None: ...

    async def get_forward_extremities(
        self, room_id: str
    ) -> list[tuple[str, int, int]]: ...


class RoomAdminOps(Protocol):
    async def get_state_json(self, room_id: str) -> list[dict[str, Any]]: ...

    async def leave(self, user_id: str, room_id: str, reason: str | None) -> None: ...

    async def remove_from_directory(self, room_id: str) -> list[str]:
        """Unpublish the room and delete its local aliases; returns the aliases."""
        ...

    async def resolve_room(self, room_id_or_alias: str) -> str: ...

    async def get_messages(
        self,
        room_id: str,
        from_token: str | None,
        to_token: str | None,
        forwards: bool,
        limit: int,
    ) -> dict[str, Any]: ...

    async def make_room_admin(self, room_id: str, user_id: str) -> None:
        """Give `user_id` the power of the room's most powerful local member (through
        that member), inviting them first when they are not joined."""
        ...


Spawn = Callable[[str, Coroutine[Any, Any, Any]], object]


def room_json(r: RoomSummaryRow) -> dict[str, Any]:
    s = r.state
    create = s.get("m.room.create", {})
    return {
        "room_id": r.room_id,
        "name": s.get("m.room.name", {}).get("name"),
        "canonical_alias": s.get("m.room.canonical_alias", {}).get("alias"),
        "joined_members": r.joined_members,
        "joined_local_members": r.joined_local_members,
        "version": r.room_version,
        "creator": r.creator,
        "encryption": s.get("m.room.encryption", {}).get("algorithm"),
        "federatable": create.get("m.federate", True) is not False,
        "public": r.is_public,
        "join_rules": s.get("m.room.join_rules", {}).get("join_rule"),
        "guest_access": s.get("m.room.guest_access", {}).get("guest_access"),
        "history_visibility": s.get("m.room.history_visibility", {}).get(
            "history_visibility"
        ),
        "state_events": r.state_events,
        "room_type": create.get("type"),
    }


ORDER_KEYS: Final = frozenset(
    {
        "name", "canonical_alias", "joined_members", "joined_local_members",
        "version", "creator", "encryption", "federatable", "public", "join_rules",
        "guest_access", "history_visibility", "state_events",
    }
)  # fmt: skip


def _sort_key(order_by: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    def key(room: dict[str, Any]) -> tuple[Any, ...]:
        value = room[order_by]
        # None sorts first; values of mixed types never meet (one column).
        return (value is not None, value if value is not None else 0, room["room_id"])

    return key


@dataclass
class DeleteStatus:
    delete_id: str
    room_id: str
    status: str = "shutting_down"
    error: str | None = None
    kicked_users: list[str] = field(default_factory=list)
    failed_to_kick_users: list[str] = field(default_factory=list)
    local_aliases: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "delete_id": self.delete_id,
            "status": self.status,
            "shutdown_room": {
                "kicked_users": self.kicked_users,
                "failed_to_kick_users": self.failed_to_kick_users,
                "local_aliases": self.local_aliases,
                "new_room_id": None,
            },
        }
        if self.error is not None:
            out["error"] = self.error
        return out


class RoomsAdminResource:
    def __init__(
        self,
        admins: AdminCheck,
        reads: RoomAdminReads,
        ops: RoomAdminOps,
        spawn: Spawn,
        server_name: str,
    ) -> None:
        self._gate = AdminGate(admins)
        self._reads = reads
        self._ops = ops
        self._spawn = spawn
        self._server_name = server_name
        # Delete statuses live in memory, as Synapse's do not survive a restart either.
        self._deletes: dict[str, DeleteStatus] = {}

    async def _room(self, room_id: str) -> RoomSummaryRow:
        row = await self._reads.get_room_summary(room_id)
        if row is None:
            raise not_found("Room not found")
        return row

    async def list_rooms(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        start, limit = page_params(req)
        order_by = req.query.get("order_by", "name")
        # Synapse's deprecated spellings.
        order_by = {"alphabetical": "name", "size": "joined_members"}.get(
            order_by, order_by
        )
        if order_by not in ORDER_KEYS:
            raise invalid_param("Unknown value for order_by")
        d = req.query.get("dir", "f")
        if d not in ("f", "b"):
            raise invalid_param("Query parameter 'dir' must be one of ['b', 'f']")
        rooms = [room_json(r) for r in await self._reads.get_room_summaries()]
        term = req.query.get("search_term")
        if term is not None:
            needle = term.lower()
            rooms = [
                r
                for r in rooms
                if any(
                    needle in (r[k] or "").lower()
                    for k in ("name", "canonical_alias", "room_id")
                )
            ]
        rooms.sort(key=_sort_key(order_by), reverse=d == "b")
        page = rooms[start : start + limit]
        out: dict[str, Any] = {
            "rooms": page,
            "offset": start,
            "total_rooms": len(rooms),
        }
        if start + len(page) < len(rooms):
            out["next_batch"] = start + len(page)
        if start > 0:
            out["prev_batch"] = max(0, start - limit)
        return out

    async def get_room(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        row = await self._room(req.path_param("roomId"))
        out = room_json(row)
        out["topic"] = row.state.get("m.room.topic", {}).get("topic")
        out["avatar"] = row.state.get("m.room.avatar", {}).get("url")
        out["forgotten"] = False
        return out

    async def get_members(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        room_id = req.path_param("roomId")
        await self._room(room_id)
        members = await self._reads.get_joined_members(room_id)
        return {"members": members, "total": len(members)}

    async def get_state(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        room_id = req.path_param("roomId")
        await self._room(room_id)
        return {"state": await self._ops.get_state_json(room_id)}

    async def get_messages(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        room_id = req.path_param("roomId")
        await self._room(room_id)
        limit = req.query_int("limit", 10, minimum=0, maximum=1000)
        assert limit is not None
        d = req.query.get("dir", "f")
        if d not in ("f", "b"):
            raise invalid_param("Query parameter 'dir' must be one of ['b', 'f']")
        return await self._ops.get_messages(
            room_id, req.query.get("from"), req.query.get("to"), d == "f", limit
        )

    async def get_block(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        blocker = await self._reads.get_block(req.path_param("roomId"))
        if blocker is None:
            return {"block": False}
        return {"block": True, "user_id": blocker}

    async def put_block(self, req: MatrixRequest) -> dict[str, Any]:
        me = await self._gate.require_admin(req)
        room_id = req.path_param("roomId")
        if not room_id.startswith("!"):
            raise invalid_param(f"{room_id} is not a legal room ID")
        body = await req.json()
        if "block" not in body:
            raise missing_param("Missing 'block'")
        block = body.get_bool("block")
        await self._reads.set_block(room_id, me, block)
        return {"block": block}

    async def forward_extremities(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        room_id = req.path_param("roomId")
        await self._room(room_id)
        rows = await self._reads.get_forward_extremities(room_id)
        return {
            "count": len(rows),
            "results": [
                {
                    "event_id": event_id,
                    "state_group": None,
                    "depth": depth,
                    "received_ts": received,
                }
                for event_id, depth, received in rows
            ],
        }

    async def make_room_admin(self, req: MatrixRequest) -> dict[str, Any]:
        me = await self._gate.require_admin(req)
        room_id = await self._ops.resolve_room(req.path_param("roomId"))
        await self._room(room_id)
        body = await req.json()
        user_id = body.get_str("user_id") or me
        if user_id.partition(":")[2] != self._server_name:
            raise invalid_param("User must be local to make them room admin")
        await self._ops.make_room_admin(room_id, user_id)
        return {}

    async def delete_room(self, req: MatrixRequest) -> dict[str, Any]:
        me = await self._gate.require_admin(req)
        room_id = req.path_param("roomId")
        if not room_id.startswith("!"):
            raise invalid_param(f"{room_id} is not a legal room ID")
        body = await req.json()
        if body.get_str("new_room_user_id") is not None:
            raise MatrixError(
                400, "M_UNKNOWN", "new_room_user_id is not supported by this server"
            )
        block = body.get_bool("block")
        body.get_bool("purge", True)
        body.get_bool("force_purge")
        message = body.get_str("message")
        if any(
            s.room_id == room_id and s.status in ("shutting_down", "purging")
            for s in self._deletes.values()
        ):
            raise MatrixError(
                400, "M_UNKNOWN", f"History purge already in progress for {room_id}"
            )
        if not block:
            await self._room(room_id)
        status = DeleteStatus(secrets.token_urlsafe(12), room_id)
        self._deletes[status.delete_id] = status
        self._spawn(
            f"admin-delete-room-{room_id}", self._shutdown(status, me, block, message)
        )
        return {"delete_id": status.delete_id}

    async def _shutdown(
        self, status: DeleteStatus, admin: str, block: bool, message: str | None
    ) -> None:
        room_id = status.room_id
        try:
            if block:
                await self._reads.set_block(room_id, admin, True)
            suffix = ":" + self._server_name
            for user_id in await self._reads.get_joined_members(room_id):
                if not user_id.endswith(suffix):
                    continue
                try:
                    await self._ops.leave(user_id, room_id, message)
                except MatrixError:
                    status.failed_to_kick_users.append(user_id)
                else:
                    status.kicked_users.append(user_id)
            status.local_aliases = await self._ops.remove_from_directory(room_id)
            status.status = "complete"
        except Exception as exc:
            status.status = "failed"
            status.error = str(exc) or type(exc).__name__
            raise

    async def room_delete_status(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        room_id = req.path_param("roomId")
        results = [s.to_json() for s in self._deletes.values() if s.room_id == room_id]
        if not results:
            raise not_found(f"No delete task for room_id '{room_id}' found")
        return {"results": results}

    async def delete_status(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        status = self._deletes.get(req.path_param("deleteId"))
        if status is None:
            raise not_found("delete id not found")
        out = status.to_json()
        del out["delete_id"]
        return out

    def endpoints(self) -> list[Endpoint]:
        room = f"{V1}/rooms/{{roomId}}"
        return [
            Endpoint("GET", (f"{V1}/rooms",), self.list_rooms),
            Endpoint("GET", (room,), self.get_room),
            Endpoint("GET", (f"{room}/members",), self.get_members),
            Endpoint("GET", (f"{room}/state",), self.get_state),
            Endpoint("GET", (f"{room}/messages",), self.get_messages),
            Endpoint("GET", (f"{room}/block",), self.get_block),
            Endpoint("PUT", (f"{room}/block",), self.put_block),
            Endpoint("GET", (f"{room}/forward_extremities",), self.forward_extremities),
            Endpoint("POST", (f"{room}/make_room_admin",), self.make_room_admin),
            Endpoint("DELETE", (f"{V2}/rooms/{{roomId}}",), self.delete_room),
            Endpoint(
                "GET",
                (f"{V2}/rooms/{{roomId}}/delete_status",),
                self.room_delete_status,
            ),
            Endpoint(
                "GET", (f"{V2}/rooms/delete_status/{{deleteId}}",), self.delete_status
            ),
        ]
