"""E2E key and key-backup stores, on both engines."""

from __future__ import annotations

import asyncio

from ranvier.core.key_backup import RoomKeyBackup
from ranvier.storage.database import Database
from ranvier.storage.stores.e2e_keys import (
    E2eKeyStore,
    NewKey,
    RemoteDevice,
    RemoteUpdate,
    SignatureRow,
)
from ranvier.storage.stores.key_backup import (
    BackedUpKey,
    DeleteVersionStatus,
    KeyBackupStore,
    PutStatus,
)
from ranvier.storage.txn import Txn

ALICE = "@alice:test"
BOB = "@bob:remote"
NOW = 1_700_000_000_000


async def add_device(db: Database, user_id: str, device_id: str) -> None:
    def txn_fn(txn: Txn) -> None:
        txn.execute(
            "INSERT INTO devices (user_id, device_id, display_name, created_ts)"
            " VALUES (?, ?, ?, ?)",
            (user_id, device_id, f"name of {device_id}", NOW),
        )

    await db.run_txn("test_add_device", txn_fn)


async def test_device_keys_round_trip_and_deletion(database: Database) -> None:
    store = E2eKeyStore(database)
    await add_device(database, ALICE, "D1")
    keys = {"user_id": ALICE, "device_id": "D1", "keys": {"ed25519:D1": "k"}}
    assert await store.set_device_keys(ALICE, "D1", keys, NOW)
    assert not await store.set_device_keys(ALICE, "D1", dict(keys), NOW)
    assert await store.set_device_keys(ALICE, "D1", {**keys, "algorithms": []}, NOW)
    # Keys of a device row that does not exist are never served.
    await store.set_device_keys(ALICE, "GONE", {"device_id": "GONE"}, NOW)
    rows = await store.get_device_keys({ALICE: []})
    assert [(r.device_id, r.display_name) for r in rows] == [("D1", "name of D1")]
    assert rows[0].keys["algorithms"] == []
    assert await store.get_device_keys({ALICE: ["NOPE"]}) == []

    await store.add_one_time_keys(ALICE, "D1", [NewKey("curve25519", "a", "x")], NOW)
    await store.set_fallback_keys(ALICE, "D1", [NewKey("curve25519", "f", "y")])
    await store.add_signatures([SignatureRow(ALICE, "ed25519:ssk", ALICE, "D1", "sig")])
    await store.delete_device_keys(ALICE, ["D1"])
    assert await store.get_device_keys({ALICE: []}) == []
    assert await store.count_one_time_keys(ALICE, "D1") == {}
    assert await store.get_unused_fallback_key_types(ALICE, "D1") == []
    assert await store.get_signatures([ALICE], [ALICE]) == []


async def test_one_time_keys_conflicts_counts_and_claims(database: Database) -> None:
    store = E2eKeyStore(database)
    otks = [NewKey("signed_curve25519", f"k{i}", {"key": str(i)}) for i in range(3)]
    assert await store.add_one_time_keys(ALICE, "D", otks, NOW) == []
    assert await store.add_one_time_keys(ALICE, "D", otks[:1], NOW) == []  # same
    clash = [NewKey("signed_curve25519", "k0", {"key": "other"}), NewKey("c", "n", "x")]
    assert await store.add_one_time_keys(ALICE, "D", clash, NOW) == [
        "signed_curve25519:k0"
    ]
    assert await store.count_one_time_keys(ALICE, "D") == {"signed_curve25519": 3}

    await store.set_fallback_keys(ALICE, "D", [NewKey("signed_curve25519", "f", "F")])
    claim = [(ALICE, "D", "signed_curve25519")]
    taken = [(await store.claim_keys(claim))[0].key_id for _ in range(3)]
    assert sorted(taken) == ["k0", "k1", "k2"]
    assert await store.get_unused_fallback_key_types(ALICE, "D") == [
        "signed_curve25519"
    ]
    fallback = await store.claim_keys(claim)
    assert [(c.key_id, c.key) for c in fallback] == [("f", "F")]
    assert await store.get_unused_fallback_key_types(ALICE, "D") == []
    # Re-uploading the same fallback key keeps it used; a new one is unused.
    await store.set_fallback_keys(ALICE, "D", [NewKey("signed_curve25519", "f", "F")])
    assert await store.get_unused_fallback_key_types(ALICE, "D") == []
    await store.set_fallback_keys(ALICE, "D", [NewKey("signed_curve25519", "g", "G")])
    assert await store.get_unused_fallback_key_types(ALICE, "D") == [
        "signed_curve25519"
    ]
    assert await store.claim_keys([(ALICE, "NODEVICE", "signed_curve25519")]) == []


