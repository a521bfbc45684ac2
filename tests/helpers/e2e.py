"""Key material for E2E tests, signed with `signedjson` (an independent oracle, not
Ranvier's own signing code)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import signedjson.key
import signedjson.sign

from tests.helpers.sync import User

JsonDict = dict[str, Any]


@dataclass
class Ed25519:
    key: Any  # signedjson's SigningKey
    public: str

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.key.version}"

    def sign(self, obj: JsonDict, user_id: str) -> JsonDict:
        # sign_json mutates nested `signatures`: never share them with the input.
        signed: JsonDict = signedjson.sign.sign_json(
            copy.deepcopy(obj), user_id, self.key
        )
        return signed


def new_key(version: str | None = None) -> Ed25519:
    """An ed25519 key whose key ID is `ed25519:<version>` (default: its public key)."""
    key = signedjson.key.generate_signing_key("tmp")
    public = signedjson.key.encode_verify_key_base64(signedjson.key.get_verify_key(key))
    key.version = version if version is not None else public
    return Ed25519(key, public)


def device_keys(user_id: str, device_id: str) -> tuple[Ed25519, JsonDict]:
    """Self-signed device keys, as a client uploads them."""
    ed = new_key(device_id)
    obj: JsonDict = {
        "user_id": user_id,
        "device_id": device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            f"curve25519:{device_id}": "c" * 43,
            f"ed25519:{device_id}": ed.public,
        },
    }
    return ed, ed.sign(obj, user_id)


def cross_signing_key(
    user_id: str, usage: str, signer: Ed25519 | None = None
) -> tuple[Ed25519, JsonDict]:
    ed = new_key()
    obj: JsonDict = {
        "user_id": user_id,
        "usage": [usage],
        "keys": {f"ed25519:{ed.public}": ed.public},
    }
    return ed, signer.sign(obj, user_id) if signer is not None else obj


def otks(prefix: str, n: int) -> JsonDict:
    return {
        f"signed_curve25519:{prefix}{i}": {"key": f"{prefix}key{i}"} for i in range(n)
    }


@dataclass
class CrossSigning:
    master: Ed25519
    self_signing: Ed25519
    user_signing: Ed25519
    body: JsonDict


def cross_signing_set(user_id: str) -> CrossSigning:
    master, master_obj = cross_signing_key(user_id, "master")
    ssk, ssk_obj = cross_signing_key(user_id, "self_signing", master)
    usk, usk_obj = cross_signing_key(user_id, "user_signing", master)
    return CrossSigning(
        master,
        ssk,
        usk,
        {
            "master_key": master_obj,
            "self_signing_key": ssk_obj,
            "user_signing_key": usk_obj,
        },
    )


async def upload_device_keys(user: User) -> tuple[Ed25519, JsonDict]:
    ed, keys = device_keys(user.user_id, user.device_id)
    await user.ok("POST", "/keys/upload", {"device_keys": keys})
    return ed, keys
