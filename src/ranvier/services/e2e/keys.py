"""Keys of local devices (spec: C-S API > End-to-End Encryption > Key management API).

* `POST /keys/upload`: device keys (for the requester's own device, self-signed by its
  ed25519 key), one-time keys (an ID already used with other contents is refused) and
  fallback keys (replaced per algorithm); answers the one-time key counts.
* Claims: one one-time key per device, else the device's fallback key (kept, marked
  used, so the device learns from sync to replace it).
* `LocalKeyReader` serves local keys to clients and servers with the signatures others
  made on them merged in: signatures by the owner (self-signing key on devices, devices
  on the master key) for everyone, and the requester's own (user-signing key) for them.
* Sync's `KeyCounts`: one-time key counts and unused fallback key types.
* Deleted devices lose their keys; others hear about it (device-list publisher).
* `GET /keys/changes`: users whose device lists changed between two sync tokens.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final, Protocol

from ranvier.core.crypto.e2e_keys import (
    MASTER,
    SELF_SIGNING,
    USER_SIGNING,
    E2eKeyError,
    check_device_keys,
)
from ranvier.core.errors import MatrixError, bad_json
from ranvier.core.streams import InvalidTokenError, SyncToken
from ranvier.services.e2e.device_lists import DeviceChange, DeviceListPublisher
from ranvier.storage.stores.e2e_keys import (
    ClaimedKey,
    DeviceKeysRow,
    NewKey,
    SignatureRow,
)
from ranvier.storage.stores.sync import MembershipRow
from ranvier.util.clock import Clock

__all__ = [
    "E2eKeysService",
    "LocalKeyReader",
    "OneTimeKeyCounts",
    "merge_signatures",
    "parse_new_keys",
]

JsonDict = dict[str, Any]

SIGNED_CURVE25519: Final = "signed_curve25519"
MAX_KEYS_PER_UPLOAD: Final = 10_000
MAX_KEY_ID_LENGTH: Final = 255


class LocalKeyStore(Protocol):
    async def get_device_keys(
        self, query: Mapping[str, Collection[str]]
    ) -> list[DeviceKeysRow]: ...

    async def get_cross_signing_keys(
        self, user_ids: Collection[str]
    ) -> dict[str, dict[str, JsonDict]]: ...

    async def get_signatures(
        self, target_user_ids: Collection[str], signer_user_ids: Collection[str]
    ) -> list[SignatureRow]: ...


class KeyStore(LocalKeyStore, Protocol):
    async def set_device_keys(
        self, user_id: str, device_id: str, keys: Mapping[str, Any], now_ms: int
    ) -> bool: ...

    async def delete_device_keys(
        self, user_id: str, device_ids: Sequence[str]
    ) -> None: ...

    async def add_one_time_keys(
        self, user_id: str, device_id: str, keys: Sequence[NewKey], now_ms: int
    ) -> list[str]: ...

    async def count_one_time_keys(
        self, user_id: str, device_id: str
    ) -> dict[str, int]: ...

    async def set_fallback_keys(
        self, user_id: str, device_id: str, keys: Sequence[NewKey]
    ) -> None: ...

    async def get_unused_fallback_key_types(
        self, user_id: str, device_id: str
    ) -> list[str]: ...

    async def claim_keys(
        self, claims: Sequence[tuple[str, str, str]]
    ) -> list[ClaimedKey]: ...


class MembershipChanges(Protocol):
    """What `/keys/changes` reads (the sync store)."""

    async def get_device_list_changes_for_cohabitants(
        self, user_id: str, from_id: int, to_id: int
    ) -> set[str]: ...

    async def get_joined_room_ids(self, user_id: str) -> set[str]: ...

    async def get_membership_changes(
        self, user_id: str, from_pos: int, to_pos: int
    ) -> list[MembershipRow]: ...

    async def get_others_membership_changes(
        self, room_ids: Collection[str], user_id: str, from_pos: int, to_pos: int
    ) -> list[MembershipRow]: ...

    async def get_joined_members(self, room_ids: Collection[str]) -> set[str]: ...

    async def get_users_sharing_rooms(
        self, user_id: str, candidates: Collection[str] | None = None
    ) -> set[str]: ...


def parse_new_keys(keys: Any, what: str, *, fallback: bool = False) -> list[NewKey]:
    """`{"<algorithm>:<key_id>": key}` -> NewKeys; 400 M_BAD_JSON when malformed."""
    if keys is None:
        return []
    if not isinstance(keys, Mapping):
        raise bad_json(f"'{what}' must be an object")
    if len(keys) > MAX_KEYS_PER_UPLOAD:
        raise bad_json(f"Too many keys in '{what}'")
    out: list[NewKey] = []
    seen_algorithms: set[str] = set()
    for full_id, key in keys.items():
        algorithm, sep, key_id = full_id.partition(":")
        if not sep or not algorithm or not key_id or len(full_id) > MAX_KEY_ID_LENGTH:
            raise bad_json(f"Key ID {full_id!r} in '{what}' is not <algorithm>:<id>")
        if not isinstance(key, str | dict):
            raise bad_json(f"Key {full_id!r} must be a string or an object")
        if fallback and algorithm in seen_algorithms:
            raise bad_json(f"Only one fallback key per algorithm ({algorithm})")
        seen_algorithms.add(algorithm)
        out.append(NewKey(algorithm, key_id, key))
    return out


def merge_signatures(obj: Mapping[str, Any], rows: Sequence[SignatureRow]) -> JsonDict:
    """A copy of `obj` with the stored signatures added under `signatures`."""
    if not rows:
        return dict(obj)
    existing = obj.get("signatures")
    signatures: dict[str, Any] = (
        {u: dict(s) for u, s in existing.items() if isinstance(s, Mapping)}
        if isinstance(existing, Mapping)
        else {}
    )
    for row in rows:
        signatures.setdefault(row.signer_user_id, {})[row.signer_key_id] = row.signature
    return {**obj, "signatures": signatures}


def _public_key(key: Mapping[str, Any]) -> str | None:
    keys = key.get("keys")
    if isinstance(keys, Mapping) and len(keys) == 1:
        (value,) = keys.values()
        return value if isinstance(value, str) else None
    return None


class LocalKeyReader:
    """Keys of local users as clients and other servers see them."""

    def __init__(self, store: LocalKeyStore) -> None:
        self._store = store

    async def get_device_keys(
        self,
        query: Mapping[str, Collection[str]],
        requester: str | None,
        *,
        include_display_names: bool,
    ) -> dict[str, dict[str, JsonDict]]:
        """user -> device -> keys, for every queried user (also those with none)."""
        rows = await self._store.get_device_keys(query)
        signers = {*query} | ({requester} if requester else set())
        sigs = await self._store.get_signatures(list(query), signers)
        by_target: dict[tuple[str, str], list[SignatureRow]] = {}
        for s in sigs:
            # Owner's signatures for all; others' only for the one who made them.
            if s.signer_user_id in (s.target_user_id, requester):
                by_target.setdefault((s.target_user_id, s.target_key_id), []).append(s)
        out: dict[str, dict[str, JsonDict]] = {u: {} for u in query}
        for row in rows:
            keys = merge_signatures(
                row.keys, by_target.get((row.user_id, row.device_id), [])
            )
            if include_display_names:
                # `unsigned` always present, as Synapse (SyTest 01-upload-key relies on
                # it); the display name only when the device has one.
                unsigned = keys.get("unsigned")
                keys["unsigned"] = dict(unsigned) if isinstance(unsigned, dict) else {}
                if row.display_name is not None:
                    keys["unsigned"]["device_display_name"] = row.display_name
            out[row.user_id][row.device_id] = keys
        return out

    async def get_cross_signing_keys(
        self, user_ids: Collection[str], requester: str | None
    ) -> dict[str, dict[str, JsonDict]]:
        """key type -> user -> key; `user_signing` only of the requester themself."""
        stored = await self._store.get_cross_signing_keys(user_ids)
        signers = {*user_ids} | ({requester} if requester else set())
        sigs = await self._store.get_signatures(list(stored), signers)
        out: dict[str, dict[str, JsonDict]] = {
            MASTER: {},
            SELF_SIGNING: {},
            USER_SIGNING: {},
        }
        for user_id, keys in stored.items():
            for key_type, key in keys.items():
                if key_type not in out:
                    continue
                if key_type == USER_SIGNING and user_id != requester:
                    continue
                public = _public_key(key)
                rows = [
                    s
                    for s in sigs
                    if s.target_user_id == user_id
                    and s.target_key_id == public
                    and s.signer_user_id in (user_id, requester)
                ]
                out[key_type][user_id] = merge_signatures(key, rows)
        return out


class OneTimeKeyCounts:
    """Sync's `KeyCounts`: built before the rest of E2E, which needs sync's services."""

    def __init__(self, store: KeyStore) -> None:
        self._store = store

    async def get_one_time_key_counts(
        self, user_id: str, device_id: str
    ) -> dict[str, int]:
        counts = await self._store.count_one_time_keys(user_id, device_id)
        # Spec (and clients): signed_curve25519 is always reported, even when 0.
        return {SIGNED_CURVE25519: 0, **counts}

    async def get_unused_fallback_key_types(
        self, user_id: str, device_id: str
    ) -> list[str]:
        return await self._store.get_unused_fallback_key_types(user_id, device_id)


class E2eKeysService:
    def __init__(
        self,
        store: KeyStore,
        reader: LocalKeyReader,
        publisher: DeviceListPublisher,
        memberships: MembershipChanges,
        clock: Clock,
    ) -> None:
        self._store = store
        self._counts = OneTimeKeyCounts(store)
        self._reader = reader
        self._publisher = publisher
        self._memberships = memberships
        self._clock = clock

    # -- upload ------------------------------------------------------------------------------
    async def upload_keys(
        self,
        user_id: str,
        device_id: str,
        *,
        device_keys: Mapping[str, Any] | None,
        one_time_keys: Any,
        fallback_keys: Any,
    ) -> dict[str, int]:
        """Spec: POST /keys/upload. Returns `one_time_key_counts`."""
        otks = parse_new_keys(one_time_keys, "one_time_keys")
        fallbacks = parse_new_keys(fallback_keys, "fallback_keys", fallback=True)
        now = self._clock.time_msec()
        if device_keys is not None:
            try:
                check_device_keys(device_keys, user_id, device_id)
            except E2eKeyError as e:
                code = (
                    "M_INVALID_SIGNATURE"
                    if e.bad_signature
                    else "M_BAD_JSON"
                    if e.malformed
                    else "M_INVALID_PARAM"
                )
                raise MatrixError(400, code, e.message) from None
            if await self._store.set_device_keys(user_id, device_id, device_keys, now):
                await self._device_keys_changed(user_id, device_id)
        conflicts = await self._store.add_one_time_keys(user_id, device_id, otks, now)
        if conflicts:
            raise MatrixError(
                400,
                "M_INVALID_PARAM",
                f"One-time key {conflicts[0]} already exists with other contents.",
            )
        await self._store.set_fallback_keys(user_id, device_id, fallbacks)
        return await self.get_one_time_key_counts(user_id, device_id)

    async def _device_keys_changed(self, user_id: str, device_id: str) -> None:
        served = await self._reader.get_device_keys(
            {user_id: [device_id]}, None, include_display_names=False
        )
        keys = served.get(user_id, {}).get(device_id)
        await self._publisher.devices_changed(
            user_id, [DeviceChange(device_id, keys=keys)]
        )

    async def devices_signed(self, user_id: str, device_ids: Collection[str]) -> None:
        """Cross-signing signatures were added to these devices of `user_id`."""
        served = await self._reader.get_device_keys(
            {user_id: list(device_ids)}, None, include_display_names=False
        )
        per_device = served.get(user_id, {})
        await self._publisher.devices_changed(
            user_id,
            [DeviceChange(d, keys=per_device.get(d)) for d in sorted(device_ids)],
        )

    # -- KeyCounts (sync) --------------------------------------------------------------------
    async def get_one_time_key_counts(
        self, user_id: str, device_id: str
    ) -> dict[str, int]:
        return await self._counts.get_one_time_key_counts(user_id, device_id)

    # -- claims ------------------------------------------------------------------------------
    async def claim_local_keys(
        self, claims: Mapping[str, Mapping[str, str]]
    ) -> dict[str, dict[str, JsonDict]]:
        """user -> device -> {"<algorithm>:<key_id>": key}; devices without keys are
        left out."""
        flat = [
            (user_id, device_id, algorithm)
            for user_id, devices in sorted(claims.items())
            for device_id, algorithm in sorted(devices.items())
        ]
        out: dict[str, dict[str, JsonDict]] = {}
        for claimed in await self._store.claim_keys(flat):
            out.setdefault(claimed.user_id, {})[claimed.device_id] = {
                f"{claimed.algorithm}:{claimed.key_id}": claimed.key
            }
        return out

    # -- device deletion ---------------------------------------------------------------------
    async def on_devices_deleted(self, user_id: str, device_ids: Sequence[str]) -> None:
        """`AccountHooks.devices_deleted` listener: drop the keys, tell everyone."""
        await self._store.delete_device_keys(user_id, device_ids)
        await self._publisher.devices_changed(
            user_id, [DeviceChange(d, deleted=True) for d in device_ids]
        )

    async def on_devices_updated(
        self, user_id: str, devices: Mapping[str, str | None]
    ) -> None:
        """`AccountHooks.devices_updated` listener (a new login, a renamed device):
        tell everyone sharing a room; the EDU carries the device's current keys, if
        any, so remote caches keep them (as Synapse's `notify_device_update`)."""
        served = await self._reader.get_device_keys(
            {user_id: list(devices)}, None, include_display_names=False
        )
        per_device = served.get(user_id, {})
        await self._publisher.devices_changed(
            user_id,
            [
                DeviceChange(d, keys=per_device.get(d), display_name=name)
                for d, name in sorted(devices.items())
            ],
        )

    # -- /keys/changes -----------------------------------------------------------------------
    async def get_key_changes(
        self, user_id: str, from_token: str, to_token: str
    ) -> tuple[set[str], set[str]]:
        """(changed, left) between two sync tokens (spec: GET /keys/changes)."""
        try:
            since, until = SyncToken.decode(from_token), SyncToken.decode(to_token)
        except InvalidTokenError as e:
            raise MatrixError(400, "M_INVALID_PARAM", f"Invalid token: {e}") from None
        changed = await self._memberships.get_device_list_changes_for_cohabitants(
            user_id, since.device_lists, until.device_lists
        )
        if until.events <= since.events:
            return changed, set()
        own = await self._memberships.get_membership_changes(
            user_id, since.events, until.events
        )
        joined = await self._memberships.get_joined_room_ids(user_id)
        newly_joined = {m.room_id for m in own if m.membership == "join"} & joined
        left_rooms = {m.room_id for m in own if m.membership != "join"} - joined
        candidates_left: set[str] = set()
        for m in await self._memberships.get_others_membership_changes(
            joined | left_rooms, user_id, since.events, until.events
        ):
            if m.membership == "join" and m.room_id in joined:
                changed.add(m.user_id)
            elif m.membership in ("leave", "ban"):
                candidates_left.add(m.user_id)
        changed |= await self._memberships.get_joined_members(newly_joined)
        candidates_left |= await self._memberships.get_joined_members(left_rooms)
        candidates_left.discard(user_id)
        still = await self._memberships.get_users_sharing_rooms(
            user_id, candidates_left
        )
        left = candidates_left - still
        return changed - left, left
