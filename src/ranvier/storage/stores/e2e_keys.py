"""End-to-end encryption keys: device keys, one-time and fallback keys, cross-signing
keys and their signatures, the outbound device-list stream IDs sent over federation, and
the cache of remote users' device lists (spec: C-S API > End-to-End Encryption; S-S API
> Device Management).

Key objects are stored as the JSON their owner uploaded; signatures made later by other
keys (cross-signing) live in their own table and are merged in by the service.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ranvier.core.json import decode_json, encode_json
from ranvier.storage.database import Database
from ranvier.storage.txn import Txn

JsonDict = dict[str, Any]

# A claim that lost its key to a concurrent claim tries the next one.
_CLAIM_ATTEMPTS: Final = 5


def _dump(value: Mapping[str, Any]) -> str:
    return encode_json(value).decode()


def _load(text: str) -> JsonDict:
    value = decode_json(text)
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class NewKey:
    """A one-time or fallback key: `key_id` without the algorithm prefix."""

    algorithm: str
    key_id: str
    key: Any  # a string (curve25519) or a signed object (signed_curve25519)


@dataclass(frozen=True, slots=True)
class ClaimedKey:
    user_id: str
    device_id: str
    algorithm: str
    key_id: str
    key: Any


@dataclass(frozen=True, slots=True)
class DeviceKeysRow:
    user_id: str
    device_id: str
    keys: JsonDict
    display_name: str | None


@dataclass(frozen=True, slots=True)
class SignatureRow:
    signer_user_id: str
    signer_key_id: str
    target_user_id: str
    target_key_id: str
    signature: str


@dataclass(frozen=True, slots=True)
class RemoteDeviceList:
    user_id: str
    stream_id: int
    stale: bool


@dataclass(frozen=True, slots=True)
class RemoteDevice:
    device_id: str
    display_name: str | None
    keys: JsonDict | None


class RemoteUpdate(enum.Enum):
    APPLIED = "applied"  # the cache now reflects the update
    UNTRACKED = "untracked"  # no cache for this user: nothing to update
    STALE = "stale"  # an update was missed: the cache must be resynced
    OLD = "old"  # already seen


class E2eKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- device keys -------------------------------------------------------------------------
    async def set_device_keys(
        self, user_id: str, device_id: str, keys: Mapping[str, Any], now_ms: int
    ) -> bool:
        """Store the device's keys; False when they are already exactly these."""
        return await self._db.run_txn(
            "set_device_keys",
            _set_device_keys_txn,
            user_id,
            device_id,
            _dump(keys),
            now_ms,
        )

    async def get_device_keys(
        self, query: Mapping[str, Collection[str]]
    ) -> list[DeviceKeysRow]:
        """Keys of existing devices: `query` maps user IDs to device IDs (empty: all)."""
        if not query:
            return []
        return await self._db.run_read_txn(
            "get_device_keys",
            _get_device_keys_txn,
            {u: sorted(d) for u, d in query.items()},
        )

    async def delete_device_keys(self, user_id: str, device_ids: Sequence[str]) -> None:
        """Every key of the devices, and signatures of them (device deletion)."""
        await self._db.run_txn(
            "delete_device_e2e_keys", _delete_device_keys_txn, user_id, list(device_ids)
        )

    # -- one-time and fallback keys ----------------------------------------------------------
    async def add_one_time_keys(
        self, user_id: str, device_id: str, keys: Sequence[NewKey], now_ms: int
    ) -> list[str]:
        """Add keys not stored yet. Returns the `algorithm:key_id`s that already exist
        with other contents; then nothing is added."""
        if not keys:
            return []
        return await self._db.run_txn(
            "add_one_time_keys", _add_otks_txn, user_id, device_id, list(keys), now_ms
        )

    async def count_one_time_keys(self, user_id: str, device_id: str) -> dict[str, int]:
        return await self._db.run_read_txn(
            "count_one_time_keys", _count_otks_txn, user_id, device_id
        )

    async def set_fallback_keys(
        self, user_id: str, device_id: str, keys: Sequence[NewKey]
    ) -> None:
        """Replace the device's fallback key per algorithm (re-uploading the same key
        keeps its `used` mark)."""
        if keys:
            await self._db.run_txn(
                "set_fallback_keys", _set_fallback_txn, user_id, device_id, list(keys)
            )

    async def get_unused_fallback_key_types(
        self, user_id: str, device_id: str
    ) -> list[str]:
        return await self._db.run_read_txn(
            "get_unused_fallback_key_types", _unused_fallback_txn, user_id, device_id
        )

    async def claim_keys(
        self, claims: Sequence[tuple[str, str, str]]
    ) -> list[ClaimedKey]:
        """For each (user, device, algorithm): take one one-time key, else the fallback
        key (which stays, marked used). Devices with neither are left out."""
        if not claims:
            return []
        return await self._db.run_txn("claim_e2e_keys", _claim_txn, list(claims))

    # -- cross-signing -----------------------------------------------------------------------
    async def get_cross_signing_keys(
        self, user_ids: Collection[str]
    ) -> dict[str, dict[str, JsonDict]]:
        """user ID -> key type (master, self_signing, user_signing) -> key object."""
        if not user_ids:
            return {}
        return await self._db.run_read_txn(
            "get_cross_signing_keys", _get_xsign_txn, sorted(user_ids)
        )

    async def set_cross_signing_keys(
        self,
        user_id: str,
        keys: Mapping[str, tuple[str, Mapping[str, Any]]],
        now_ms: int,
    ) -> None:
        """`keys`: key type -> (public key, key object)."""
        await self._db.run_txn(
            "set_cross_signing_keys",
            _set_xsign_txn,
            user_id,
            {t: (k, _dump(obj)) for t, (k, obj) in keys.items()},
            now_ms,
        )

    async def add_signatures(self, rows: Sequence[SignatureRow]) -> None:
        if rows:
            await self._db.run_txn(
                "add_e2e_signatures", _add_signatures_txn, list(rows)
            )

    async def get_signatures(
        self, target_user_ids: Collection[str], signer_user_ids: Collection[str]
    ) -> list[SignatureRow]:
        """Signatures on keys of `target_user_ids` made by `signer_user_ids`."""
        if not target_user_ids or not signer_user_ids:
            return []
        return await self._db.run_read_txn(
            "get_e2e_signatures",
            _get_signatures_txn,
            sorted(target_user_ids),
            sorted(signer_user_ids),
        )

    # -- outbound device-list updates --------------------------------------------------------
    async def allocate_device_list_stream_ids(
        self, user_id: str, count: int
    ) -> tuple[int | None, list[int]]:
        """`count` new stream IDs for the user's device-list updates, and the last one
        handed out before them (None if none)."""
        return await self._db.run_txn(
            "allocate_device_list_stream_ids", _allocate_ids_txn, user_id, count
        )

    async def get_device_list_stream_id(self, user_id: str) -> int:
        return await self._db.run_read_txn(
            "get_device_list_stream_id", _get_outbound_id_txn, user_id
        )

    # -- dehydrated devices (MSC3814) --------------------------------------------------------
    async def set_dehydrated_device(
        self, user_id: str, device_id: str, device_data: Mapping[str, Any]
    ) -> str | None:
        """Make `device_id` the user's dehydrated device; returns the one it replaces."""
        return await self._db.run_txn(
            "set_dehydrated_device",
            _set_dehydrated_txn,
            user_id,
            device_id,
            _dump(device_data),
        )

    async def get_dehydrated_device(self, user_id: str) -> tuple[str, JsonDict] | None:
        return await self._db.run_read_txn(
            "get_dehydrated_device", _get_dehydrated_txn, user_id
        )

    # -- remote device-list cache ------------------------------------------------------------
    async def get_remote_device_lists(
        self, user_ids: Collection[str]
    ) -> dict[str, RemoteDeviceList]:
        if not user_ids:
            return {}
        return await self._db.run_read_txn(
            "get_remote_device_lists", _get_remote_lists_txn, sorted(user_ids)
        )

    async def get_remote_devices(self, user_id: str) -> list[RemoteDevice]:
        return await self._db.run_read_txn(
            "get_remote_devices", _get_remote_devices_txn, user_id
        )

    async def replace_remote_device_list(
        self,
        user_id: str,
        stream_id: int,
        devices: Sequence[RemoteDevice],
        cross_signing: Mapping[str, tuple[str, Mapping[str, Any]]],
        now_ms: int,
    ) -> None:
        """A full resync: the user's devices and cross-signing keys are exactly these."""
        await self._db.run_txn(
            "replace_remote_device_list",
            _replace_remote_txn,
            user_id,
            stream_id,
            list(devices),
            {t: (k, _dump(obj)) for t, (k, obj) in cross_signing.items()},
            now_ms,
        )

    async def apply_remote_device_update(
        self,
        user_id: str,
        stream_id: int,
        prev_ids: Collection[int],
        device: RemoteDevice,
        *,
        deleted: bool,
        now_ms: int,
    ) -> RemoteUpdate:
        """An `m.device_list_update`: applied when its `prev_id`s are what the cache
        last saw, else the cache is marked stale."""
        return await self._db.run_txn(
            "apply_remote_device_update",
            _apply_remote_update_txn,
            user_id,
            stream_id,
            sorted(prev_ids),
            device,
            deleted,
            now_ms,
        )

    async def set_remote_cross_signing_keys(
        self,
        user_id: str,
        keys: Mapping[str, tuple[str, Mapping[str, Any]]],
        now_ms: int,
    ) -> bool:
        """An `m.signing_key_update` for a cached user; False if the user is not cached."""
        return await self._db.run_txn(
            "set_remote_cross_signing_keys",
            _set_remote_xsign_txn,
            user_id,
            {t: (k, _dump(obj)) for t, (k, obj) in keys.items()},
            now_ms,
        )

    async def mark_remote_device_list_stale(self, user_id: str) -> None:
        await self._db.run_txn(
            "mark_remote_device_list_stale", _mark_stale_txn, user_id
        )


