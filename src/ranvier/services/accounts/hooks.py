"""Seams where other services react to account changes.

The accounts services call these after their own writes have committed. The composition
root connects listeners once the services that implement them exist, e.g.

    hooks.deactivation.append(rooms_service)      # leave all rooms, erase if asked
    hooks.profile_change.append(rooms_service)    # new m.room.member events
    hooks.devices_deleted.append(e2e_service)     # drop device keys and to-device queue
    hooks.devices_updated.append(e2e_service)     # new login / renamed device: device lists

A failing listener is logged and does not undo the account change (which has already
happened and been reported to the user).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

logger = logging.getLogger(__name__)


class DeactivationListener(Protocol):
    async def on_deactivate(self, user_id: str, erase: bool) -> None:
        """The account is deactivated: leave its rooms (and erase its data if `erase`)."""
        ...


class ProfileChangeListener(Protocol):
    async def on_profile_change(self, user_id: str) -> None:
        """`displayname` or `avatar_url` changed: propagate to membership events."""
        ...


class DevicesDeletedListener(Protocol):
    async def on_devices_deleted(self, user_id: str, device_ids: Sequence[str]) -> None:
        """Devices (and their tokens) are gone: delete E2E keys and to-device queues."""
        ...


class DevicesUpdatedListener(Protocol):
    async def on_devices_updated(
        self, user_id: str, devices: Mapping[str, str | None]
    ) -> None:
        """New devices (a login) or renamed ones: device ID -> display name."""
        ...


@dataclass
class AccountHooks:
    deactivation: list[DeactivationListener] = field(default_factory=list)
    profile_change: list[ProfileChangeListener] = field(default_factory=list)
    devices_deleted: list[DevicesDeletedListener] = field(default_factory=list)
    devices_updated: list[DevicesUpdatedListener] = field(default_factory=list)

    async def deactivated(self, user_id: str, erase: bool) -> None:
        for listener in self.deactivation:
            try:
                await listener.on_deactivate(user_id, erase)
            except Exception:
                logger.exception(
                    "deactivation listener %r failed for %s", listener, user_id
                )

    async def profile_changed(self, user_id: str) -> None:
        for listener in self.profile_change:
            try:
                await listener.on_profile_change(user_id)
            except Exception:
                logger.exception("profile listener %r failed for %s", listener, user_id)

    async def devices_removed(self, user_id: str, device_ids: Sequence[str]) -> None:
        if not device_ids:
            return
        for listener in self.devices_deleted:
            try:
                await listener.on_devices_deleted(user_id, device_ids)
            except Exception:
                logger.exception("device listener %r failed for %s", listener, user_id)

    async def devices_changed(
        self, user_id: str, devices: Mapping[str, str | None]
    ) -> None:
        for listener in self.devices_updated:
            try:
                await listener.on_devices_updated(user_id, devices)
            except Exception:
                logger.exception("device listener %r failed for %s", listener, user_id)
