"""The notary API: other servers' keys, countersigned by us.

    GET  /_matrix/key/v2/query/{serverName}[/{keyId}]   (the keyId form is pre-v1.6)
    POST /_matrix/key/v2/query

Spec: Server-Server API > Retrieving server keys > Querying Keys Through Another Server.
Each returned document is one the server signed itself (fetched directly from it, or
our own), with our signature added. Documents are refreshed when they would not be
valid until `minimum_valid_until_ts` (default: now); a server that cannot be reached
gets its last known documents, or none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any, Final, Protocol

from ranvier.api.http import AuthMode, Endpoint, JsonBody, MatrixRequest
from ranvier.core.crypto.keys import SigningKey
from ranvier.core.crypto.signing import sign_json
from ranvier.core.errors import bad_json, invalid_param
from ranvier.core.ids import is_valid_server_name
from ranvier.util.clock import Clock

JsonDict = dict[str, Any]

# Bounds the work one unauthenticated request can cause.
MAX_SERVERS_PER_QUERY: Final = 100


class NotaryKeySource(Protocol):
    async def get_key_documents(
        self, server_name: str, key_ids: Collection[str], minimum_valid_until_ts: int
    ) -> list[JsonDict]: ...


class NotarySigner(Protocol):
    @property
    def server_name(self) -> str: ...
    @property
    def signing_key(self) -> SigningKey: ...


def _criteria_ts(criteria: Any, default: int) -> int:
    if criteria is None:
        return default
    if not isinstance(criteria, dict):
        raise bad_json("Query criteria must be objects.")
    ts = criteria.get("minimum_valid_until_ts")
    if ts is None:
        return default
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise bad_json("'minimum_valid_until_ts' must be an integer.")
    return ts


class NotaryResource:
    def __init__(
        self, signer: NotarySigner, source: NotaryKeySource, clock: Clock
    ) -> None:
        self._signer = signer
        self._source = source
        self._clock = clock

    async def _documents(
        self, server_name: str, key_ids: Collection[str], min_ts: int
    ) -> list[JsonDict]:
        docs = await self._source.get_key_documents(server_name, key_ids, min_ts)
        return [
            sign_json(doc, self._signer.server_name, self._signer.signing_key)
            for doc in docs
        ]

    async def get_query(self, req: MatrixRequest) -> JsonDict:
        server_name = req.path_param("serverName")
        if not is_valid_server_name(server_name):
            raise invalid_param("Invalid server name.")
        key_id = req.raw.match_info.get("keyId")
        min_ts = req.query_int("minimum_valid_until_ts", self._clock.time_msec())
        assert min_ts is not None
        docs = await self._documents(server_name, [key_id] if key_id else [], min_ts)
        return {"server_keys": docs}

    async def post_query(self, req: MatrixRequest) -> JsonDict:
        body: JsonBody = await req.json()
        query = body.get_dict("server_keys")
        if query is None:
            raise bad_json("'server_keys' must be an object.")
        if len(query) > MAX_SERVERS_PER_QUERY:
            raise invalid_param(f"At most {MAX_SERVERS_PER_QUERY} servers per query.")
        now = self._clock.time_msec()
        work: list[tuple[str, list[str], int]] = []
        for server_name, keys in query.items():
            if not isinstance(keys, dict):
                raise bad_json("Each server's key IDs must be an object.")
            if not is_valid_server_name(server_name):
                continue
            min_ts = max((_criteria_ts(c, now) for c in keys.values()), default=now)
            work.append((server_name, [k for k in keys if isinstance(k, str)], min_ts))
        results = await asyncio.gather(*(self._documents(*w) for w in work))
        return {"server_keys": [doc for docs in results for doc in docs]}

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "GET",
                (
                    "/_matrix/key/v2/query/{serverName}",
                    "/_matrix/key/v2/query/{serverName}/{keyId}",
                ),
                self.get_query,
                auth=AuthMode.NONE,
            ),
            Endpoint(
                "POST", ("/_matrix/key/v2/query",), self.post_query, auth=AuthMode.NONE
            ),
        ]
