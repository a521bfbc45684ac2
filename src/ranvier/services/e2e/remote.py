"""Keys of remote users (spec: S-S API > End-to-End Encryption, Device Management).

* Query: a remote user our server shares a room with is cached — fetched once with
  `GET /user/devices/{userId}` and then kept current by the `m.device_list_update` /
  `m.signing_key_update` EDUs their server sends. Users we share no room with get no
  updates, so they are asked for each time with `POST /user/keys/query` (one request
  per server).
* An update whose `prev_id` is not what the cache last saw means one was missed: the
  cache is marked stale and the next query resyncs it (lazily: an EDU never waits on
  the network).
* Claim: `POST /user/keys/claim`, one request per server.
* Whatever another server answers is checked: keys of users from other servers, and
  keys claiming another user or device than the one they are listed under, are dropped.
  Unreachable servers end up in `failures`, never as an error for the whole request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from ranvier.core.crypto.e2e_keys import (
    MASTER,
    SELF_SIGNING,
    E2eKeyError,
    parse_cross_signing_key,
)
from ranvier.core.ids import InvalidIdentifierError, domain_of
from ranvier.federation.client import QueryArgs, federation_path
from ranvier.federation.errors import FederationError, NotRetryingDestination
from ranvier.services.e2e.device_lists import DeviceListNotifier
from ranvier.services.e2e.keys import merge_signatures
from ranvier.storage.stores.e2e_keys import (
    RemoteDevice,
    RemoteDeviceList,
    RemoteUpdate,
    SignatureRow,
)
from ranvier.util.clock import Clock

logger = logging.getLogger(__name__)

__all__ = ["RemoteKeyResults", "RemoteKeys"]

JsonDict = dict[str, Any]

DEFAULT_TIMEOUT_SECONDS: Final = 10.0
MAX_DEVICES_PER_USER: Final = 1000


class FederationRequests(Protocol):
    async def get_json(
        self, destination: str, path: str, *, args: QueryArgs | None = None, **kw: Any
    ) -> Any: ...

    async def post_json(
        self, destination: str, path: str, content: Any, **kw: Any
    ) -> Any: ...


class RemoteKeyStore(Protocol):
    async def get_remote_device_lists(
        self, user_ids: Collection[str]
    ) -> dict[str, RemoteDeviceList]: ...

    async def get_remote_devices(self, user_id: str) -> list[RemoteDevice]: ...

    async def get_cross_signing_keys(
        self, user_ids: Collection[str]
    ) -> dict[str, dict[str, JsonDict]]: ...

    async def get_signatures(
        self, target_user_ids: Collection[str], signer_user_ids: Collection[str]
    ) -> list[SignatureRow]: ...

    async def replace_remote_device_list(
        self,
        user_id: str,
        stream_id: int,
        devices: list[RemoteDevice],
        cross_signing: Mapping[str, tuple[str, Mapping[str, Any]]],
        now_ms: int,
    ) -> None: ...

    async def apply_remote_device_update(
        self,
        user_id: str,
        stream_id: int,
        prev_ids: Collection[int],
        device: RemoteDevice,
        *,
        deleted: bool,
        now_ms: int,
    ) -> RemoteUpdate: ...

    async def set_remote_cross_signing_keys(
        self,
        user_id: str,
        keys: Mapping[str, tuple[str, Mapping[str, Any]]],
        now_ms: int,
    ) -> bool: ...


class SharedRooms(Protocol):
    async def get_joined_room_ids(self, user_id: str) -> set[str]: ...


@dataclass
class RemoteKeyResults:
    device_keys: dict[str, dict[str, JsonDict]] = field(default_factory=dict)
    master_keys: dict[str, JsonDict] = field(default_factory=dict)
    self_signing_keys: dict[str, JsonDict] = field(default_factory=dict)
    failures: dict[str, JsonDict] = field(default_factory=dict)


def _domain(user_id: str) -> str | None:
    try:
        return domain_of(user_id)
    except InvalidIdentifierError:
        return None


def failure_of(e: Exception) -> JsonDict:
    """The `failures` entry for a server (as Synapse reports it)."""
    if isinstance(e, NotRetryingDestination):
        return {"status": 503, "message": "Not ready for retry"}
    if isinstance(e, FederationError) and e.status is not None:
        return {"status": e.status, "message": e.remote_message or "Remote error"}
    if isinstance(e, TimeoutError):
        return {"status": 504, "message": "Timed out"}
    # Connection failures: how exactly (addresses, exception names) stays in the logs.
    return {"status": 503, "message": "Unable to reach the server"}


def _valid_device_keys(keys: Any, user_id: str, device_id: str) -> bool:
    return (
        isinstance(keys, dict)
        and keys.get("user_id") == user_id
        and keys.get("device_id") == device_id
    )


def _cross_signing(
    user_id: str, master: Any, self_signing: Any
) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """The well-formed keys among a remote's master / self-signing keys."""
    out: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for usage, obj in ((MASTER, master), (SELF_SIGNING, self_signing)):
        if obj is None:
            continue
        try:
            key = parse_cross_signing_key(obj, user_id, usage)
        except E2eKeyError as e:
            logger.info("dropping %s key of %s: %s", usage, user_id, e.message)
            continue
        out[usage] = (key.public_key, obj)
    return out


