"""Pure E2E checks: device-key self-signatures, cross-signing key parsing, and the key
backup replacement rule. Keys are signed with signedjson (an independent oracle)."""

from __future__ import annotations

from typing import Any

import pytest

from ranvier.core.crypto.e2e_keys import (
    E2eKeyError,
    check_device_keys,
    parse_cross_signing_key,
    signed_content,
)
from ranvier.core.key_backup import (
    BackupKeyError,
    RoomKeyBackup,
    parse_room_key,
    should_replace,
)
from tests.helpers.e2e import cross_signing_key, device_keys

USER = "@alice:test"


def test_device_keys_self_signature_is_checked_only_when_asked() -> None:
    _, keys = device_keys(USER, "DEV")
    strict = {"verify_self_signature": True}
    check_device_keys(keys, USER, "DEV", **strict)
    tampered = {**keys, "algorithms": ["changed"]}
    with pytest.raises(E2eKeyError) as e:
        check_device_keys(tampered, USER, "DEV", **strict)
    assert e.value.bad_signature
    broken_key = {**keys, "keys": {**keys["keys"], "ed25519:DEV": "!!notbase64"}}
    with pytest.raises(E2eKeyError):
        check_device_keys(broken_key, USER, "DEV", **strict)
    # /keys/upload (as Synapse): the owner and the shape, not the self-signature.
    check_device_keys(tampered, USER, "DEV")
    check_device_keys(broken_key, USER, "DEV")
    check_device_keys({**keys, "keys": {}, "signatures": {}}, USER, "DEV")
    with pytest.raises(E2eKeyError) as e:
        check_device_keys(keys, "@bob:test", "DEV")
    assert not e.value.bad_signature
    with pytest.raises(E2eKeyError):
        check_device_keys(keys, USER, "OTHER")
    for missing in ("signatures", "keys", "algorithms"):
        with pytest.raises(E2eKeyError) as e:
            check_device_keys(
                {k: v for k, v in keys.items() if k != missing}, USER, "DEV"
            )
        assert e.value.malformed
    with pytest.raises(E2eKeyError):
        check_device_keys({**keys, "signatures": "x"}, USER, "DEV")


def test_cross_signing_keys_are_parsed_and_checked() -> None:
    master_ed, master = cross_signing_key(USER, "master")
    parsed = parse_cross_signing_key(master, USER, "master")
    assert parsed.public_key == master_ed.public
    assert parsed.key_id == f"ed25519:{master_ed.public}"
    _, ssk = cross_signing_key(USER, "self_signing", master_ed)
    parsed.verify_signed(ssk)
    _, unsigned = cross_signing_key(USER, "self_signing")
    with pytest.raises(E2eKeyError):
        parsed.verify_signed(unsigned)
    bad: list[Any] = [
        "x",
        {**master, "usage": ["self_signing"]},
        {**master, "user_id": "@bob:test"},
        {**master, "keys": {"ed25519:wrong": master_ed.public}},
        {**master, "keys": {}},
        {**master, "keys": {"ed25519:AAAA": "AAAA"}},
        {**master, "signatures": []},
    ]
    for obj in bad:
        with pytest.raises(E2eKeyError):
            parse_cross_signing_key(obj, USER, "master")


def test_signed_content_ignores_signatures_and_unsigned() -> None:
    assert signed_content({"a": 1, "signatures": {}, "unsigned": {}}) == {"a": 1}


def k(index: int, forwarded: int = 0, verified: bool = False) -> RoomKeyBackup:
    return RoomKeyBackup(index, forwarded, verified, {})


@pytest.mark.parametrize(
    ("current", "new", "replace"),
    [
        (None, k(5), True),
        (k(5), k(4), True),
        (k(5), k(6), False),
        (k(5, 2), k(5, 1), True),
        (k(5, 1), k(5, 1), False),
        (k(0), k(9, verified=True), True),
        (k(9, verified=True), k(0), False),
        (k(5, verified=True), k(4, verified=True), True),
    ],
)
def test_backup_keeps_the_better_key(
    current: RoomKeyBackup | None, new: RoomKeyBackup, replace: bool
) -> None:
    assert should_replace(current, new) is replace


def test_backup_key_parsing() -> None:
    good = {
        "first_message_index": 1,
        "forwarded_count": 0,
        "is_verified": False,
        "session_data": {"x": 1},
    }
    assert parse_room_key(good).to_json() == good
    # Opaque to the core: the service requires an object for the spec's algorithm.
    opaque = {**good, "session_data": "anopaquestring"}
    assert parse_room_key(opaque).to_json() == opaque
    bad_keys: list[Any] = [
        [],
        {**good, "first_message_index": True},
        {**good, "forwarded_count": -1},
        {**good, "forwarded_count": 2**60},
        {**good, "is_verified": 1},
        {k: v for k, v in good.items() if k != "session_data"},
    ]
    for bad in bad_keys:
        with pytest.raises(BackupKeyError):
            parse_room_key(bad)