# -- device keys ------------------------------------------------------------------------------
def _set_device_keys_txn(
    txn: Txn, user_id: str, device_id: str, text: str, now_ms: int
) -> bool:
    txn.execute(
        "SELECT key_json FROM e2e_device_keys WHERE user_id = ? AND device_id = ?",
        (user_id, device_id),
    )
    row = txn.fetchone()
    if row is not None and _load(row[0]) == _load(text):
        return False
    txn.execute(
        "INSERT INTO e2e_device_keys (user_id, device_id, key_json, added_ts)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (user_id, device_id)"
        " DO UPDATE SET key_json = excluded.key_json, added_ts = excluded.added_ts",
        (user_id, device_id, text, now_ms),
    )
    return True


def _get_device_keys_txn(txn: Txn, query: dict[str, list[str]]) -> list[DeviceKeysRow]:
    out: list[DeviceKeysRow] = []
    base = (
        "SELECT k.user_id, k.device_id, k.key_json, d.display_name"
        " FROM e2e_device_keys AS k JOIN devices AS d"
        " ON d.user_id = k.user_id AND d.device_id = k.device_id"
        " WHERE k.user_id = ?"
    )
    for user_id, device_ids in sorted(query.items()):
        if device_ids:
            cond, params = txn.in_list("k.device_id", device_ids)
            txn.execute(f"{base} AND {cond}", (user_id, *params))
        else:
            txn.execute(base, (user_id,))
        out.extend(
            DeviceKeysRow(str(r[0]), str(r[1]), _load(r[2]), r[3])
            for r in txn.fetchall()
        )
    return out


