"""Composition root: builds every object from the config exactly once (house rule 4).

Nothing else in the code base constructs services or stores; constructors take exactly
what they use. `Homeserver.endpoints_for(resources)` hands the HTTP layer the endpoints
of the resources a listener serves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ranvier.api import health, well_known
from ranvier.api.client import versions
from ranvier.api.http import Authenticator, Endpoint, HttpSettings
from ranvier.api.keys.server import ServerKeyResource
from ranvier.config.schema import HomeserverConfig
from ranvier.core.crypto.keys import SigningKey, read_signing_keys
from ranvier.services.server_keys import ServerKeys
from ranvier.storage.database import Database, DatabaseSettings, open_database
from ranvier.util.clock import Clock, RealClock
from ranvier.util.ratelimit import Bucket, RateLimiter
from ranvier.util.supervisor import TaskSupervisor

logger = logging.getLogger(__name__)


@dataclass
class Homeserver:
    config: HomeserverConfig
    clock: Clock
    db: Database
    supervisor: TaskSupervisor
    server_keys: ServerKeys
    limiter: RateLimiter
    http_settings: HttpSettings
    authenticator: Authenticator | None
    resources: dict[str, list[Endpoint]] = field(default_factory=dict)

    def endpoints_for(self, resources: list[str]) -> list[Endpoint]:
        eps: list[Endpoint] = [*health.endpoints()]
        for r in resources:
            eps.extend(self.resources.get(r, []))
        return eps

    async def start(self) -> None:
        """Start background work (federation sender, cleanup loops) after the DB is ready."""

    async def stop(self) -> None:
        await self.supervisor.shutdown()
        await self.db.close()


def database_settings(config: HomeserverConfig) -> DatabaseSettings:
    db = config.database
    return DatabaseSettings(
        engine=db.engine,
        sqlite_path=str(db.path),
        postgres_dsn=db.dsn or "",
        pool_size=db.pool_size,
    )


def load_signing_key(path: Path) -> SigningKey:
    keys = read_signing_keys(path.read_text())
    if not keys:
        raise ValueError(f"no signing key in {path}")
    return keys[0]


def _federation_authority(config: HomeserverConfig) -> str | None:
    for listener in config.listeners:
        if "federation" in listener.resources:
            host = (
                config.server_name.split(":")[0]
                if not config.server_name.startswith("[")
                else config.server_name
            )
            return (
                f"{host}:{listener.port}"
                if ":" not in config.server_name
                else config.server_name
            )
    return None


async def build_homeserver(
    config: HomeserverConfig,
    *,
    clock: Clock | None = None,
) -> Homeserver:
    clock = clock or RealClock()
    db = await open_database(database_settings(config))
    try:
        signing_key = load_signing_key(Path(config.signing_key_path))
        server_keys = ServerKeys(config.server_name, signing_key, clock)
        rl = config.rate_limits
        limiter = RateLimiter(clock, enabled=rl.enabled)
        buckets = {
            name: Bucket(b.per_second, b.burst)
            for name, b in (
                ("login", rl.login),
                ("registration", rl.registration),
                ("message", rl.message),
                ("default", rl.default),
            )
        }
        http_settings = HttpSettings(
            max_body_size=config.limits.max_request_body_size,
            ratelimit_buckets=buckets,
        )
        hs = Homeserver(
            config=config,
            clock=clock,
            db=db,
            supervisor=TaskSupervisor(),
            server_keys=server_keys,
            limiter=limiter,
            http_settings=http_settings,
            authenticator=None,
        )
        wk = well_known.WellKnownResource(
            config.public_baseurl, _federation_authority(config)
        )
        hs.resources["client"] = [*versions.endpoints(), *wk.endpoints()]
        hs.resources["keys"] = ServerKeyResource(server_keys).endpoints()
        hs.resources["federation"] = []
        hs.resources["media"] = []
        hs.resources["admin"] = []
        hs.resources["metrics"] = []
        return hs
    except BaseException:
        await db.close()
        raise
