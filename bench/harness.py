"""Run the workloads against each server, alternating servers over repetitions."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.matrix import MatrixClient, MatrixError, NotImplementedByServer
from bench.procstats import cpu_seconds, rss_bytes
from bench.servers import (
    STARTERS,
    Cleanup,
    RunningServer,
    ServerUnavailable,
    wait_ready,
)
from bench.sizes import Sizes
from bench.stats import median_or_none, percentile, rounded
from bench.workloads.base import Context, PhaseResult, PhaseSpec, UserPool, Workload

MIB = 1024 * 1024


@dataclass
class ServerRun:
    """One server, one engine, one repetition: a fresh server with fresh data."""

    kind: str
    engine: str
    repetition: int
    status: str = "ok"
    note: str = ""
    version: str | None = None
    startup_s: float | None = None
    idle_rss_mb: float | None = None
    loaded_rss_mb: float | None = None
    idle_cpu_s: float | None = None
    phases: dict[str, PhaseResult] = field(default_factory=dict)


def _mark(run: ServerRun, specs: list[PhaseSpec], status: str, note: str) -> None:
    for spec in specs:
        if spec.name not in run.phases:
            run.phases[spec.name] = PhaseResult(
                name=spec.name, unit=spec.unit, status=status, note=note
            )


async def run_workloads(
    server: RunningServer,
    session: aiohttp.ClientSession,
    sizes: Sizes,
    workloads: tuple[Workload, ...],
    run: ServerRun,
) -> None:
    client = MatrixClient(session, server.base_url)
    ctx = Context(
        client=client,
        sizes=sizes,
        server_pid=server.pid,
        server_name=server.kind,
        pool=UserPool(client, sizes.concurrency),
    )
    for workload in workloads:
        specs = list(workload.phases(sizes))
        if not server.alive():
            _mark(run, specs, "error", f"{server.kind} is no longer running")
            continue
        started = time.monotonic()
        ctx.results = run.phases
        try:
            await asyncio.wait_for(workload.run(ctx), sizes.workload_timeout_s)
        except NotImplementedByServer as exc:
            _mark(run, specs, "n/a", f"not implemented: {exc.endpoint}")
        except (MatrixError, TimeoutError, aiohttp.ClientError, RuntimeError) as exc:
            note = f"{type(exc).__name__}: {exc}"
            if not server.alive():
                note += (
                    f" (server exited {server.proc.returncode}: {server.log_tail(5)})"
                )
            _mark(run, specs, "error", note)
        except Exception as exc:  # VerificationError and other surprises: report, go on
            _mark(run, specs, "error", f"{type(exc).__name__}: {exc}")
        _print_workload(
            server.kind, workload.name, specs, run, time.monotonic() - started
        )


def _print_workload(
    kind: str, name: str, specs: list[PhaseSpec], run: ServerRun, took: float
) -> None:
    parts = []
    for spec in specs:
        result = run.phases.get(spec.name)
        if result is None:
            continue
        if result.status == "ok":
            p99 = percentile(result.latencies_ms, 99)
            parts.append(
                f"{spec.name} {result.ops / result.wall_s:.1f}/s p99 {p99:.1f}ms"
            )
        else:
            parts.append(f"{spec.name} {result.status} ({result.note[:120]})")
    print(f"    {kind:8s} {name:13s} {took:6.1f}s  " + "; ".join(parts), flush=True)


async def run_server_once(
    kind: str,
    engine: str,
    repetition: int,
    sizes: Sizes,
    workloads: tuple[Workload, ...],
    cleanup: Cleanup,
    session: aiohttp.ClientSession,
    keep_logs: Path | None = None,
) -> ServerRun:
    run = ServerRun(kind=kind, engine=engine, repetition=repetition)
    all_specs = [s for w in workloads for s in w.phases(sizes)]
    server: RunningServer | None = None
    try:
        server = STARTERS[kind](cleanup, engine)
        await wait_ready(server, session)
        run.version = server.version
        run.startup_s = server.ready_after_s
        await asyncio.sleep(sizes.settle_s)
        run.idle_rss_mb = rss_bytes(server.pid) / MIB
        run.idle_cpu_s = cpu_seconds(server.pid)
        print(
            f"  {kind} ({engine}, rep {repetition + 1}) ready in "
            f"{server.ready_after_s:.1f}s, idle RSS {run.idle_rss_mb:.0f} MiB",
            flush=True,
        )
        await run_workloads(server, session, sizes, workloads, run)
        if server.alive():
            run.loaded_rss_mb = rss_bytes(server.pid) / MIB
    except ServerUnavailable as exc:
        run.status = "unavailable"
        run.note = str(exc)
        first_line = run.note.splitlines()[0] if run.note else ""
        print(f"  {kind} ({engine}) unavailable: {first_line}", flush=True)
        _mark(run, all_specs, "n/a", f"server unavailable: {first_line}")
    finally:
        if server is not None:
            server.stop()
            if keep_logs is not None:
                _keep_logs(server, keep_logs / f"{kind}-{engine}-rep{repetition + 1}")
    return run


def _keep_logs(server: RunningServer, dest: Path) -> None:
    """Copy the server's log files out of its temporary data directory."""
    dest.mkdir(parents=True, exist_ok=True)
    for log in server.data_dir.glob("*.log*"):
        if log.is_file() and not log.name.endswith(".config"):
            shutil.copy2(log, dest / log.name)