def _delete_device_keys_txn(txn: Txn, user_id: str, device_ids: list[str]) -> None:
    if not device_ids:
        return
    cond, params = txn.in_list("device_id", device_ids)
    for table in ("e2e_device_keys", "e2e_one_time_keys", "e2e_fallback_keys"):
        txn.execute(
            f"DELETE FROM {table} WHERE user_id = ? AND {cond}", (user_id, *params)
        )
    cond, params = txn.in_list("target_key_id", device_ids)
    txn.execute(
        f"DELETE FROM e2e_cross_signing_signatures WHERE target_user_id = ? AND {cond}",
        (user_id, *params),
    )
    cond, params = txn.in_list("device_id", device_ids)
    txn.execute(
        f"DELETE FROM e2e_dehydrated_devices WHERE user_id = ? AND {cond}",
        (user_id, *params),
    )


# -- one-time and fallback keys ---------------------------------------------------------------
def _add_otks_txn(
    txn: Txn, user_id: str, device_id: str, keys: list[NewKey], now_ms: int
) -> list[str]:
    cond, params = txn.in_list("key_id", sorted({k.key_id for k in keys}))
    txn.execute(
        "SELECT algorithm, key_id, key_json FROM e2e_one_time_keys"
        f" WHERE user_id = ? AND device_id = ? AND {cond}",
        (user_id, device_id, *params),
    )
    existing = {(str(r[0]), str(r[1])): decode_json(r[2]) for r in txn.fetchall()}
    conflicts: list[str] = []
    new_rows: list[tuple[str, str, str, str, str, int]] = []
    for k in keys:
        old = existing.get((k.algorithm, k.key_id), _MISSING)
        if old is _MISSING:
            new_rows.append(
                (
                    user_id,
                    device_id,
                    k.algorithm,
                    k.key_id,
                    encode_json(k.key).decode(),
                    now_ms,
                )
            )
            existing[(k.algorithm, k.key_id)] = k.key
        elif old != k.key:
            conflicts.append(f"{k.algorithm}:{k.key_id}")
    if conflicts:
        return conflicts
    txn.executemany(
        "INSERT INTO e2e_one_time_keys"
        " (user_id, device_id, algorithm, key_id, key_json, added_ts)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        new_rows,
    )
    return []


