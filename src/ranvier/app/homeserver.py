"""Composition root: builds every object from the config exactly once (house rule 4).

Nothing else in the code base constructs services or stores; constructors take exactly
what they use. `Homeserver.endpoints_for(resources)` hands the HTTP layer the endpoints
of the resources a listener serves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from ranvier.api import health, index_page, well_known
from ranvier.api.client import versions
from ranvier.api.http import Authenticator, Endpoint, HttpSettings
from ranvier.api.keys.server import ServerKeyResource
from ranvier.api.metrics import ServerMetrics
from ranvier.app.accounts import Accounts, build_accounts
from ranvier.app.admin import build_admin, build_admin_federation, build_admin_media
from ranvier.app.appservices import (
    AppServices,
    build_app_service_auth,
    build_app_service_http,
    build_app_services,
    load_app_services,
)
from ranvier.app.client_extras import build_client_extras, build_openid
from ranvier.app.e2e import SeamEdus, build_e2e, build_key_counts
from ranvier.app.federation import Federation, build_federation
from ranvier.app.federation_rooms import build_federation_rooms
from ranvier.app.media import Media, build_media
from ranvier.app.oauth import build_oauth, without_classic_auth
from ranvier.app.push import Push, PushNotifierLink, build_push, build_push_core
from ranvier.app.room_federation import FederationSeam, build_room_federation
from ranvier.app.rooms import build_rooms, random_opaque_id
from ranvier.app.sliding_sync import build_sliding_sync
from ranvier.app.sync import (
    RoomsReadSide,
    build_legacy_sync,
    build_notifier,
    build_sync,
)
from ranvier.app.third_party_invites import (
    bind_federation as bind_third_party_federation,
)
from ranvier.config.schema import HomeserverConfig
from ranvier.core.crypto.keys import SigningKey, read_signing_keys
from ranvier.federation.transport import FederationTransport
from ranvier.services.events.notify import NotifierChain
from ranvier.services.presence import PresenceJoinLink
from ranvier.services.server_keys import ServerKeys
from ranvier.storage.database import Database, DatabaseSettings, open_database
from ranvier.util.clock import Clock, RealClock
from ranvier.util.ratelimit import Bucket, RateLimiter
from ranvier.util.supervisor import TaskSupervisor
from ranvier.workers.appservices import AppServiceNotifier, AppServiceQueries

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
    federation: Federation | None = None
    media: Media | None = None
    push: Push | None = None
    accounts: Accounts | None = None
    appservices: AppServices | None = None
    # Run first on shutdown, before listeners drain: e.g. answer waiting long-polls now
    # so in-flight requests finish within the grace period instead of timing out.
    shutdown_callbacks: list[Callable[[], None]] = field(default_factory=list)

    def begin_shutdown(self) -> None:
        for callback in self.shutdown_callbacks:
            try:
                callback()
            except Exception:
                logger.exception("shutdown callback failed")

    def endpoints_for(self, resources: list[str]) -> list[Endpoint]:
        eps: list[Endpoint] = [*health.endpoints()]
        for r in resources:
            eps.extend(self.resources.get(r, []))
        return eps

    async def start(self) -> None:
        """Start background work (federation sender, cleanup loops) after the DB is ready."""
        if self.federation is not None:
            await self.federation.start()
        if self.push is not None:
            await self.push.start()
        if self.appservices is not None:
            self.appservices.start(self.supervisor)

    async def stop(self) -> None:
        await self.supervisor.shutdown()
        if self.push is not None:
            await self.push.close()
        if self.federation is not None:
            await self.federation.stop()
        if self.media is not None:
            await self.media.close()
        if self.appservices is not None:
            await self.appservices.close()
        if self.accounts is not None:
            await self.accounts.close()
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


def _registration_mode(config: HomeserverConfig) -> str:
    if not config.registration.enabled:
        return "closed"
    return "with a registration token" if config.registration.require_token else "open"


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
    federation_transport: FederationTransport | None = None,
) -> Homeserver:
    clock = clock or RealClock()
    # What start-up has opened, closed again if a later step fails (a half-built
    # server must not leak its database, background tasks or HTTP sessions).
    opened = AsyncExitStack()
    db = await open_database(database_settings(config))
    opened.push_async_callback(db.close)
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
        # From here `hs.stop()` closes, in order, whatever has been attached to `hs`:
        # attach each part (federation, push, media, ...) as soon as it is built.
        opened.push_async_callback(hs.stop)
        # --- metrics (issue #14): Prometheus, served on the `metrics` resource --------
        metrics = ServerMetrics(config.server_name)
        http_settings.request_observer = metrics.observe_request
        db.txn_observer = metrics.observe_txn
        metrics.track_db_in_flight(lambda: db.active_transactions)
        # --- end metrics ---------------------------------------------------------------
        wk = well_known.WellKnownResource(
            config.public_baseurl,
            _federation_authority(config),
            livekit_service_urls=config.matrix_rtc.livekit_service_urls,
            support_contacts=[c.to_json() for c in config.server_support.contacts],
            support_page=config.server_support.page,
        )
        index = index_page.IndexPage(
            config.server_name, config.public_baseurl, _registration_mode(config)
        )
        hs.resources["client"] = [
            *versions.endpoints(),
            *wk.endpoints(),
            *index.endpoints(),
        ]
        # --- accounts (issue #4): registration, login, devices, profiles -------------
        # Federation's room side is bound late (it needs the transport, built last).
        seam = FederationSeam()
        app_service_registry = load_app_services(config)  # issue #15, see below
        appservice_http = await build_app_service_http(config, app_service_registry)
        opened.push_async_callback(appservice_http.close)
        appservice_queries = AppServiceQueries(app_service_registry, appservice_http)
        accounts = build_accounts(
            config,
            db,
            clock,
            remote_profiles=seam,
            app_services=app_service_registry,
            app_service_users=appservice_queries,
        )
        hs.accounts = accounts  # its password hashing threads stop with the server
        hs.authenticator = accounts.authenticator
        hs.resources["client"].extend(accounts.endpoints())
        # --- end accounts ------------------------------------------------------------
        # --- OAuth 2.0 API (issue #13): discovery, registration, grants, pages ---------
        oauth = (
            build_oauth(config, db, clock, accounts) if config.oauth.enabled else None
        )
        if oauth is not None:
            if not config.oauth.password_api:
                hs.resources["client"] = without_classic_auth(hs.resources["client"])
            hs.resources["client"].extend(oauth.endpoints)
        # --- end OAuth 2.0 API ---------------------------------------------------------
        # --- rooms (issue #5): events, ingest pipeline, rooms, membership, directory --
        notifier = build_notifier(clock)
        push_link = PushNotifierLink()  # bound by "push, part 1" below
        presence_link = PresenceJoinLink()  # bound by "sync" below
        appservice_notifier = AppServiceNotifier()  # senders added below
        hs.shutdown_callbacks.append(notifier.close)
        metrics.track_sync_waiting(lambda: notifier.waiting)
        rooms = await build_rooms(
            config,
            db,
            clock,
            signing_key=signing_key,
            profiles=accounts.profiles,
            notifier=NotifierChain(
                notifier,
                seam,
                push_link,
                presence_link,
                metrics.event_counter(),
                appservice_notifier,
            ),
            hooks=accounts.hooks,
            remote=seam,
            backfill=seam,
            remote_directory=seam,
            erasure=accounts.erasure,
            app_service_aliases=AppServiceQueries(
                app_service_registry, appservice_http
            ),
        )
        hs.resources["client"].extend(rooms.endpoints)
        # --- end rooms ---------------------------------------------------------------
        # --- client extras: user directory, TURN, reports, room upgrades, 3PID answers
        hs.resources["client"].extend(
            build_client_extras(
                config,
                db,
                clock,
                rooms=rooms,
                accounts=accounts.store,
                random_id=random_opaque_id,
                remote_hierarchy=seam,
            )
        )
        openid, openid_endpoints = build_openid(config, db, clock)
        hs.resources["client"].extend(openid_endpoints)
        # --- end client extras ---------------------------------------------------------
        # --- push, part 1: rules, evaluation of every persisted event, unread counts --
        push_core = build_push_core(
            server_name=config.server_name,
            db=db,
            clock=clock,
            supervisor=hs.supervisor,
            rooms=rooms,
            link=push_link,
        )
        # --- end push, part 1 ------------------------------------------------------------
        # --- e2e, part 1: one-time key counts for /sync ----------------------------------
        e2e_store, e2e_key_counts = build_key_counts(db)
        # --- end e2e, part 1 -------------------------------------------------------------
        # --- sync (issue #5): /sync, typing, receipts, presence, account data, to-device
        sync = await build_sync(
            db=db,
            clock=clock,
            supervisor=hs.supervisor,
            server_name=config.server_name,
            notifier=notifier,
            rooms=RoomsReadSide(
                rooms.events,
                rooms.state,
                rooms.visibility,
                rooms.serializer,
                rooms.rooms,
                ignored=rooms.ignored,
            ),
            accounts=accounts.store,
            hooks=accounts.hooks,
            keys=e2e_key_counts,
            federation=seam,
            notification_counts=push_core.counts,
        )
        hs.resources["client"].extend(sync.endpoints)
        if config.federation.enabled:
            presence_link.bind(sync.presence)
        hs.resources["client"].extend(
            build_legacy_sync(
                sync=sync,
                clock=clock,
                rooms=rooms.rooms,
                events=rooms.events,
                reading=rooms.reading,
                directory=rooms.directory,
            )
        )
        # --- end sync ----------------------------------------------------------------
        # --- application services (issue #15): as_token auth, ghosts, transactions --
        hs.appservices = await build_app_services(
            app_service_registry,
            db,
            clock,
            http=appservice_http,
            users=accounts.store,
            registration=accounts.registration,
            serializer=rooms.serializer,
            current_position=rooms.events.get_current_position,
            notifier=appservice_notifier,
        )
        http_settings.appservice_authenticator = build_app_service_auth(
            app_service_registry, accounts.store, config.server_name
        )
        hs.resources["client"].extend(hs.appservices.endpoints)
        sync.typing.edu_listeners.append(appservice_notifier.on_ephemeral)
        sync.receipts.edu_listeners.append(appservice_notifier.on_ephemeral)
        # --- end application services ---------------------------------------------------
        # --- sliding sync (issue #12): MSC4186 over the same read side as /sync -------
        sliding = build_sliding_sync(
            db=db,
            clock=clock,
            supervisor=hs.supervisor,
            sync=sync,
            rooms=RoomsReadSide(
                rooms.events, rooms.state, rooms.visibility, rooms.serializer
            ),
            keys=e2e_key_counts,
            notification_counts=push_core.counts,
            hooks=accounts.hooks,
        )
        hs.resources["client"].extend(sliding.endpoints)
        # --- end sliding sync --------------------------------------------------------
        # --- push, part 2: m.push_rules account data, pushers, /notifications ---------
        hs.push = build_push(
            config,
            db,
            clock,
            hs.supervisor,
            core=push_core,
            rooms=rooms,
            sync=sync,
            hooks=accounts.hooks,
        )
        hs.resources["client"].extend(hs.push.endpoints)
        # --- end push, part 2 ------------------------------------------------------------
        hs.resources["keys"] = ServerKeyResource(server_keys).endpoints()
        hs.resources["federation"] = []
        hs.resources["media"] = []
        # --- admin API (issue #14): Synapse's /_synapse/admin, the spec's admin endpoints
        admin = build_admin(config, db, clock, accounts, rooms, hs.supervisor)
        hs.resources["admin"] = [
            ep for ep in admin.endpoints if ep.paths[0].startswith("/_synapse/")
        ]
        hs.resources["client"].extend(
            ep for ep in admin.endpoints if not ep.paths[0].startswith("/_synapse/")
        )
        # --- end admin API -------------------------------------------------------------
        hs.resources["metrics"] = metrics.endpoints()
        # --- federation transport (issue #6): keyring, client, sender, X-Matrix, notary
        # Last: it opens the outbound HTTP session, which nothing after it could leak.
        hs.federation = build_federation(
            config,
            db,
            clock,
            hs.supervisor,
            server_keys,
            transport=federation_transport,
        )
        if config.federation.enabled:
            http_settings.server_authenticator = hs.federation.authenticator
        hs.resources["keys"].extend(hs.federation.key_endpoints)
        hs.resources["federation"].extend(hs.federation.federation_endpoints)
        sender = hs.federation.sender
        metrics.track_federation_destinations(lambda: len(sender.active_destinations))
        # --- end federation transport --------------------------------------------------
        # --- federation rooms, outbound (issue #6): remote joins/leaves/knocks/invites,
        # backfill, remote queries, local events and EDUs to the room's other servers
        if config.federation.enabled:
            seam.bind(
                await build_room_federation(
                    server_name=config.server_name,
                    db=db,
                    clock=clock,
                    supervisor=hs.supervisor,
                    federation=hs.federation,
                    rooms=rooms,
                    random_id=random_opaque_id,
                )
            )
        # --- end federation rooms, outbound ---------------------------------------------
        # --- e2e, part 2: keys, cross-signing, remote device cache, key backup ----------
        e2e = build_e2e(
            server_name=config.server_name,
            db=db,
            clock=clock,
            store=e2e_store,
            sync=sync,
            accounts=accounts,
            federation_client=(
                hs.federation.client if config.federation.enabled else None
            ),
            edus=SeamEdus(seam) if config.federation.enabled else None,
            reset_gate=oauth.reset_gate if oauth is not None else None,
        )
        hs.resources["client"].extend(e2e.client_endpoints)
        hs.resources["federation"].extend(e2e.federation_endpoints)
        # --- end e2e, part 2 -------------------------------------------------------------
        # --- federation rooms, inbound (issue #6): /send, history, resident joins, queries
        federation_rooms = build_federation_rooms(
            server_name=config.server_name,
            signing_key=signing_key,
            clock=clock,
            rooms=rooms,
            sync=sync,
            accounts=accounts,
            federation=hs.federation,
            openid=openid,
            device_keys=e2e.remote,
        )
        hs.resources["federation"].extend(federation_rooms.endpoints)
        # --- end federation rooms, inbound -----------------------------------------------
        # --- third-party invites, server side: /3pid/onbind, exchange_third_party_invite
        if rooms.third_party is not None:
            hs.resources["federation"].extend(
                bind_third_party_federation(
                    rooms.third_party,
                    hs.federation.client if config.federation.enabled else None,
                )
            )
        # --- end third-party invites -----------------------------------------------------
        # --- media repository: uploads, downloads, thumbnails, remote media, previews --
        hs.media = build_media(
            config,
            db,
            clock,
            hs.supervisor,
            federation_client=hs.federation.client,
            random_id=random_opaque_id,
        )
        hs.resources["client"].extend(hs.media.client_endpoints)
        hs.resources["media"].extend(hs.media.media_endpoints)
        hs.resources["federation"].extend(hs.media.federation_endpoints)
        # --- end media repository --------------------------------------------------------
        # --- admin API, late parts (issue #14): media, federation destinations ----------
        hs.resources["admin"].extend(build_admin_media(config, db, admin, hs.media))
        hs.resources["admin"].extend(build_admin_federation(admin, hs.federation))
        # --- end admin API, late parts ---------------------------------------------------
        opened.pop_all()  # `Homeserver.stop()` owns them now
        return hs
    except BaseException:
        await opened.aclose()
        raise