async def test_concurrent_claims_never_share_a_key(database: Database) -> None:
    store = E2eKeyStore(database)
    keys = [NewKey("signed_curve25519", f"k{i:02}", {"key": str(i)}) for i in range(20)]
    await store.add_one_time_keys(ALICE, "D", keys, NOW)
    claim = [(ALICE, "D", "signed_curve25519")]
    results = await asyncio.gather(*(store.claim_keys(claim) for _ in range(20)))
    taken = [r[0].key_id for r in results]
    assert sorted(taken) == sorted(k.key_id for k in keys)
    assert await store.count_one_time_keys(ALICE, "D") == {}


async def test_cross_signing_keys_and_signatures(database: Database) -> None:
    store = E2eKeyStore(database)
    master = {"user_id": ALICE, "usage": ["master"], "keys": {"ed25519:M": "M"}}
    await store.set_cross_signing_keys(ALICE, {"master": ("M", master)}, NOW)
    await store.set_cross_signing_keys(
        ALICE, {"self_signing": ("S", {"usage": ["self_signing"]})}, NOW
    )
    stored = await store.get_cross_signing_keys([ALICE, BOB])
    assert set(stored) == {ALICE}
    assert stored[ALICE]["master"] == master
    rows = [
        SignatureRow(ALICE, "ed25519:S", ALICE, "D1", "one"),
        SignatureRow(BOB, "ed25519:U", ALICE, "M", "two"),
    ]
    await store.add_signatures(rows)
    await store.add_signatures([SignatureRow(ALICE, "ed25519:S", ALICE, "D1", "new")])
    mine = await store.get_signatures([ALICE], [ALICE])
    assert [(r.target_key_id, r.signature) for r in mine] == [("D1", "new")]
    assert len(await store.get_signatures([ALICE], [ALICE, BOB])) == 2


async def test_outbound_device_list_stream_ids(database: Database) -> None:
    store = E2eKeyStore(database)
    assert await store.get_device_list_stream_id(ALICE) == 0
    assert await store.allocate_device_list_stream_ids(ALICE, 2) == (None, [1, 2])
    assert await store.allocate_device_list_stream_ids(ALICE, 1) == (2, [3])
    assert await store.get_device_list_stream_id(ALICE) == 3
    assert await store.allocate_device_list_stream_ids(BOB, 1) == (None, [1])