_MISSING: Final = object()


def _count_otks_txn(txn: Txn, user_id: str, device_id: str) -> dict[str, int]:
    txn.execute(
        "SELECT algorithm, COUNT(*) FROM e2e_one_time_keys"
        " WHERE user_id = ? AND device_id = ? GROUP BY algorithm",
        (user_id, device_id),
    )
    return {str(r[0]): int(r[1]) for r in txn.fetchall()}


def _set_fallback_txn(
    txn: Txn, user_id: str, device_id: str, keys: list[NewKey]
) -> None:
    for k in keys:
        text = encode_json(k.key).decode()
        txn.execute(
            "SELECT key_id, key_json FROM e2e_fallback_keys"
            " WHERE user_id = ? AND device_id = ? AND algorithm = ?",
            (user_id, device_id, k.algorithm),
        )
        row = txn.fetchone()
        if row is not None and row[0] == k.key_id and decode_json(row[1]) == k.key:
            continue
        txn.execute(
            "INSERT INTO e2e_fallback_keys"
            " (user_id, device_id, algorithm, key_id, key_json, used)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, device_id, algorithm)"
            " DO UPDATE SET key_id = excluded.key_id, key_json = excluded.key_json,"
            " used = excluded.used",
            (user_id, device_id, k.algorithm, k.key_id, text, False),
        )


def _unused_fallback_txn(txn: Txn, user_id: str, device_id: str) -> list[str]:
    txn.execute(
        "SELECT algorithm FROM e2e_fallback_keys"
        " WHERE user_id = ? AND device_id = ? AND used = ? ORDER BY algorithm",
        (user_id, device_id, False),
    )
    return [str(r[0]) for r in txn.fetchall()]


def _take_one_time_key(
    txn: Txn, user_id: str, device_id: str, algorithm: str
) -> tuple[str, Any] | None:
    # PostgreSQL: concurrent claims lock different keys instead of queueing on (and
    # then losing) the same first one. SQLite serialises writers anyway.
    lock = " FOR UPDATE SKIP LOCKED" if txn.engine_name == "postgres" else ""
    for _ in range(_CLAIM_ATTEMPTS):
        txn.execute(
            "SELECT key_id, key_json FROM e2e_one_time_keys"
            " WHERE user_id = ? AND device_id = ? AND algorithm = ?"
            " ORDER BY key_id LIMIT 1" + lock,
            (user_id, device_id, algorithm),
        )
        row = txn.fetchone()
        if row is None:
            return None
        txn.execute(
            "DELETE FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ?"
            " AND algorithm = ? AND key_id = ?",
            (user_id, device_id, algorithm, row[0]),
        )
        if txn.rowcount == 1:  # 0: a concurrent claim took it first
            return str(row[0]), decode_json(row[1])
    return None


def _claim_txn(txn: Txn, claims: list[tuple[str, str, str]]) -> list[ClaimedKey]:
    out: list[ClaimedKey] = []
    for user_id, device_id, algorithm in claims:
        taken = _take_one_time_key(txn, user_id, device_id, algorithm)
        if taken is None:
            txn.execute(
                "SELECT key_id, key_json FROM e2e_fallback_keys"
                " WHERE user_id = ? AND device_id = ? AND algorithm = ?",
                (user_id, device_id, algorithm),
            )
            row = txn.fetchone()
            if row is None:
                continue
            txn.execute(
                "UPDATE e2e_fallback_keys SET used = ?"
                " WHERE user_id = ? AND device_id = ? AND algorithm = ?",
                (True, user_id, device_id, algorithm),
            )
            taken = (str(row[0]), decode_json(row[1]))
        out.append(ClaimedKey(user_id, device_id, algorithm, taken[0], taken[1]))
    return out


