"""Prometheus metrics on the `metrics` resource: a short load moves the counters, the
output parses with prometheus-client's parser, and `promtool check metrics` accepts it
(when Debian's prometheus package is installed)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.accounts import accounts_server
from tests.helpers.ci import missing_component
from tests.helpers.rooms import make_user

WITH_METRICS = {
    "listeners": [
        {
            "port": 0,
            "bind_addresses": ["127.0.0.1"],
            "resources": ["client", "federation", "keys", "media", "admin", "metrics"],
        }
    ]
}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_scrape(tmp_path: Path, db_engine: str) -> None:
    async with accounts_server(tmp_path, engine=db_engine, overrides=WITH_METRICS) as (
        hs,
        api,
    ):
        alice = await make_user(api, "alice")
        room = await alice.create_room()
        for i in range(3):
            await alice.send(room, f"m{i}")
        status, _ = await alice.call("GET", "/rooms/!nope:localhost/state")
        assert status in (403, 404)
        async with aiohttp.ClientSession() as session:
            async with session.get(hs.base_url + "/_synapse/metrics") as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/plain")
                text = await r.text()
            async with session.get(hs.base_url + "/metrics") as r:
                assert r.status == 200
        samples = _samples(text)
        send = "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"
        key = (
            "ranvier_http_requests_total",
            (("endpoint", send), ("method", "PUT"), ("status", "200")),
        )
        assert samples[key] == 3
        # Templates, never raw paths.
        assert not any("!" in dict(labels).get("endpoint", "") for _, labels in samples)
        assert (
            samples[
                (
                    "ranvier_http_request_duration_seconds_count",
                    (("endpoint", send), ("method", "PUT")),
                )
            ]
            == 3
        )
        local = samples[("ranvier_events_persisted_total", (("origin", "local"),))]
        assert local >= 3 + 5  # three messages plus the room's initial state
        txns = [
            v
            for (name, labels), v in samples.items()
            if name == "ranvier_db_transactions_total" and ("outcome", "ok") in labels
        ]
        assert sum(txns) > 10
        assert ("ranvier_sync_long_polls", ()) in samples
        assert ("ranvier_db_transactions_in_flight", ()) in samples
        assert ("ranvier_federation_active_destinations", ()) in samples
        assert samples[("process_resident_memory_bytes", ())] > 0
        assert ("process_cpu_seconds_total", ()) in samples

        promtool = shutil.which("promtool")
        if promtool is None:
            reason = "promtool not installed (Debian: apt-get install prometheus)"
            missing_component(reason)
        result = await asyncio.to_thread(
            subprocess.run,
            [promtool, "check", "metrics"],
            input=text.encode(),
            capture_output=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


async def test_metrics_not_served_without_resource(tmp_path: Path) -> None:
    async with accounts_server(tmp_path) as (_hs, api):
        status, body = await api.call("GET", "/metrics", prefix="")
        assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED")


def test_grafana_dashboard_uses_exported_metrics() -> None:
    """docs/grafana-dashboard.json only queries metric families the server exports."""
    import json
    import re

    from ranvier.api.metrics import ServerMetrics

    dashboard = json.loads(
        (
            Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
        ).read_text()
    )
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "gauge": ("",),
    }
    exported = {
        family.name + suffix
        for family in ServerMetrics("example.org").registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs
    for expr in exprs:
        for name in re.findall(r"\b(?:ranvier|process)_[a-z_]+", expr):
            assert name in exported, (name, expr)