def _parse_devices(user_id: str, devices: Any) -> list[RemoteDevice] | None:
    if not isinstance(devices, list) or len(devices) > MAX_DEVICES_PER_USER:
        return None
    out: list[RemoteDevice] = []
    for d in devices:
        if not isinstance(d, dict) or not isinstance(d.get("device_id"), str):
            continue
        device_id: str = d["device_id"]
        keys = d.get("keys")
        name = d.get("device_display_name")
        out.append(
            RemoteDevice(
                device_id,
                name if isinstance(name, str) else None,
                keys if _valid_device_keys(keys, user_id, device_id) else None,
            )
        )
    return out


class RemoteKeys:
    def __init__(
        self,
        server_name: str,
        client: FederationRequests | None,
        store: RemoteKeyStore,
        rooms: SharedRooms,
        notifier: DeviceListNotifier,
        clock: Clock,
    ) -> None:
        self._server_name = server_name
        self._client = client
        self._store = store
        self._rooms = rooms
        self._notifier = notifier
        self._clock = clock

    # -- query -------------------------------------------------------------------------------
    async def query(
        self,
        query: Mapping[str, Collection[str]],
        requester: str,
        timeout_s: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> RemoteKeyResults:
        """Keys of remote users: `query` maps user IDs to device IDs (empty: all)."""
        results = RemoteKeyResults()
        by_server: dict[str, dict[str, Collection[str]]] = {}
        for user_id, devices in query.items():
            server = _domain(user_id)
            if server is not None and server != self._server_name:
                by_server.setdefault(server, {})[user_id] = devices
        await asyncio.gather(
            *(
                self._query_server(server, users, results, timeout_s)
                for server, users in sorted(by_server.items())
            )
        )
        await self._add_signatures_of(requester, results)
        return results

    async def _query_server(
        self,
        server: str,
        users: Mapping[str, Collection[str]],
        results: RemoteKeyResults,
        timeout_s: float,
    ) -> None:
        cached = await self._store.get_remote_device_lists(list(users))
        remaining: dict[str, Collection[str]] = {}
        try:
            async with asyncio.timeout(timeout_s):
                for user_id, devices in sorted(users.items()):
                    entry = cached.get(user_id)
                    if entry is None or entry.stale:
                        if not await self._rooms.get_joined_room_ids(user_id):
                            remaining[user_id] = devices
                            continue
                        await self._resync(server, user_id)
                    await self._from_cache(user_id, devices, results)
                if remaining:
                    await self._query_remote(server, remaining, results)
        except (FederationError, TimeoutError, ValueError) as e:
            results.failures[server] = failure_of(e)

    async def _from_cache(
        self, user_id: str, devices: Collection[str], results: RemoteKeyResults
    ) -> None:
        wanted = set(devices)
        results.device_keys[user_id] = {
            d.device_id: dict(d.keys)
            for d in await self._store.get_remote_devices(user_id)
            if d.keys is not None and (not wanted or d.device_id in wanted)
        }
        stored = (await self._store.get_cross_signing_keys([user_id])).get(user_id, {})
        if MASTER in stored:
            results.master_keys[user_id] = stored[MASTER]
        if SELF_SIGNING in stored:
            results.self_signing_keys[user_id] = stored[SELF_SIGNING]

    async def _add_signatures_of(
        self, requester: str, results: RemoteKeyResults
    ) -> None:
        """The requester's own signatures (user-signing key) on remote master keys."""
        if not results.master_keys:
            return
        rows = await self._store.get_signatures(list(results.master_keys), [requester])
        for user_id, key in list(results.master_keys.items()):
            public = next(iter(key.get("keys", {}).values()), None)
            mine = [
                r
                for r in rows
                if r.target_user_id == user_id and r.target_key_id == public
            ]
            results.master_keys[user_id] = merge_signatures(key, mine)

    def _need_client(self) -> FederationRequests:
        if self._client is None:
            raise ValueError("federation is disabled")
        return self._client

    async def _query_remote(
        self,
        server: str,
        users: Mapping[str, Collection[str]],
        results: RemoteKeyResults,
    ) -> None:
        body = await self._need_client().post_json(
            server,
            "/_matrix/federation/v1/user/keys/query",
            {"device_keys": {u: sorted(d) for u, d in users.items()}},
        )
        if not isinstance(body, dict):
            raise ValueError("keys/query answer is not an object")
        device_keys = body.get("device_keys")
        for user_id in users:
            per_user = (
                device_keys.get(user_id) if isinstance(device_keys, dict) else None
            )
            if isinstance(per_user, dict):
                results.device_keys[user_id] = {
                    d: k
                    for d, k in per_user.items()
                    if _valid_device_keys(k, user_id, d)
                }
            masters, selfs = body.get("master_keys"), body.get("self_signing_keys")
            xs = _cross_signing(
                user_id,
                masters.get(user_id) if isinstance(masters, dict) else None,
                selfs.get(user_id) if isinstance(selfs, dict) else None,
            )
            if MASTER in xs:
                results.master_keys[user_id] = dict(xs[MASTER][1])
            if SELF_SIGNING in xs:
                results.self_signing_keys[user_id] = dict(xs[SELF_SIGNING][1])

    async def _resync(self, server: str, user_id: str) -> None:
        """Replace the cache of `user_id` with `GET /user/devices/{userId}`."""
        body = await self._need_client().get_json(
            server, federation_path("/_matrix/federation/v1/user/devices/{}", user_id)
        )
        if not isinstance(body, dict) or body.get("user_id") != user_id:
            raise ValueError("user/devices answer is not for the user asked about")
        stream_id = body.get("stream_id")
        devices = _parse_devices(user_id, body.get("devices"))
        if type(stream_id) is not int or devices is None:
            raise ValueError("user/devices answer is malformed")
        await self._store.replace_remote_device_list(
            user_id,
            stream_id,
            devices,
            _cross_signing(
                user_id, body.get("master_key"), body.get("self_signing_key")
            ),
            self._clock.time_msec(),
        )

    # -- claim -------------------------------------------------------------------------------
    async def claim(
        self,
        claims: Mapping[str, Mapping[str, str]],
        timeout_s: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> tuple[dict[str, dict[str, JsonDict]], dict[str, JsonDict]]:
        """(one_time_keys, failures) for remote users' devices."""
        by_server: dict[str, dict[str, Mapping[str, str]]] = {}
        for user_id, devices in claims.items():
            server = _domain(user_id)
            if server is not None and server != self._server_name:
                by_server.setdefault(server, {})[user_id] = devices
        keys: dict[str, dict[str, JsonDict]] = {}
        failures: dict[str, JsonDict] = {}

        async def one(server: str, users: Mapping[str, Mapping[str, str]]) -> None:
            try:
                async with asyncio.timeout(timeout_s):
                    body = await self._need_client().post_json(
                        server,
                        "/_matrix/federation/v1/user/keys/claim",
                        {"one_time_keys": {u: dict(d) for u, d in users.items()}},
                    )
            except (FederationError, TimeoutError, ValueError) as e:
                failures[server] = failure_of(e)
                return
            claimed = body.get("one_time_keys") if isinstance(body, dict) else None
            if not isinstance(claimed, dict):
                failures[server] = {"status": 502, "message": "malformed answer"}
                return
            for user_id, per_device in claimed.items():
                if user_id in users and isinstance(per_device, dict):
                    keys[user_id] = {
                        d: k
                        for d, k in per_device.items()
                        if d in users[user_id] and isinstance(k, dict)
                    }

        await asyncio.gather(*(one(s, u) for s, u in sorted(by_server.items())))
        return keys, failures

    # -- inbound EDUs ------------------------------------------------------------------------
    async def on_device_list_update(self, origin: str, content: JsonDict) -> None:
        """`m.device_list_update` from `origin` about one of its users (the EDU
        handler has checked ownership and that a room is shared)."""
        user_id, device_id = content.get("user_id"), content.get("device_id")
        stream_id, prev_ids = content.get("stream_id"), content.get("prev_id", [])
        if not isinstance(user_id, str) or not isinstance(device_id, str):
            return
        if type(stream_id) is not int or not isinstance(prev_ids, list):
            return
        if not all(type(p) is int for p in prev_ids):
            return
        keys, name = content.get("keys"), content.get("device_display_name")
        outcome = await self._store.apply_remote_device_update(
            user_id,
            stream_id,
            prev_ids,
            RemoteDevice(
                device_id,
                name if isinstance(name, str) else None,
                keys if _valid_device_keys(keys, user_id, device_id) else None,
            ),
            deleted=content.get("deleted") is True,
            now_ms=self._clock.time_msec(),
        )
        logger.debug("device list update of %s from %s: %s", user_id, origin, outcome)
        if outcome is not RemoteUpdate.OLD:
            await self._notifier.notify_device_change([user_id])

    async def on_signing_key_update(self, origin: str, content: JsonDict) -> None:
        """`m.signing_key_update`: new master / self-signing key of a remote user."""
        user_id = content.get("user_id")
        if not isinstance(user_id, str):
            return
        keys = _cross_signing(
            user_id, content.get("master_key"), content.get("self_signing_key")
        )
        if keys:
            await self._store.set_remote_cross_signing_keys(
                user_id, keys, self._clock.time_msec()
            )
        await self._notifier.notify_device_change([user_id])