# -- cross-signing ----------------------------------------------------------------------------
def _get_xsign_txn(txn: Txn, user_ids: list[str]) -> dict[str, dict[str, JsonDict]]:
    cond, params = txn.in_list("user_id", user_ids)
    txn.execute(
        f"SELECT user_id, key_type, key_json FROM e2e_cross_signing_keys WHERE {cond}",
        params,
    )
    out: dict[str, dict[str, JsonDict]] = {}
    for user_id, key_type, text in txn.fetchall():
        out.setdefault(str(user_id), {})[str(key_type)] = _load(text)
    return out


def _upsert_xsign(
    txn: Txn, user_id: str, keys: dict[str, tuple[str, str]], now_ms: int
) -> None:
    for key_type, (key_id, text) in sorted(keys.items()):
        txn.execute(
            "INSERT INTO e2e_cross_signing_keys"
            " (user_id, key_type, key_id, key_json, added_ts) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (user_id, key_type) DO UPDATE SET key_id = excluded.key_id,"
            " key_json = excluded.key_json, added_ts = excluded.added_ts",
            (user_id, key_type, key_id, text, now_ms),
        )


def _set_xsign_txn(
    txn: Txn, user_id: str, keys: dict[str, tuple[str, str]], now_ms: int
) -> None:
    _upsert_xsign(txn, user_id, keys, now_ms)


def _add_signatures_txn(txn: Txn, rows: list[SignatureRow]) -> None:
    txn.executemany(
        "INSERT INTO e2e_cross_signing_signatures"
        " (signer_user_id, signer_key_id, target_user_id, target_key_id, signature)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT"
        " (target_user_id, target_key_id, signer_user_id, signer_key_id)"
        " DO UPDATE SET signature = excluded.signature",
        [
            (
                r.signer_user_id,
                r.signer_key_id,
                r.target_user_id,
                r.target_key_id,
                r.signature,
            )
            for r in rows
        ],
    )


def _get_signatures_txn(
    txn: Txn, targets: list[str], signers: list[str]
) -> list[SignatureRow]:
    t_cond, t_params = txn.in_list("target_user_id", targets)
    s_cond, s_params = txn.in_list("signer_user_id", signers)
    txn.execute(
        "SELECT signer_user_id, signer_key_id, target_user_id, target_key_id, signature"
        f" FROM e2e_cross_signing_signatures WHERE {t_cond} AND {s_cond}",
        (*t_params, *s_params),
    )
    return [SignatureRow(*(str(c) for c in r)) for r in txn.fetchall()]


# -- outbound stream IDs ----------------------------------------------------------------------
def _get_outbound_id_txn(txn: Txn, user_id: str) -> int:
    txn.execute(
        "SELECT stream_id FROM e2e_device_list_outbound WHERE user_id = ?", (user_id,)
    )
    row = txn.fetchone()
    return int(row[0]) if row is not None else 0


def _allocate_ids_txn(
    txn: Txn, user_id: str, count: int
) -> tuple[int | None, list[int]]:
    txn.execute(
        "SELECT stream_id FROM e2e_device_list_outbound WHERE user_id = ?"
        + txn.engine.for_update,
        (user_id,),
    )
    row = txn.fetchone()
    prev = int(row[0]) if row is not None else None
    start = (prev or 0) + 1
    ids = list(range(start, start + count))
    txn.execute(
        "INSERT INTO e2e_device_list_outbound (user_id, stream_id) VALUES (?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET stream_id = excluded.stream_id",
        (user_id, ids[-1] if ids else start - 1),
    )
    return prev, ids


# -- dehydrated devices -----------------------------------------------------------------------
def _set_dehydrated_txn(
    txn: Txn, user_id: str, device_id: str, device_data: str
) -> str | None:
    txn.execute(
        "SELECT device_id FROM e2e_dehydrated_devices WHERE user_id = ?"
        + txn.engine.for_update,
        (user_id,),
    )
    row = txn.fetchone()
    txn.execute(
        "INSERT INTO e2e_dehydrated_devices (user_id, device_id, device_data)"
        " VALUES (?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
        " device_id = excluded.device_id, device_data = excluded.device_data",
        (user_id, device_id, device_data),
    )
    return str(row[0]) if row is not None else None


def _get_dehydrated_txn(txn: Txn, user_id: str) -> tuple[str, JsonDict] | None:
    txn.execute(
        "SELECT device_id, device_data FROM e2e_dehydrated_devices WHERE user_id = ?",
        (user_id,),
    )
    row = txn.fetchone()
    return (str(row[0]), _load(row[1])) if row is not None else None