async def test_remote_device_list_cache(database: Database) -> None:
    store = E2eKeyStore(database)
    d1 = RemoteDevice("D1", None, {"device_id": "D1"})
    assert (
        await store.apply_remote_device_update(
            BOB, 5, [4], d1, deleted=False, now_ms=NOW
        )
        is RemoteUpdate.UNTRACKED
    )
    await store.replace_remote_device_list(
        BOB, 5, [d1], {"master": ("M", {"usage": ["master"]})}, NOW
    )
    assert (await store.get_remote_device_lists([BOB]))[BOB].stream_id == 5
    d2 = RemoteDevice("D2", "phone", {"device_id": "D2"})
    assert (
        await store.apply_remote_device_update(
            BOB, 6, [5], d2, deleted=False, now_ms=NOW
        )
        is RemoteUpdate.APPLIED
    )
    assert [d.device_id for d in await store.get_remote_devices(BOB)] == ["D1", "D2"]
    assert (
        await store.apply_remote_device_update(
            BOB, 6, [5], d2, deleted=True, now_ms=NOW
        )
        is RemoteUpdate.OLD
    )
    assert (
        await store.apply_remote_device_update(
            BOB, 7, [6], d1, deleted=True, now_ms=NOW
        )
        is RemoteUpdate.APPLIED
    )
    assert [d.device_id for d in await store.get_remote_devices(BOB)] == ["D2"]
    # A gap: prev_id 8 was never seen.
    assert (
        await store.apply_remote_device_update(
            BOB, 9, [8], d1, deleted=False, now_ms=NOW
        )
        is RemoteUpdate.STALE
    )
    assert (await store.get_remote_device_lists([BOB]))[BOB].stale
    assert (
        await store.apply_remote_device_update(
            BOB, 10, [9], d1, deleted=False, now_ms=NOW
        )
        is RemoteUpdate.STALE
    )
    assert await store.set_remote_cross_signing_keys(
        BOB, {"self_signing": ("S", {"usage": ["self_signing"]})}, NOW
    )
    assert not await store.set_remote_cross_signing_keys("@x:remote", {}, NOW)
    # A resync replaces everything and clears the stale mark.
    await store.replace_remote_device_list(BOB, 10, [d1], {}, NOW)
    entry = (await store.get_remote_device_lists([BOB]))[BOB]
    assert (entry.stream_id, entry.stale) == (10, False)
    assert [d.device_id for d in await store.get_remote_devices(BOB)] == ["D1"]
    assert await store.get_cross_signing_keys([BOB]) == {}
    await store.mark_remote_device_list_stale(BOB)
    assert (await store.get_remote_device_lists([BOB]))[BOB].stale


def backup_key(index: int, verified: bool = False, forwarded: int = 0) -> RoomKeyBackup:
    return RoomKeyBackup(index, forwarded, verified, {"ciphertext": f"c{index}"})


async def test_key_backup_store(database: Database) -> None:
    store = KeyBackupStore(database)
    assert await store.get_version(ALICE) is None
    assert (await store.put_keys(ALICE, 1, [])).status is PutStatus.NO_BACKUP
    v1 = await store.create_version(ALICE, "alg", {"k": 1})
    v2 = await store.create_version(ALICE, "alg", {"k": 2})
    assert (v1, v2) == (1, 2)
    current = await store.get_version(ALICE)
    assert current is not None
    assert (current.version, current.auth_data, current.etag) == (2, {"k": 2}, 0)

    wrong = await store.put_keys(ALICE, 1, [BackedUpKey("!r", "s", backup_key(0))])
    assert (wrong.status, wrong.current_version) == (PutStatus.WRONG_VERSION, 2)
    ok = await store.put_keys(ALICE, 2, [BackedUpKey("!r", "s", backup_key(4))])
    assert (ok.status, ok.etag, ok.count) == (PutStatus.OK, 1, 1)
    same = await store.put_keys(ALICE, 2, [BackedUpKey("!r", "s", backup_key(4))])
    assert (same.etag, same.count) == (1, 1)
    better = await store.put_keys(ALICE, 2, [BackedUpKey("!r", "s", backup_key(1))])
    assert better.etag == 2
    keys = await store.get_keys(ALICE, 2, "!r", "s")
    assert keys is not None
    assert keys[0].key.first_message_index == 1
    assert await store.get_keys(ALICE, 7) is None

    assert await store.update_version(ALICE, 1, {"k": 3})
    assert not await store.update_version(ALICE, 9, {"k": 3})
    after = await store.delete_keys(ALICE, 2, "!r")
    assert after is not None
    assert (after.count, after.etag) == (0, 3)
    assert await store.delete_version(ALICE, 2) is DeleteVersionStatus.DELETED
    assert await store.delete_version(ALICE, 2) is DeleteVersionStatus.ALREADY_DELETED
    assert await store.delete_version(ALICE, 5) is DeleteVersionStatus.NOT_FOUND
    current = await store.get_version(ALICE)
    assert current is not None
    assert current.version == 1
    # Numbers are never reused, even after a deletion.
    assert await store.create_version(ALICE, "alg", {}) == 3
