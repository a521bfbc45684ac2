"""Server-side key backup rules (spec: C-S API > End-to-End Encryption > Server-side key
backups). Pure: parsing of `KeyBackupData` and the rule for which of two backed-up
copies of one Megolm session the server keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ranvier.core.json import CANONICAL_JSON_INT_MAX

__all__ = ["BackupKeyError", "RoomKeyBackup", "parse_room_key", "should_replace"]


class BackupKeyError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class RoomKeyBackup:
    """One session's `KeyBackupData`; `session_data` is opaque (encrypted by the client):
    an object for the spec's algorithm (checked by the service, which knows the
    backup's algorithm), any JSON value for others (as Synapse)."""

    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "first_message_index": self.first_message_index,
            "forwarded_count": self.forwarded_count,
            "is_verified": self.is_verified,
            "session_data": self.session_data,
        }


def _non_negative_int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if type(value) is not int or not 0 <= value <= CANONICAL_JSON_INT_MAX:
        raise BackupKeyError(f"'{key}' must be a non-negative integer")
    return value


def parse_room_key(data: Any) -> RoomKeyBackup:
    if not isinstance(data, Mapping):
        raise BackupKeyError("key backup data must be an object")
    is_verified = data.get("is_verified")
    if not isinstance(is_verified, bool):
        raise BackupKeyError("'is_verified' must be a boolean")
    session_data = data.get("session_data")
    if session_data is None:
        raise BackupKeyError("'session_data' is required")
    return RoomKeyBackup(
        first_message_index=_non_negative_int(data, "first_message_index"),
        forwarded_count=_non_negative_int(data, "forwarded_count"),
        is_verified=is_verified,
        session_data=session_data,
    )


def should_replace(current: RoomKeyBackup | None, new: RoomKeyBackup) -> bool:
    """Spec: keep the better key — a verified one over an unverified one; with equal
    `is_verified`, the lower `first_message_index` (it decrypts more); then the lower
    `forwarded_count` (fewer hops, more trustworthy). A tie keeps the stored copy."""
    if current is None:
        return True
    if current.is_verified != new.is_verified:
        return new.is_verified
    if current.first_message_index != new.first_message_index:
        return new.first_message_index < current.first_message_index
    return new.forwarded_count < current.forwarded_count
