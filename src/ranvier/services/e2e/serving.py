"""Local users' keys for other servers (spec: S-S API > End-to-End Encryption; Device
Management).

* `POST /user/keys/query`, `POST /user/keys/claim`: like the client endpoints, for
  local users only. No user-signing keys and only the owner's own signatures leave the
  server; device display names are not shared over federation (Synapse's default), so
  a device's name is not visible to every server in a room.
* `GET /user/devices/{userId}`: every device of the user (with keys where uploaded),
  the master and self-signing keys, and the `stream_id` of the last device-list update
  sent, read *before* the devices so a change racing the read is sent again, never lost.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol

from ranvier.core.crypto.e2e_keys import MASTER, SELF_SIGNING
from ranvier.core.errors import MatrixError
from ranvier.core.ids import InvalidIdentifierError, domain_of
from ranvier.services.e2e.keys import LocalKeyReader
from ranvier.services.e2e.query import LocalClaims
from ranvier.storage.stores.accounts import DeviceRow

__all__ = ["FederationKeyServing"]

JsonDict = dict[str, Any]


class DeviceLister(Protocol):
    async def get_devices(self, user_id: str) -> list[DeviceRow]: ...


class StreamPositions(Protocol):
    async def get_device_list_stream_id(self, user_id: str) -> int: ...


class FederationKeyServing:
    def __init__(
        self,
        server_name: str,
        reader: LocalKeyReader,
        claims: LocalClaims,
        devices: DeviceLister,
        positions: StreamPositions,
    ) -> None:
        self._server_name = server_name
        self._reader = reader
        self._claims = claims
        self._devices = devices
        self._positions = positions

    def _is_local(self, user_id: str) -> bool:
        try:
            return domain_of(user_id) == self._server_name
        except InvalidIdentifierError:
            return False

    async def query_keys(self, device_keys: Mapping[str, Collection[str]]) -> JsonDict:
        local = {u: d for u, d in device_keys.items() if self._is_local(u)}
        devices = await self._reader.get_device_keys(
            local, None, include_display_names=False
        )
        cross = await self._reader.get_cross_signing_keys(list(local), None)
        return {
            "device_keys": devices,
            "master_keys": cross[MASTER],
            "self_signing_keys": cross[SELF_SIGNING],
        }

    async def claim_keys(
        self, one_time_keys: Mapping[str, Mapping[str, str]]
    ) -> JsonDict:
        local = {u: d for u, d in one_time_keys.items() if self._is_local(u)}
        return {"one_time_keys": await self._claims.claim_local_keys(local)}

    async def get_user_devices(self, user_id: str) -> JsonDict:
        if not self._is_local(user_id):
            raise MatrixError(
                400, "M_INVALID_PARAM", "User is not hosted on this homeserver."
            )
        stream_id = await self._positions.get_device_list_stream_id(user_id)
        devices = await self._devices.get_devices(user_id)
        keys = (
            await self._reader.get_device_keys(
                {user_id: []}, None, include_display_names=False
            )
        ).get(user_id, {})
        out: JsonDict = {
            "user_id": user_id,
            "stream_id": stream_id,
            "devices": [
                {
                    "device_id": d.device_id,
                    **({"keys": keys[d.device_id]} if d.device_id in keys else {}),
                }
                for d in devices
            ],
        }
        cross = await self._reader.get_cross_signing_keys([user_id], None)
        if user_id in cross[MASTER]:
            out["master_key"] = cross[MASTER][user_id]
        if user_id in cross[SELF_SIGNING]:
            out["self_signing_key"] = cross[SELF_SIGNING][user_id]
        return out
