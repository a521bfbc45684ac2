"""`POST /keys/query` and `POST /keys/claim` for clients: local users from the database,
remote users through `RemoteKeys` (cache or federation), merged into one answer with
the unreachable servers in `failures` (spec: C-S API > End-to-End Encryption).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final, Protocol

from ranvier.core.crypto.e2e_keys import MASTER, SELF_SIGNING, USER_SIGNING
from ranvier.core.ids import InvalidIdentifierError, domain_of
from ranvier.services.e2e.keys import LocalKeyReader
from ranvier.services.e2e.remote import DEFAULT_TIMEOUT_SECONDS, RemoteKeys

__all__ = ["KeyQueryService"]

JsonDict = dict[str, Any]

MAX_TIMEOUT_SECONDS: Final = 30.0


class LocalClaims(Protocol):
    async def claim_local_keys(
        self, claims: Mapping[str, Mapping[str, str]]
    ) -> dict[str, dict[str, JsonDict]]: ...


def _timeout_s(timeout_ms: int | None) -> float:
    if timeout_ms is None or timeout_ms <= 0:
        return DEFAULT_TIMEOUT_SECONDS
    return min(timeout_ms / 1000, MAX_TIMEOUT_SECONDS)


class KeyQueryService:
    def __init__(
        self,
        server_name: str,
        reader: LocalKeyReader,
        claims: LocalClaims,
        remote: RemoteKeys,
    ) -> None:
        self._server_name = server_name
        self._reader = reader
        self._claims = claims
        self._remote = remote

    def _is_local(self, user_id: str) -> bool:
        try:
            return domain_of(user_id) == self._server_name
        except InvalidIdentifierError:
            return False

    async def query_keys(
        self,
        requester: str,
        device_keys: Mapping[str, Collection[str]],
        timeout_ms: int | None = None,
    ) -> JsonDict:
        local = {u: d for u, d in device_keys.items() if self._is_local(u)}
        remote = {u: d for u, d in device_keys.items() if not self._is_local(u)}
        out_devices = await self._reader.get_device_keys(
            local, requester, include_display_names=True
        )
        cross = await self._reader.get_cross_signing_keys(list(local), requester)
        found = await self._remote.query(remote, requester, _timeout_s(timeout_ms))
        out_devices.update(found.device_keys)
        return {
            "device_keys": out_devices,
            "master_keys": {**cross[MASTER], **found.master_keys},
            "self_signing_keys": {**cross[SELF_SIGNING], **found.self_signing_keys},
            "user_signing_keys": cross[USER_SIGNING],
            "failures": found.failures,
        }

    async def claim_keys(
        self,
        one_time_keys: Mapping[str, Mapping[str, str]],
        timeout_ms: int | None = None,
    ) -> JsonDict:
        local = {u: d for u, d in one_time_keys.items() if self._is_local(u)}
        remote = {u: d for u, d in one_time_keys.items() if not self._is_local(u)}
        claimed = await self._claims.claim_local_keys(local)
        remote_keys, failures = await self._remote.claim(remote, _timeout_s(timeout_ms))
        claimed.update(remote_keys)
        return {"one_time_keys": claimed, "failures": failures}