# -- remote cache -----------------------------------------------------------------------------
def _get_remote_lists_txn(txn: Txn, user_ids: list[str]) -> dict[str, RemoteDeviceList]:
    cond, params = txn.in_list("user_id", user_ids)
    txn.execute(
        f"SELECT user_id, stream_id, stale FROM e2e_remote_device_lists WHERE {cond}",
        params,
    )
    return {
        str(r[0]): RemoteDeviceList(str(r[0]), int(r[1]), bool(r[2]))
        for r in txn.fetchall()
    }


def _get_remote_devices_txn(txn: Txn, user_id: str) -> list[RemoteDevice]:
    txn.execute(
        "SELECT device_id, display_name, key_json FROM e2e_remote_devices"
        " WHERE user_id = ? ORDER BY device_id",
        (user_id,),
    )
    return [
        RemoteDevice(str(r[0]), r[1], _load(r[2]) if r[2] is not None else None)
        for r in txn.fetchall()
    ]


def _upsert_remote_device(txn: Txn, user_id: str, device: RemoteDevice) -> None:
    txn.execute(
        "INSERT INTO e2e_remote_devices (user_id, device_id, display_name, key_json)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (user_id, device_id) DO UPDATE SET"
        " display_name = excluded.display_name, key_json = excluded.key_json",
        (
            user_id,
            device.device_id,
            device.display_name,
            _dump(device.keys) if device.keys is not None else None,
        ),
    )


def _replace_remote_txn(
    txn: Txn,
    user_id: str,
    stream_id: int,
    devices: list[RemoteDevice],
    cross_signing: dict[str, tuple[str, str]],
    now_ms: int,
) -> None:
    txn.execute("DELETE FROM e2e_remote_devices WHERE user_id = ?", (user_id,))
    for device in devices:
        _upsert_remote_device(txn, user_id, device)
    txn.execute("DELETE FROM e2e_cross_signing_keys WHERE user_id = ?", (user_id,))
    _upsert_xsign(txn, user_id, cross_signing, now_ms)
    txn.execute(
        "INSERT INTO e2e_remote_device_lists (user_id, stream_id, stale, updated_ts)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
        " stream_id = excluded.stream_id, stale = excluded.stale,"
        " updated_ts = excluded.updated_ts",
        (user_id, stream_id, False, now_ms),
    )


def _apply_remote_update_txn(
    txn: Txn,
    user_id: str,
    stream_id: int,
    prev_ids: list[int],
    device: RemoteDevice,
    deleted: bool,
    now_ms: int,
) -> RemoteUpdate:
    txn.execute(
        "SELECT stream_id, stale FROM e2e_remote_device_lists WHERE user_id = ?"
        + txn.engine.for_update,
        (user_id,),
    )
    row = txn.fetchone()
    if row is None:
        return RemoteUpdate.UNTRACKED
    known, stale = int(row[0]), bool(row[1])
    if stale:
        return RemoteUpdate.STALE
    if stream_id <= known:
        return RemoteUpdate.OLD
    if any(p != known for p in prev_ids):
        txn.execute(
            "UPDATE e2e_remote_device_lists SET stale = ? WHERE user_id = ?",
            (True, user_id),
        )
        return RemoteUpdate.STALE
    if deleted:
        txn.execute(
            "DELETE FROM e2e_remote_devices WHERE user_id = ? AND device_id = ?",
            (user_id, device.device_id),
        )
    else:
        _upsert_remote_device(txn, user_id, device)
    txn.execute(
        "UPDATE e2e_remote_device_lists SET stream_id = ?, updated_ts = ?"
        " WHERE user_id = ?",
        (stream_id, now_ms, user_id),
    )
    return RemoteUpdate.APPLIED


def _set_remote_xsign_txn(
    txn: Txn, user_id: str, keys: dict[str, tuple[str, str]], now_ms: int
) -> bool:
    txn.execute("SELECT 1 FROM e2e_remote_device_lists WHERE user_id = ?", (user_id,))
    if txn.fetchone() is None:
        return False
    _upsert_xsign(txn, user_id, keys, now_ms)
    return True


def _mark_stale_txn(txn: Txn, user_id: str) -> None:
    txn.execute(
        "UPDATE e2e_remote_device_lists SET stale = ? WHERE user_id = ?",
        (True, user_id),
    )
