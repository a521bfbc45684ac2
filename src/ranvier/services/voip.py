"""TURN credentials for VoIP calls (Client-Server API > Modules > Voice over IP).

With a shared secret, credentials follow the TURN REST API convention coturn's
`static-auth-secret` checks: `username = "<expiry seconds>:<user_id>"` and
`password = base64(HMAC-SHA1(secret, username))`, valid for `user_lifetime`.
Without TURN URIs the answer is `{}`, as Synapse answers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from ranvier.config.schema import TurnConfig
from ranvier.core.errors import forbidden
from ranvier.util.clock import Clock


class TurnService:
    def __init__(self, config: TurnConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock

    def get_turn_server(self, user_id: str, *, is_guest: bool) -> dict[str, Any]:
        cfg = self._config
        if is_guest and not cfg.allow_guests:
            raise forbidden("Guest access to TURN credentials is disabled.")
        if not cfg.uris:
            return {}
        if cfg.shared_secret is not None:
            expiry = (self._clock.time_msec() // 1000) + cfg.user_lifetime
            username = f"{expiry}:{user_id}"
            digest = hmac.new(
                cfg.shared_secret.encode(), username.encode(), hashlib.sha1
            ).digest()
            password = base64.b64encode(digest).decode("ascii")
        elif cfg.username is not None and cfg.password is not None:
            username, password = cfg.username, cfg.password
        else:
            return {}
        return {
            "username": username,
            "password": password,
            "uris": list(cfg.uris),
            "ttl": cfg.user_lifetime,
        }
