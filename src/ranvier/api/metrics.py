"""Prometheus metrics on the `metrics` listener resource.

    GET /_synapse/metrics
    GET /metrics

One `ServerMetrics` per homeserver, with its own `CollectorRegistry` (no process-global
registry: tests run several servers in one process). Producers report through narrow
hooks, so no service imports prometheus-client: the HTTP edge calls `observe_request`
with the route template (never the raw path, which would make a time series per room
and user), the database calls `observe_txn`, the ingest pipeline's notifier chain
reaches `EventCounter`, and gauges read live sizes through callables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest
from ranvier.core.events.event import Event

# Request latency buckets, in seconds: from a cached read to a 30 s sync long-poll.
HTTP_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
DB_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
)  # fmt: skip


class ServerMetrics:
    def __init__(self, server_name: str) -> None:
        self._server_name = server_name
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.http_requests = Counter(
            "ranvier_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ("method", "endpoint", "status"),
            registry=r,
        )
        self.http_duration = Histogram(
            "ranvier_http_request_duration_seconds",
            "Time from receiving a request to its response, by method and route.",
            ("method", "endpoint"),
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.db_txns = Counter(
            "ranvier_db_transactions",
            "Database transactions run, by name and outcome.",
            ("name", "outcome"),
            registry=r,
        )
        self.db_duration = Histogram(
            "ranvier_db_transaction_duration_seconds",
            "Database transaction time including the wait for a connection, by name.",
            ("name",),
            buckets=DB_BUCKETS,
            registry=r,
        )
        self.db_in_flight = Gauge(
            "ranvier_db_transactions_in_flight",
            "Database transactions running or waiting for a connection now.",
            registry=r,
        )
        self.events_persisted = Counter(
            "ranvier_events_persisted",
            "Room events persisted, by origin (local or remote).",
            ("origin",),
            registry=r,
        )
        self.sync_waiting = Gauge(
            "ranvier_sync_long_polls",
            "/sync requests waiting for new data now.",
            registry=r,
        )
        self.federation_destinations = Gauge(
            "ranvier_federation_active_destinations",
            "Destinations with queued outbound federation work (sending or backing off).",
            registry=r,
        )
        self.events_persisted.labels("local")
        self.events_persisted.labels("remote")

    # -- producers ------------------------------------------------------------------------

    def observe_request(
        self, method: str, endpoint: str, status: int, seconds: float
    ) -> None:
        self.http_requests.labels(method, endpoint, str(status)).inc()
        self.http_duration.labels(method, endpoint).observe(seconds)

    def observe_txn(self, name: str, seconds: float, ok: bool) -> None:
        self.db_txns.labels(name, "ok" if ok else "error").inc()
        self.db_duration.labels(name).observe(seconds)

    def track_sync_waiting(self, read: Callable[[], int]) -> None:
        self.sync_waiting.set_function(read)

    def track_db_in_flight(self, read: Callable[[], int]) -> None:
        self.db_in_flight.set_function(read)

    def track_federation_destinations(self, read: Callable[[], int]) -> None:
        self.federation_destinations.set_function(read)

    def event_counter(self) -> EventCounter:
        return EventCounter(self._server_name, self.events_persisted)

    # -- endpoint -----------------------------------------------------------------------

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def get_metrics(self, _req: MatrixRequest) -> web.Response:
        body = self.render()
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "GET",
                ("/_synapse/metrics", "/metrics"),
                self.get_metrics,
                auth=AuthMode.NONE,
            )
        ]


class EventCounter:
    """A `RoomEventNotifier` for the ingest pipeline's chain: counts persisted events."""

    def __init__(self, server_name: str, counter: Counter) -> None:
        self._suffix = ":" + server_name
        self._local = counter.labels("local")
        self._remote = counter.labels("remote")

    def on_new_event(
        self, event: Event, stream_ordering: int, *, extra_users: Iterable[str] = ()
    ) -> None:
        if event.sender.endswith(self._suffix):
            self._local.inc()
        else:
            self._remote.inc()
