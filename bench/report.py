"""Ratios against Synapse, the targets, and the Markdown rendering of a result file."""

from __future__ import annotations

from typing import Any, Final

from bench.stats import ratio, rounded

# Ranvier's targets relative to Synapse (issue: "Benchmarks side by side with Synapse").
THROUGHPUT_TARGET: Final = 3.0
"""Ranvier throughput / Synapse throughput must be at least this."""
P99_TARGET: Final = 1 / 3
"""Ranvier p99 / Synapse p99 must be at most this."""
IDLE_RSS_TARGET: Final = 1 / 3
"""Ranvier idle RSS / Synapse idle RSS must be at most this."""


def _figure(server: dict[str, Any], phase: str, key: str) -> float | None:
    entry = server.get("phases", {}).get(phase, {})
    value = entry.get(key) if entry.get("status") == "ok" else None
    return float(value) if isinstance(value, int | float) else None


def compute_ratios(servers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ranvier / Synapse for each phase and for memory; None where either is missing."""
    ranvier = servers.get("ranvier", {})
    synapse = servers.get("synapse", {})
    phase_names = list(ranvier.get("phases", {}) or synapse.get("phases", {}))
    phases: dict[str, Any] = {}
    for name in phase_names:
        throughput = ratio(
            _figure(ranvier, name, "throughput_per_s"),
            _figure(synapse, name, "throughput_per_s"),
        )
        p99 = ratio(_figure(ranvier, name, "p99_ms"), _figure(synapse, name, "p99_ms"))
        p50 = ratio(_figure(ranvier, name, "p50_ms"), _figure(synapse, name, "p50_ms"))
        cpu = ratio(
            _figure(ranvier, name, "cpu_ms_per_op"),
            _figure(synapse, name, "cpu_ms_per_op"),
        )
        phases[name] = {
            "throughput": rounded(throughput),
            "p50": rounded(p50),
            "p99": rounded(p99),
            "cpu_per_op": rounded(cpu),
            "throughput_target_met": None
            if throughput is None
            else throughput >= THROUGHPUT_TARGET,
            "p99_target_met": None if p99 is None else p99 <= P99_TARGET,
        }
    idle = ratio(
        ranvier.get("memory", {}).get("idle_rss_mb"),
        synapse.get("memory", {}).get("idle_rss_mb"),
    )
    loaded = ratio(
        ranvier.get("memory", {}).get("loaded_rss_mb"),
        synapse.get("memory", {}).get("loaded_rss_mb"),
    )
    return {
        "phases": phases,
        "memory": {
            "idle_rss": rounded(idle),
            "loaded_rss": rounded(loaded),
            "idle_rss_target_met": None if idle is None else idle <= IDLE_RSS_TARGET,
        },
    }


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _ratio_cell(value: float | None, met: bool | None) -> str:
    if value is None:
        return "n/a"
    mark = "" if met is None else (" ✅" if met else " ❌")
    return f"{value:.2f}x{mark}"


def _server_cells(server: dict[str, Any], phase: str) -> list[str]:
    entry = server.get("phases", {}).get(phase, {})
    if entry.get("status") != "ok":
        return [entry.get("status", "n/a"), "", "", ""]
    return [
        _fmt(entry.get("throughput_per_s")),
        _fmt(entry.get("p50_ms"), 2),
        _fmt(entry.get("p99_ms"), 2),
        _fmt(entry.get("cpu_ms_per_op"), 2),
    ]


def render_markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"# Ranvier vs Synapse — {doc['mode']} run, {doc['started_at']}",
        "",
        f"- git: `{doc['git'].get('commit') or 'unknown'}`"
        + (" (uncommitted changes)" if doc["git"].get("dirty") else ""),
        f"- host: {doc['host']['cpus']} CPUs, Python {doc['host']['python']}, "
        f"load average {doc['host']['loadavg_at_start'][0]:.1f} at start, "
        f"{doc['host']['loadavg_at_end'][0]:.1f} at end",
        "- servers: "
        + ", ".join(f"{k} {v or 'n/a'}" for k, v in doc["versions"].items()),
        f"- repetitions per server: {doc['sizes']['repetitions']} (medians shown); "
        f"client concurrency {doc['sizes']['concurrency']}",
        f"- total run time: {doc['duration_s']:.0f}s",
    ]
    if doc.get("scaled_down"):
        lines.append(f"- **{doc['scaled_down']}**")
    lines += [
        "",
        "Targets: throughput ≥ 3x Synapse, p99 ≤ 1/3 of Synapse, idle RSS ≤ 1/3 of "
        "Synapse. Ratios are Ranvier / Synapse (✅ target met, ❌ not met). "
        "CPU is server CPU ms per operation (utime+stime of the process tree).",
    ]
    for engine, result in doc["engines"].items():
        lines += _engine_section(engine, result)
    return "\n".join(lines) + "\n"


def _engine_section(engine: str, result: dict[str, Any]) -> list[str]:
    servers = result["servers"]
    ranvier = servers.get("ranvier", {})
    synapse = servers.get("synapse", {})
    ratios = result["ratios"]
    lines = ["", f"## {engine}", ""]
    for name, server in servers.items():
        if server.get("status") != "ok":
            lines.append(f"- {name} unavailable: {server.get('note', '')[:300]}")
    lines += [
        "| workload | unit | Ranvier ops/s | p50 ms | p99 ms | CPU ms/op "
        "| Synapse ops/s | p50 ms | p99 ms | CPU ms/op "
        "| throughput ratio | p99 ratio | CPU ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes: list[str] = []
    phase_names = list(ranvier.get("phases", {}) or synapse.get("phases", {}))
    for phase in phase_names:
        unit = (ranvier.get("phases", {}).get(phase) or synapse["phases"][phase]).get(
            "unit", ""
        )
        r = ratios["phases"].get(phase, {})
        cells = [
            phase,
            unit,
            *_server_cells(ranvier, phase),
            *_server_cells(synapse, phase),
            _ratio_cell(r.get("throughput"), r.get("throughput_target_met")),
            _ratio_cell(r.get("p99"), r.get("p99_target_met")),
            _ratio_cell(r.get("cpu_per_op"), None),
        ]
        lines.append("| " + " | ".join(cells) + " |")
        for name, server in servers.items():
            note = server.get("phases", {}).get(phase, {}).get("note")
            if note:
                notes.append(f"- {name} / {phase}: {note[:300]}")
    mem = ratios["memory"]
    rmem = ranvier.get("memory", {})
    smem = synapse.get("memory", {})
    lines += [
        "",
        "| memory | Ranvier | Synapse | ratio |",
        "|---|---:|---:|---:|",
        f"| idle RSS (MiB) | {_fmt(rmem.get('idle_rss_mb'))} | "
        f"{_fmt(smem.get('idle_rss_mb'))} | "
        f"{_ratio_cell(mem.get('idle_rss'), mem.get('idle_rss_target_met'))} |",
        f"| RSS after load (MiB) | {_fmt(rmem.get('loaded_rss_mb'))} | "
        f"{_fmt(smem.get('loaded_rss_mb'))} | {_ratio_cell(mem.get('loaded_rss'), None)} |",
        f"| start-up to ready (s) | {_fmt(rmem.get('startup_s'), 2)} | "
        f"{_fmt(smem.get('startup_s'), 2)} | |",
    ]
    if notes:
        lines += ["", "Notes:", *notes]
    return lines
