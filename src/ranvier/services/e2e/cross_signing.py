"""Cross-signing (spec: C-S API > End-to-End Encryption > Cross-signing).

`POST /keys/device_signing/upload`: the master key, and self-signing / user-signing keys
signed by it (the new master key when one is uploaded with them, else the stored one).
The first upload needs no password (MSC3967, as Synapse); uploading exactly the stored
keys again is a no-op that needs none either; replacing keys needs UIA — the API layer
asks `needs_auth` before `upload`.

`POST /keys/signatures/upload`: the requester's self-signing key signs their own
devices; their devices sign their own master key; their user-signing key signs other
users' master keys. Each signature is checked against the stored key object it claims
to sign (the object must be that key, signatures aside) and against the signing key;
only the signature itself is stored and merged in when the key is served. Failures are
reported per key, never for the whole request.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ranvier.core.crypto.e2e_keys import (
    MASTER,
    SELF_SIGNING,
    USER_SIGNING,
    CrossSigningKey,
    E2eKeyError,
    ed25519_verify_key,
    parse_cross_signing_key,
    signature_of,
    signed_content,
    verify_signed_by,
)
from ranvier.core.crypto.keys import ED25519
from ranvier.core.errors import MatrixError
from ranvier.services.e2e.device_lists import DeviceListPublisher
from ranvier.storage.stores.e2e_keys import DeviceKeysRow, SignatureRow
from ranvier.util.clock import Clock

__all__ = ["CrossSigningService", "SigningKeyUpload"]

JsonDict = dict[str, Any]


class CrossSigningStore(Protocol):
    async def get_cross_signing_keys(
        self, user_ids: Collection[str]
    ) -> dict[str, dict[str, JsonDict]]: ...

    async def set_cross_signing_keys(
        self,
        user_id: str,
        keys: Mapping[str, tuple[str, Mapping[str, Any]]],
        now_ms: int,
    ) -> None: ...

    async def add_signatures(self, rows: Sequence[SignatureRow]) -> None: ...

    async def get_device_keys(
        self, query: Mapping[str, Collection[str]]
    ) -> list[DeviceKeysRow]: ...


class SignedDevices(Protocol):
    async def devices_signed(
        self, user_id: str, device_ids: Collection[str]
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class SigningKeyUpload:
    """A validated upload: the keys to store (by type) and whether it changes anything."""

    user_id: str
    keys: Mapping[str, CrossSigningKey]
    first_upload: bool
    changes_something: bool


class _Failure(Exception):
    def __init__(self, errcode: str, message: str) -> None:
        super().__init__(message)
        self.errcode = errcode
        self.message = message


@dataclass
class _SignatureBatch:
    rows: list[SignatureRow] = field(default_factory=list)
    own_devices: set[str] = field(default_factory=set)
    others: set[str] = field(default_factory=set)
    own_master: bool = False
    failures: dict[str, dict[str, JsonDict]] = field(default_factory=dict)

    def fail(self, user_id: str, key_id: str, e: _Failure) -> None:
        self.failures.setdefault(user_id, {})[key_id] = {
            "errcode": e.errcode,
            "error": e.message,
        }


def _bad(e: E2eKeyError) -> MatrixError:
    code = "M_INVALID_SIGNATURE" if e.bad_signature else "M_INVALID_PARAM"
    return MatrixError(400, code, e.message)


def _parse_stored(
    stored: Mapping[str, JsonDict], user_id: str, key_type: str
) -> CrossSigningKey | None:
    obj = stored.get(key_type)
    if obj is None:
        return None
    try:
        return parse_cross_signing_key(obj, user_id, key_type)
    except E2eKeyError:
        return None


class CrossSigningService:
    def __init__(
        self,
        store: CrossSigningStore,
        publisher: DeviceListPublisher,
        devices: SignedDevices,
        clock: Clock,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._devices = devices
        self._clock = clock

    # -- device_signing/upload ---------------------------------------------------------------
    async def prepare_upload(
        self,
        user_id: str,
        uploaded: Mapping[str, Any],
    ) -> SigningKeyUpload:
        """Validate an upload (`uploaded`: key type -> object, absent types left out)."""
        stored = (await self._store.get_cross_signing_keys([user_id])).get(user_id, {})
        keys: dict[str, CrossSigningKey] = {}
        try:
            for key_type in (MASTER, SELF_SIGNING, USER_SIGNING):
                if uploaded.get(key_type) is not None:
                    keys[key_type] = parse_cross_signing_key(
                        uploaded[key_type], user_id, key_type
                    )
            master = keys.get(MASTER) or _parse_stored(stored, user_id, MASTER)
            for key_type in (SELF_SIGNING, USER_SIGNING):
                if key_type not in keys:
                    continue
                if master is None:
                    raise MatrixError(
                        400,
                        "M_MISSING_PARAM",
                        f"No master key to check the {key_type} key with.",
                    )
                master.verify_signed(keys[key_type].content)
        except E2eKeyError as e:
            raise _bad(e) from None
        changes = any(stored.get(t) != dict(k.content) for t, k in keys.items())
        return SigningKeyUpload(user_id, keys, MASTER not in stored, changes)

    @staticmethod
    def needs_auth(upload: SigningKeyUpload) -> bool:
        return not upload.first_upload and upload.changes_something

    async def upload(self, upload: SigningKeyUpload) -> None:
        if not upload.changes_something:
            return
        user_id = upload.user_id
        await self._store.set_cross_signing_keys(
            user_id,
            {t: (k.public_key, k.content) for t, k in upload.keys.items()},
            self._clock.time_msec(),
        )
        if MASTER in upload.keys or SELF_SIGNING in upload.keys:
            stored = (await self._store.get_cross_signing_keys([user_id])).get(
                user_id, {}
            )
            await self._publisher.signing_keys_changed(
                user_id, stored.get(MASTER), stored.get(SELF_SIGNING)
            )
        else:
            await self._publisher.users_changed([user_id])

    # -- signatures/upload -------------------------------------------------------------------
    async def upload_signatures(
        self, requester: str, signed: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, dict[str, JsonDict]]:
        """Returns the `failures` object."""
        users = [requester, *(u for u in signed if u != requester)]
        stored = await self._store.get_cross_signing_keys(users)
        mine = stored.get(requester, {})
        batch = _SignatureBatch()
        for user_id, per_key in sorted(signed.items()):
            for key_id, obj in sorted(per_key.items()):
                try:
                    if not isinstance(obj, Mapping):
                        raise _Failure("M_INVALID_PARAM", "Signed object expected.")
                    if user_id == requester:
                        await self._own(requester, mine, key_id, obj, batch)
                    else:
                        self._other(
                            requester, mine, user_id, stored, key_id, obj, batch
                        )
                except _Failure as e:
                    batch.fail(user_id, key_id, e)
        await self._store.add_signatures(batch.rows)
        if batch.own_devices:
            await self._devices.devices_signed(requester, batch.own_devices)
        if batch.own_master or batch.others:
            await self._publisher.users_changed({requester, *batch.others})
        return batch.failures

    async def _own(
        self,
        requester: str,
        mine: Mapping[str, JsonDict],
        key_id: str,
        obj: Mapping[str, Any],
        batch: _SignatureBatch,
    ) -> None:
        master = _parse_stored(mine, requester, MASTER)
        if master is not None and key_id == master.public_key:
            await self._own_master(requester, master, obj, batch)
            return
        rows = await self._store.get_device_keys({requester: [key_id]})
        if not rows:
            raise _Failure("M_NOT_FOUND", f"No device or key {key_id}.")
        ssk = _parse_stored(mine, requester, SELF_SIGNING)
        if ssk is None:
            raise _Failure("M_MISSING_PARAM", "No self-signing key to sign with.")
        _same_object(rows[0].keys, obj)
        batch.rows.append(_checked_row(requester, ssk, requester, key_id, obj))
        batch.own_devices.add(key_id)

    async def _own_master(
        self,
        requester: str,
        master: CrossSigningKey,
        obj: Mapping[str, Any],
        batch: _SignatureBatch,
    ) -> None:
        """The user's devices signing their own master key."""
        _same_object(master.content, obj)
        signatures = obj.get("signatures")
        by_user = signatures.get(requester) if isinstance(signatures, Mapping) else None
        if not isinstance(by_user, Mapping):
            raise _Failure("M_INVALID_SIGNATURE", "No device signature.")
        device_ids = [
            k.split(":", 1)[1]
            for k in by_user
            if isinstance(k, str) and k.startswith(ED25519 + ":")
        ]
        rows = await self._store.get_device_keys({requester: device_ids})
        added = 0
        for row in rows:
            sig_key = f"{ED25519}:{row.device_id}"
            device_keys = row.keys.get("keys")
            try:
                key = ed25519_verify_key(
                    sig_key,
                    device_keys.get(sig_key) if isinstance(device_keys, dict) else None,
                )
                verify_signed_by(obj, requester, key)
            except E2eKeyError:
                continue
            signature = signature_of(obj, requester, sig_key)
            assert signature is not None
            batch.rows.append(
                SignatureRow(
                    requester, sig_key, requester, master.public_key, signature
                )
            )
            added += 1
        if not added:
            raise _Failure("M_INVALID_SIGNATURE", "No valid device signature.")
        batch.own_master = True

    def _other(
        self,
        requester: str,
        mine: Mapping[str, JsonDict],
        user_id: str,
        stored: Mapping[str, Mapping[str, JsonDict]],
        key_id: str,
        obj: Mapping[str, Any],
        batch: _SignatureBatch,
    ) -> None:
        usk = _parse_stored(mine, requester, USER_SIGNING)
        if usk is None:
            raise _Failure("M_MISSING_PARAM", "No user-signing key to sign with.")
        target = _parse_stored(stored.get(user_id, {}), user_id, MASTER)
        if target is None or target.public_key != key_id:
            raise _Failure("M_NOT_FOUND", f"{key_id} is not {user_id}'s master key.")
        _same_object(target.content, obj)
        batch.rows.append(_checked_row(requester, usk, user_id, key_id, obj))
        batch.others.add(user_id)


def _same_object(stored: Mapping[str, Any], uploaded: Mapping[str, Any]) -> None:
    if signed_content(stored) != signed_content(uploaded):
        raise _Failure("M_INVALID_PARAM", "The signed object is not the stored key.")


def _checked_row(
    signer: str,
    key: CrossSigningKey,
    target_user: str,
    target_key: str,
    obj: Mapping[str, Any],
) -> SignatureRow:
    signature = signature_of(obj, signer, key.key_id)
    if signature is None:
        raise _Failure("M_INVALID_SIGNATURE", f"Not signed with {key.key_id}.")
    try:
        key.verify_signed(obj)
    except E2eKeyError as e:
        raise _Failure("M_INVALID_SIGNATURE", e.message) from None
    return SignatureRow(signer, key.key_id, target_user, target_key, signature)
