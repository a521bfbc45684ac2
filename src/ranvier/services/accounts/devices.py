"""Devices of local users, and the logouts and password/deactivation flows that end them.

Spec: Client-Server API > Modules > Device Management; Login > logout, logout/all;
Account management > password change, deactivation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ranvier.core.errors import MatrixError, not_found
from ranvier.services.accounts.hooks import AccountHooks
from ranvier.services.accounts.passwords import (
    PasswordHasher,
    check_password_acceptable,
)
from ranvier.services.accounts.sessions import SessionService, TokenOwner
from ranvier.storage.stores.accounts import DeviceRow

MAX_DEVICE_DISPLAY_NAME_LENGTH = 100


class DeviceStore(Protocol):
    async def get_devices(self, user_id: str) -> list[DeviceRow]: ...

    async def get_device(self, user_id: str, device_id: str) -> DeviceRow | None: ...

    async def set_device_display_name(
        self, user_id: str, device_id: str, display_name: str | None
    ) -> bool: ...

    async def delete_devices(
        self, user_id: str, device_ids: list[str]
    ) -> list[str]: ...

    async def delete_other_logins(
        self, user_id: str, keep_device_id: str | None, keep_token_id: int | None
    ) -> list[str]: ...

    async def set_password_hash(
        self, user_id: str, password_hash: str | None
    ) -> bool: ...

    async def deactivate_user(self, user_id: str) -> list[str]: ...


class UserErasure(Protocol):
    async def mark_user_erased(self, user_id: str) -> None: ...


class DeviceService:
    def __init__(
        self,
        store: DeviceStore,
        sessions: SessionService,
        hasher: PasswordHasher,
        hooks: AccountHooks,
        erasure: UserErasure | None = None,
    ) -> None:
        self._erasure = erasure
        self._store = store
        self._sessions = sessions
        self._hasher = hasher
        self._hooks = hooks

    async def get_devices(self, user_id: str) -> list[DeviceRow]:
        return await self._store.get_devices(user_id)

    async def get_device(self, user_id: str, device_id: str) -> DeviceRow:
        device = await self._store.get_device(user_id, device_id)
        if device is None:
            raise not_found("Device not found.")
        return device

    async def set_display_name(
        self, user_id: str, device_id: str, display_name: str | None
    ) -> None:
        if (
            display_name is not None
            and len(display_name) > MAX_DEVICE_DISPLAY_NAME_LENGTH
        ):
            raise MatrixError(
                400,
                "M_TOO_LARGE",
                f"Device display name too long (max {MAX_DEVICE_DISPLAY_NAME_LENGTH}).",
            )
        if not await self._store.set_device_display_name(
            user_id, device_id, display_name
        ):
            raise not_found("Device not found.")
        await self._hooks.devices_changed(user_id, {device_id: display_name})

    async def delete_devices(self, user_id: str, device_ids: Sequence[str]) -> None:
        """Delete devices and revoke their tokens (already-gone devices are fine)."""
        deleted = await self._store.delete_devices(
            user_id, list(dict.fromkeys(device_ids))
        )
        self._sessions.invalidate_user(user_id)
        await self._hooks.devices_removed(user_id, deleted)

    async def logout(self, owner: TokenOwner) -> None:
        # Spec: the device of the access token is deleted along with it.
        await self.delete_devices(owner.user_id, [owner.device_id])

    async def logout_all(self, user_id: str) -> None:
        deleted = await self._store.delete_other_logins(user_id, None, None)
        self._sessions.invalidate_user(user_id)
        await self._hooks.devices_removed(user_id, deleted)

    async def change_password(
        self, owner: TokenOwner, new_password: str, *, logout_devices: bool
    ) -> None:
        check_password_acceptable(new_password)
        await self._store.set_password_hash(
            owner.user_id, await self._hasher.hash(new_password)
        )
        if logout_devices:
            # Spec: every token but the requester's is revoked, every other device deleted.
            deleted = await self._store.delete_other_logins(
                owner.user_id, owner.device_id, owner.token_id
            )
            self._sessions.invalidate_user(owner.user_id)
            await self._hooks.devices_removed(owner.user_id, deleted)

    async def deactivate(self, user_id: str, *, erase: bool) -> None:
        deleted = await self._store.deactivate_user(user_id)
        if erase and self._erasure is not None:
            # Before the hooks: from here on the user's events are served redacted
            # to later joiners and other servers (spec: `erase`).
            await self._erasure.mark_user_erased(user_id)
        self._sessions.invalidate_user(user_id)
        await self._hooks.devices_removed(user_id, deleted)
        await self._hooks.deactivated(user_id, erase)
