"""Questions a local client asks about another server's data (spec: S-S API > Querying
for information; Public Room Directory):

* a remote room alias -> room ID and servers (`GET /query/directory`);
* a remote user's profile (`GET /query/profile`);
* another server's public room list (`GET`/`POST /publicRooms`), for the client's
  `server=` parameter;
* a room this server has no copy of, in a space hierarchy (`GET /hierarchy/{roomId}`),
  asked of the `via` servers in turn until one answers.

Answers are checked for shape before they reach the client; a remote 404 becomes ours,
anything else a 502 (the other server failed, not the client).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

from ranvier.core.errors import MatrixError
from ranvier.core.ids import InvalidIdentifierError, domain_of, parse_room_alias
from ranvier.federation.client import QueryArgs, federation_path
from ranvier.federation.errors import FederationError

logger = logging.getLogger(__name__)

__all__ = ["RemoteQueries"]

JsonDict = dict[str, Any]
QUERY_TIMEOUT_SECONDS: Final = 20.0


class QueryRequests(Protocol):
    async def get_json(
        self, destination: str, path: str, *, args: QueryArgs | None = None, **kw: Any
    ) -> Any: ...

    async def post_json(
        self, destination: str, path: str, content: Any, **kw: Any
    ) -> Any: ...


def _client_error(e: FederationError, what: str) -> MatrixError:
    """A remote's 4xx passes through in its own words; anything else (unreachable,
    backing off, 5xx, a reply we refused) is a plain 502 naming the server - how it
    failed is logged, not answered (no addresses, exception names or retry times)."""
    if e.status == 404:
        return MatrixError(404, e.errcode or "M_NOT_FOUND", f"{what} not found.")
    if e.status is not None and 400 <= e.status < 500 and e.errcode:
        return MatrixError(
            e.status, e.errcode, e.remote_message or f"{e.destination} refused."
        )
    logger.info("query to %s failed: %s", e.destination, e)
    return MatrixError(
        502, "M_UNKNOWN", f"Could not get an answer from {e.destination}."
    )


class RemoteQueries:
    def __init__(self, server_name: str, client: QueryRequests) -> None:
        self._server_name = server_name
        self._client = client

    async def _get(
        self, destination: str, path: str, args: QueryArgs, what: str
    ) -> Any:
        try:
            return await self._client.get_json(
                destination, path, args=args, request_timeout=QUERY_TIMEOUT_SECONDS
            )
        except FederationError as e:
            raise _client_error(e, what) from None

    async def query_directory(self, alias: str) -> tuple[str, list[str]]:
        """(room_id, servers) for an alias on another server."""
        try:
            server = parse_room_alias(alias).domain
        except InvalidIdentifierError as e:
            raise MatrixError(400, "M_INVALID_PARAM", str(e)) from None
        doc = await self._get(
            server,
            "/_matrix/federation/v1/query/directory",
            {"room_alias": alias},
            f"Room alias {alias}",
        )
        room_id = doc.get("room_id") if isinstance(doc, dict) else None
        servers = doc.get("servers") if isinstance(doc, dict) else None
        if not isinstance(room_id, str) or not room_id.startswith("!"):
            raise MatrixError(502, "M_UNKNOWN", f"{server} answered without a room ID.")
        listed = (
            [s for s in servers if isinstance(s, str)]
            if isinstance(servers, list)
            else []
        )
        # The alias's own server knows the room: try it first.
        return room_id, list(dict.fromkeys([server, *listed]))

    async def query_profile(self, user_id: str, field: str | None = None) -> JsonDict:
        try:
            server = domain_of(user_id)
        except InvalidIdentifierError as e:
            raise MatrixError(400, "M_INVALID_PARAM", str(e)) from None
        args: dict[str, str] = {"user_id": user_id}
        if field is not None:
            args["field"] = field
        doc = await self._get(
            server, "/_matrix/federation/v1/query/profile", args, "Profile"
        )
        if not isinstance(doc, dict):
            raise MatrixError(502, "M_UNKNOWN", f"{server} sent a malformed profile.")
        wanted = (field,) if field is not None else ("displayname", "avatar_url")
        return {k: doc[k] for k in wanted if isinstance(doc.get(k), str)}

    async def get_public_rooms(
        self,
        server: str,
        *,
        limit: int | None,
        since: str | None,
        search_filter: Mapping[str, Any] | None = None,
        include_all_networks: bool = False,
        third_party_instance_id: str | None = None,
    ) -> JsonDict:
        """Another server's public rooms (POST when there is a filter, as Synapse)."""
        path = "/_matrix/federation/v1/publicRooms"
        try:
            if search_filter:
                body: JsonDict = {"filter": dict(search_filter)}
                if limit is not None:
                    body["limit"] = limit
                if since is not None:
                    body["since"] = since
                if include_all_networks:
                    body["include_all_networks"] = True
                if third_party_instance_id is not None:
                    body["third_party_instance_id"] = third_party_instance_id
                doc = await self._client.post_json(
                    server, path, body, request_timeout=QUERY_TIMEOUT_SECONDS
                )
            else:
                args: dict[str, str | int] = {}
                if limit is not None:
                    args["limit"] = limit
                if since is not None:
                    args["since"] = since
                if include_all_networks:
                    args["include_all_networks"] = "true"
                if third_party_instance_id is not None:
                    args["third_party_instance_id"] = third_party_instance_id
                doc = await self._client.get_json(
                    server, path, args=args, request_timeout=QUERY_TIMEOUT_SECONDS
                )
        except FederationError as e:
            raise _client_error(e, "Room directory") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("chunk"), list):
            raise MatrixError(502, "M_UNKNOWN", f"{server} sent a malformed room list.")
        return _clean_room_list(doc)

    async def get_remote_hierarchy(
        self, room_id: str, via: Sequence[str], *, suggested_only: bool
    ) -> JsonDict | None:
        """The first answer of the `via` servers (never ourselves), or None."""
        path = federation_path("/_matrix/federation/v1/hierarchy/{}", room_id)
        args = {"suggested_only": "true" if suggested_only else "false"}
        for server in dict.fromkeys(via):
            if server == self._server_name:
                continue
            try:
                doc = await self._client.get_json(
                    server, path, args=args, request_timeout=QUERY_TIMEOUT_SECONDS
                )
            except FederationError as e:
                logger.info("hierarchy of %s from %s: %s", room_id, server, e.message)
                continue
            if isinstance(doc, dict) and isinstance(doc.get("room"), dict):
                return doc
        return None


def _clean_room_list(doc: Mapping[str, Any]) -> JsonDict:
    out: JsonDict = {"chunk": [r for r in doc["chunk"] if isinstance(r, dict)]}
    for key in ("next_batch", "prev_batch"):
        if isinstance(doc.get(key), str):
            out[key] = doc[key]
    if isinstance(doc.get("total_room_count_estimate"), int):
        out["total_room_count_estimate"] = doc["total_room_count_estimate"]
    return out
