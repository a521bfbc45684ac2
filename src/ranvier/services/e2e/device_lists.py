"""Telling others that a local user's devices or keys changed (spec: C-S API > End-to-End
Encryption > Tracking the device list for a user; S-S API > Device Management).

Locally, the device-lists stream moves so that `/sync` and `/keys/changes` report the
user to everyone sharing a room. Over federation, every server sharing a room gets one
`m.device_list_update` per changed device; each carries a per-user `stream_id` and the
previous one as `prev_id`, so a receiver that missed an update notices and resyncs via
`GET /user/devices/{userId}` (served with the same `stream_id`). Changes of the master
or self-signing key go out as `m.signing_key_update`; the user-signing key is private
and never leaves the server.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

logger = logging.getLogger(__name__)

__all__ = ["DeviceChange", "DeviceListPublisher"]

JsonDict = dict[str, Any]


class DeviceListNotifier(Protocol):
    async def notify_device_change(self, user_ids: Collection[str]) -> None: ...


class DeviceListEdus(Protocol):
    """The federation EDU sender (late bound: may do nothing without federation)."""

    async def send_device_list_update(
        self,
        user_id: str,
        device_id: str,
        stream_id: int,
        prev_ids: Collection[int],
        *,
        deleted: bool = False,
        display_name: str | None = None,
        keys: Mapping[str, Any] | None = None,
    ) -> None: ...

    async def send_signing_key_update(
        self,
        user_id: str,
        master_key: Mapping[str, Any] | None,
        self_signing_key: Mapping[str, Any] | None,
    ) -> None: ...


class StreamIds(Protocol):
    async def allocate_device_list_stream_ids(
        self, user_id: str, count: int
    ) -> tuple[int | None, list[int]]: ...


@dataclass(frozen=True, slots=True)
class DeviceChange:
    device_id: str
    deleted: bool = False
    # The device keys as served (with cross-signing signatures merged in).
    keys: Mapping[str, Any] | None = None
    display_name: str | None = None


class DeviceListPublisher:
    def __init__(
        self,
        stream_ids: StreamIds,
        notifier: DeviceListNotifier,
        edus: DeviceListEdus | None,
    ) -> None:
        self._stream_ids = stream_ids
        self._notifier = notifier
        self._edus = edus

    async def devices_changed(
        self, user_id: str, changes: Sequence[DeviceChange]
    ) -> None:
        await self._notifier.notify_device_change([user_id])
        if self._edus is None or not changes:
            return
        prev, ids = await self._stream_ids.allocate_device_list_stream_ids(
            user_id, len(changes)
        )
        for change, stream_id in zip(changes, ids, strict=True):
            try:
                await self._edus.send_device_list_update(
                    user_id,
                    change.device_id,
                    stream_id,
                    [] if prev is None else [prev],
                    deleted=change.deleted,
                    display_name=change.display_name,
                    keys=change.keys,
                )
            except Exception:
                # The local change stands; remote servers resync on their next miss.
                logger.exception("could not queue device list update of %s", user_id)
            prev = stream_id

    async def signing_keys_changed(
        self,
        user_id: str,
        master_key: Mapping[str, Any] | None,
        self_signing_key: Mapping[str, Any] | None,
    ) -> None:
        await self._notifier.notify_device_change([user_id])
        if self._edus is None or (master_key is None and self_signing_key is None):
            return
        try:
            await self._edus.send_signing_key_update(
                user_id, master_key, self_signing_key
            )
        except Exception:
            logger.exception("could not queue signing key update of %s", user_id)

    async def users_changed(self, user_ids: Collection[str]) -> None:
        """Local only: e.g. a user-signing key or signatures only the signer sees."""
        await self._notifier.notify_device_change(user_ids)