# -- aggregation ---------------------------------------------------------------------


def summarize_phase(results: list[PhaseResult]) -> dict[str, Any]:
    """Median over repetitions of each figure; latencies of all repetitions kept."""
    ok = [r for r in results if r.status == "ok"]
    unit = results[0].unit if results else ""
    if not ok:
        statuses = {r.status for r in results}
        status = "n/a" if statuses == {"n/a"} else "error"
        notes = sorted({r.note for r in results if r.note})
        return {"status": status, "unit": unit, "note": "; ".join(notes)}
    latencies = [lat for r in ok for lat in r.latencies_ms]
    per_rep = [
        {
            "ops": r.ops,
            "wall_s": rounded(r.wall_s, 4),
            "throughput_per_s": rounded(r.ops / r.wall_s),
            "p50_ms": rounded(percentile(r.latencies_ms, 50)),
            "p99_ms": rounded(percentile(r.latencies_ms, 99)),
            "server_cpu_s": rounded(r.server_cpu_s, 3),
            "client_cpu_s": rounded(r.client_cpu_s, 3),
            "cpu_ms_per_op": rounded(r.server_cpu_s * 1000 / r.ops),
        }
        for r in ok
    ]
    failures = [f"{r.status}: {r.note}" for r in results if r.status != "ok"]
    return {
        "status": "ok",
        "unit": unit,
        "note": "; ".join(failures),
        "repetitions_ok": len(ok),
        "ops": statistics.median(r.ops for r in ok),
        "throughput_per_s": median_or_none([p["throughput_per_s"] for p in per_rep]),
        "p50_ms": median_or_none([p["p50_ms"] for p in per_rep]),
        "p99_ms": median_or_none([p["p99_ms"] for p in per_rep]),
        "cpu_ms_per_op": median_or_none([p["cpu_ms_per_op"] for p in per_rep]),
        "per_repetition": per_rep,
        "latencies_ms": [round(v, 3) for v in latencies],
    }


def summarize_server(runs: list[ServerRun], specs: list[PhaseSpec]) -> dict[str, Any]:
    ok_runs = [r for r in runs if r.status == "ok"]
    status = "ok" if ok_runs else "unavailable"
    return {
        "status": status,
        "note": "; ".join(sorted({r.note for r in runs if r.note})),
        "version": next((r.version for r in runs if r.version), None),
        "repetitions": len(runs),
        "memory": {
            "startup_s": rounded(median_or_none([r.startup_s for r in ok_runs])),
            "idle_rss_mb": rounded(median_or_none([r.idle_rss_mb for r in ok_runs]), 1),
            "loaded_rss_mb": rounded(
                median_or_none([r.loaded_rss_mb for r in ok_runs]), 1
            ),
            "idle_rss_mb_per_repetition": [rounded(r.idle_rss_mb, 1) for r in ok_runs],
            "loaded_rss_mb_per_repetition": [
                rounded(r.loaded_rss_mb, 1) for r in ok_runs
            ],
        },
        "phases": {
            spec.name: summarize_phase(
                [r.phases[spec.name] for r in runs if spec.name in r.phases]
            )
            | {"description": spec.description}
            for spec in specs
        },
    }
