"""This server's signing keys and the signed key document other servers fetch."""

from __future__ import annotations

from typing import Any

from ranvier.core.crypto.keys import SigningKey
from ranvier.core.crypto.signing import sign_json
from ranvier.util.clock import Clock

# How long other servers may cache our key document. Short enough that a key rotation
# propagates within a day, long enough to spare peers refetching on every event.
KEY_VALIDITY_MS = 24 * 3600 * 1000


class ServerKeys:
    def __init__(
        self,
        server_name: str,
        signing_key: SigningKey,
        clock: Clock,
        old_verify_keys: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.server_name = server_name
        self.signing_key = signing_key
        self._clock = clock
        self._old = old_verify_keys or {}
        self._cached: dict[str, Any] | None = None
        self._cached_until = 0

    def signed_key_response(self) -> dict[str, Any]:
        now = self._clock.time_msec()
        # Re-sign at most once an hour: peers only need valid_until_ts to be in the future.
        if self._cached is None or now > self._cached_until:
            doc = {
                "server_name": self.server_name,
                "valid_until_ts": now + KEY_VALIDITY_MS,
                "verify_keys": {
                    self.signing_key.key_id: {"key": self.signing_key.public_key_base64}
                },
                "old_verify_keys": self._old,
            }
            self._cached = sign_json(doc, self.server_name, self.signing_key)
            self._cached_until = now + 3600 * 1000
        return self._cached
