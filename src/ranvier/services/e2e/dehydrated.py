"""Dehydrated devices (MSC3814, the unstable `org.matrix.msc3814.v1` endpoints Element
uses): a device whose encrypted state (`device_data`, opaque to the server) is kept
server-side, so messages sent while a user has no logged-in device can still be
decrypted once a new login rehydrates it.

* PUT: creates the device (no access token), uploads its keys like `/keys/upload`
  (self-signed by the device), and replaces — deletes, keys and inbox included — the
  user's previous dehydrated device. An existing ordinary device cannot be turned into
  one (that would hand its to-device inbox to whoever rehydrates).
* GET / DELETE: the current one, or 404.
* POST `{device_id}/events`: the device's to-device messages, 100 at a time;
  `next_batch` is the position to pass back, which acknowledges (deletes) what came
  before it, as `/sync` does for live devices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

from ranvier.core.crypto.e2e_keys import E2eKeyError, check_device_keys
from ranvier.core.errors import MatrixError, bad_json, forbidden, not_found
from ranvier.util.clock import Clock

__all__ = ["DehydratedDevices"]

JsonDict = dict[str, Any]

MAX_DEVICE_ID_LENGTH: Final = 255


class DehydratedStore(Protocol):
    async def set_dehydrated_device(
        self, user_id: str, device_id: str, device_data: Mapping[str, Any]
    ) -> str | None: ...

    async def get_dehydrated_device(
        self, user_id: str
    ) -> tuple[str, JsonDict] | None: ...


class DeviceCreator(Protocol):
    async def create_device(
        self, user_id: str, device_id: str, display_name: str | None, now: int
    ) -> bool: ...


class DeviceDeleter(Protocol):
    async def delete_devices(self, user_id: str, device_ids: Sequence[str]) -> None: ...


class KeyUploader(Protocol):
    async def upload_keys(
        self,
        user_id: str,
        device_id: str,
        *,
        device_keys: Mapping[str, Any] | None,
        one_time_keys: Any,
        fallback_keys: Any,
    ) -> dict[str, int]: ...


class DeviceInbox(Protocol):
    def get_current_position(self) -> int: ...

    async def get_messages_for_sync(
        self, user_id: str, device_id: str, since: int, now: int
    ) -> tuple[list[JsonDict], int]: ...


class DehydratedDevices:
    def __init__(
        self,
        store: DehydratedStore,
        creator: DeviceCreator,
        deleter: DeviceDeleter,
        keys: KeyUploader,
        inbox: DeviceInbox,
        clock: Clock,
    ) -> None:
        self._store = store
        self._creator = creator
        self._deleter = deleter
        self._keys = keys
        self._inbox = inbox
        self._clock = clock

    async def put(
        self,
        user_id: str,
        device_id: str,
        device_data: Mapping[str, Any],
        *,
        display_name: str | None,
        device_keys: Mapping[str, Any],
        one_time_keys: Any,
        fallback_keys: Any,
    ) -> None:
        if not device_id or len(device_id) > MAX_DEVICE_ID_LENGTH:
            raise bad_json("Invalid 'device_id'.")
        try:
            check_device_keys(
                device_keys, user_id, device_id, verify_self_signature=True
            )
        except E2eKeyError as e:
            code = "M_INVALID_SIGNATURE" if e.bad_signature else "M_INVALID_PARAM"
            raise MatrixError(400, code, e.message) from None
        current = await self._store.get_dehydrated_device(user_id)
        created = await self._creator.create_device(
            user_id, device_id, display_name, self._clock.time_msec()
        )
        if not created and (current is None or current[0] != device_id):
            raise MatrixError(
                400, "M_INVALID_PARAM", "A device with this ID already exists."
            )
        previous = await self._store.set_dehydrated_device(
            user_id, device_id, device_data
        )
        if previous is not None and previous != device_id:
            await self._deleter.delete_devices(user_id, [previous])
        await self._keys.upload_keys(
            user_id,
            device_id,
            device_keys=device_keys,
            one_time_keys=one_time_keys,
            fallback_keys=fallback_keys,
        )

    async def get(self, user_id: str) -> JsonDict:
        current = await self._store.get_dehydrated_device(user_id)
        if current is None:
            raise not_found("No dehydrated device.")
        return {"device_id": current[0], "device_data": current[1]}

    async def delete(self, user_id: str) -> str:
        current = await self._store.get_dehydrated_device(user_id)
        if current is None:
            raise not_found("No dehydrated device.")
        # Device deletion hooks drop its keys, inbox and the dehydrated-device row.
        await self._deleter.delete_devices(user_id, [current[0]])
        return current[0]

    async def get_events(
        self, user_id: str, device_id: str, next_batch: str | None
    ) -> JsonDict:
        current = await self._store.get_dehydrated_device(user_id)
        if current is None or current[0] != device_id:
            raise forbidden("You may only fetch messages for your dehydrated device.")
        since = 0
        if next_batch is not None:
            if (
                not (next_batch.isascii() and next_batch.isdigit())
                or len(next_batch) > 18
            ):
                raise MatrixError(400, "M_INVALID_PARAM", "Invalid 'next_batch'.")
            since = int(next_batch)
        messages, position = await self._inbox.get_messages_for_sync(
            user_id, device_id, since, self._inbox.get_current_position()
        )
        return {"events": messages, "next_batch": str(max(position, since))}
