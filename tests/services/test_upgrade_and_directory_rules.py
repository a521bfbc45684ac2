"""Pure parts of room upgrades (power levels) and the user directory (matching)."""

from __future__ import annotations

from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.services.rooms.upgrade import copy_power_levels, restricted_power_levels
from ranvier.services.user_directory import matches
from ranvier.storage.stores.user_directory import DirectoryEntry

ALICE = "@alice:test"
BOB = "@bob:test"


def test_copy_power_levels_makes_levels_integers() -> None:
    old = {
        "users": {ALICE: "100", BOB: " 50 ", "@bad:test": "high"},
        "users_default": "0",
        "events": {"m.room.name": "50", "m.room.topic": True},
        "ban": "60",
        "notifications": {"room": "20"},
        "custom": {"kept": 1},
    }
    out = copy_power_levels(
        old, upgrader=ALICE, creators={ALICE}, new_version=KNOWN_ROOM_VERSIONS["11"]
    )
    assert out == {
        "users": {ALICE: 100, BOB: 50},
        "users_default": 0,
        "events": {"m.room.name": 50},
        "ban": 60,
        "notifications": {"room": 20},
        "custom": {"kept": 1},
    }


def test_copy_power_levels_creators_since_v12() -> None:
    old = {"users": {ALICE: 100, BOB: 100, "@carol:test": 50}}
    v12 = KNOWN_ROOM_VERSIONS["12"]
    out = copy_power_levels(old, upgrader=ALICE, creators={ALICE, BOB}, new_version=v12)
    assert out["users"] == {"@carol:test": 50}
    # Before v12 the upgrader keeps (at least) the creator's level.
    v11 = KNOWN_ROOM_VERSIONS["11"]
    out = copy_power_levels(
        {"users": {}}, upgrader=ALICE, creators={ALICE}, new_version=v11
    )
    assert out["users"] == {ALICE: 100}


def test_restricted_power_levels() -> None:
    assert restricted_power_levels({"events_default": 0, "invite": 0}) == {
        "events_default": 50,
        "invite": 50,
    }
    assert restricted_power_levels({"users_default": 60}) == {
        "users_default": 60,
        "events_default": 61,
        "invite": 61,
    }
    assert restricted_power_levels({"events_default": 50, "invite": 70}) is None


def test_directory_matching() -> None:
    entry = DirectoryEntry("@alice.w:test", "Alice Wonder-Land", None)
    assert matches(entry, ["ali"])
    assert matches(entry, ["w", "land"])
    assert matches(entry, ["wonder", "alice"])
    assert not matches(entry, ["test"])  # the server name is not searched
    assert not matches(entry, ["lice"])
    assert not matches(entry, ["alice", "bob"])
    assert matches(DirectoryEntry("@Élodie:test", None, None), ["élo"])
