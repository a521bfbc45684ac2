"""Media administration (Synapse admin API).

    GET    /_synapse/admin/v1/media/{serverName}/{mediaId}
    DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}          local media only
    POST   /_synapse/admin/v1/media/delete?before_ts=&size_gt=&keep_profiles=
    POST   /_synapse/admin/v1/media/{serverName}/delete              (the same)
    POST   /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}
    POST   /_synapse/admin/v1/media/unquarantine/{serverName}/{mediaId}
    POST   /_synapse/admin/v1/purge_media_cache?before_ts=
    GET    /_synapse/admin/v1/users/{userId}/media                   (DELETE: all of it)
    GET    /_synapse/admin/v1/statistics/users/media

Quarantine applies to local media here (remote copies: not yet). Files are
content-addressed: a file goes only when no row refers to its hash any more.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from ranvier.api.admin.users import AdminCheck, AdminGate, direction, page_params
from ranvier.api.http import Endpoint, MatrixRequest
from ranvier.core.errors import MatrixError, missing_param, not_found
from ranvier.storage.stores.admin_media import UserMediaStats
from ranvier.storage.stores.media import LocalMedia, RemoteMedia

V1: Final = "/_synapse/admin/v1"


class MediaAdminOps(Protocol):
    async def get_local_media(self, media_id: str) -> LocalMedia | None: ...

    async def get_remote_media(
        self, origin: str, media_id: str
    ) -> RemoteMedia | None: ...

    async def set_local_media_quarantined(self, media_id: str, value: bool) -> bool: ...

    async def get_user_media(
        self, user_id: str, start: int, limit: int, forwards: bool
    ) -> tuple[list[LocalMedia], int]: ...

    async def get_user_media_stats(
        self, start: int, limit: int, forwards: bool
    ) -> tuple[list[UserMediaStats], int]: ...

    async def delete_local_media(self, media_ids: list[str]) -> None:
        """Rows and, when unreferenced, files."""
        ...

    async def get_old_media_ids(
        self, before_ts: int, size_gt: int, keep_profiles: bool
    ) -> list[str]: ...

    async def purge_remote_cache(self, before_ts: int) -> int: ...

    async def get_displayname(self, user_id: str) -> str | None: ...


def local_media_json(m: LocalMedia, server_name: str) -> dict[str, Any]:
    return {
        "media_origin": server_name,
        "media_id": m.media_id,
        "user_id": m.user_id,
        "media_type": m.content_type,
        "media_length": m.size,
        "upload_name": m.upload_name,
        "created_ts": m.created_ts,
        "last_access_ts": m.upload_ts,
        "filesystem_id": m.sha256,
        "sha256": m.sha256,
        "url_cache": m.url_cache,
        "quarantined_by": "admin" if m.quarantined else None,
        "safe_from_quarantine": False,
        "authenticated": True,
    }


def remote_media_json(m: RemoteMedia) -> dict[str, Any]:
    return {
        "media_origin": m.origin,
        "media_id": m.media_id,
        "user_id": None,
        "media_type": m.content_type,
        "media_length": m.size,
        "upload_name": m.upload_name,
        "created_ts": m.created_ts,
        "last_access_ts": m.last_access_ts,
        "filesystem_id": m.sha256,
        "sha256": m.sha256,
        "url_cache": None,
        "quarantined_by": "admin" if m.quarantined else None,
        "safe_from_quarantine": False,
        "authenticated": True,
    }


class MediaAdminResource:
    def __init__(
        self, admins: AdminCheck, ops: MediaAdminOps, server_name: str
    ) -> None:
        self._gate = AdminGate(admins)
        self._ops = ops
        self._server_name = server_name

    async def get_media(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        origin, media_id = req.path_param("serverName"), req.path_param("mediaId")
        if origin == self._server_name:
            local = await self._ops.get_local_media(media_id)
            if local is not None:
                return {"media_info": local_media_json(local, origin)}
        else:
            remote = await self._ops.get_remote_media(origin, media_id)
            if remote is not None:
                return {"media_info": remote_media_json(remote)}
        raise not_found("Unknown media")

    async def _quarantine(self, req: MatrixRequest, value: bool) -> dict[str, Any]:
        await self._gate.require_admin(req)
        origin, media_id = req.path_param("serverName"), req.path_param("mediaId")
        if origin != self._server_name:
            raise MatrixError(
                400, "M_UNKNOWN", "Only local media can be quarantined here"
            )
        if not await self._ops.set_local_media_quarantined(media_id, value):
            raise not_found("Unknown media")
        return {}

    async def quarantine(self, req: MatrixRequest) -> dict[str, Any]:
        return await self._quarantine(req, True)

    async def unquarantine(self, req: MatrixRequest) -> dict[str, Any]:
        return await self._quarantine(req, False)

    async def delete_media(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        origin, media_id = req.path_param("serverName"), req.path_param("mediaId")
        if origin != self._server_name:
            raise MatrixError(400, "M_UNKNOWN", "Can only delete local media")
        if await self._ops.get_local_media(media_id) is None:
            raise not_found("Unknown media")
        await self._ops.delete_local_media([media_id])
        return {"deleted_media": [media_id], "total": 1}

    def _before_ts(self, req: MatrixRequest) -> int:
        before = req.query_int("before_ts", minimum=0)
        if before is None:
            raise missing_param("Missing required integer query parameter before_ts")
        return before

    async def delete_old_media(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        origin = req.raw.match_info.get("serverName")
        if origin is not None and origin != self._server_name:
            raise MatrixError(400, "M_UNKNOWN", "Can only delete local media")
        before = self._before_ts(req)
        size_gt = req.query_int("size_gt", 0, minimum=0)
        assert size_gt is not None
        ids = await self._ops.get_old_media_ids(
            before, size_gt, req.query_bool("keep_profiles", True)
        )
        await self._ops.delete_local_media(ids)
        return {"deleted_media": ids, "total": len(ids)}

    async def purge_media_cache(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        return {"deleted": await self._ops.purge_remote_cache(self._before_ts(req))}

    def _local_user(self, user_id: str) -> None:
        if user_id.partition(":")[2] != self._server_name:
            raise MatrixError(400, "M_INVALID_PARAM", "Can only look up local users")

    async def user_media(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        user_id = req.path_param("userId")
        self._local_user(user_id)
        start, limit = page_params(req)
        rows, total = await self._ops.get_user_media(
            user_id, start, limit, direction(req)
        )
        media = []
        for m in rows:
            entry = local_media_json(m, self._server_name)
            del entry["user_id"], entry["media_origin"]
            media.append(entry)
        out: dict[str, Any] = {"media": media, "total": total}
        if start + len(rows) < total:
            out["next_token"] = start + len(rows)
        return out

    async def delete_user_media(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        user_id = req.path_param("userId")
        self._local_user(user_id)
        start, limit = page_params(req)
        rows, _ = await self._ops.get_user_media(user_id, start, limit, direction(req))
        ids = [m.media_id for m in rows]
        await self._ops.delete_local_media(ids)
        return {"deleted_media": ids, "total": len(ids)}

    async def media_stats(self, req: MatrixRequest) -> dict[str, Any]:
        await self._gate.require_admin(req)
        start, limit = page_params(req)
        rows, total = await self._ops.get_user_media_stats(start, limit, direction(req))
        users = [
            {
                "user_id": r.user_id,
                "displayname": await self._ops.get_displayname(r.user_id),
                "media_count": r.media_count,
                "media_length": r.media_length,
            }
            for r in rows
        ]
        out: dict[str, Any] = {"users": users, "total": total}
        if start + len(rows) < total:
            out["next_token"] = start + len(rows)
        return out

    def endpoints(self) -> list[Endpoint]:
        one = (f"{V1}/media/{{serverName}}/{{mediaId}}",)
        user = (f"{V1}/users/{{userId}}/media",)
        return [
            Endpoint(
                "POST",
                (f"{V1}/media/delete", f"{V1}/media/{{serverName}}/delete"),
                self.delete_old_media,
            ),
            Endpoint(
                "POST",
                (f"{V1}/media/quarantine/{{serverName}}/{{mediaId}}",),
                self.quarantine,
            ),
            Endpoint(
                "POST",
                (f"{V1}/media/unquarantine/{{serverName}}/{{mediaId}}",),
                self.unquarantine,
            ),
            Endpoint("GET", one, self.get_media),
            Endpoint("DELETE", one, self.delete_media),
            Endpoint("POST", (f"{V1}/purge_media_cache",), self.purge_media_cache),
            Endpoint("GET", user, self.user_media),
            Endpoint("DELETE", user, self.delete_user_media),
            Endpoint("GET", (f"{V1}/statistics/users/media",), self.media_stats),
        ]
