"""Benchmark Ranvier and Synapse side by side.

    python bench/run.py --quick|--full|--smoke --engine sqlite|postgres|both \
        --servers ranvier,synapse --out bench/results/

Writes ``bench-<mode>-<time>.json`` (machine-readable), ``.md`` (tables with ratios
and targets) and ``-latency-<engine>.png`` (needs matplotlib; see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: make `bench` importable from the repository root.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench.harness import ServerRun, run_server_once, summarize_server
from bench.report import compute_ratios, render_markdown
from bench.servers import BENCH_DIR, REPO_DIR, STARTERS, Cleanup, synapse_python
from bench.sizes import MODES, scaled_down_note
from bench.workloads import ALL_WORKLOADS
from bench.workloads.base import Workload

SCHEMA_VERSION = 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    for name in MODES:
        mode.add_argument(
            f"--{name}",
            dest="mode",
            action="store_const",
            const=name,
            help=f"{name} sizes",
        )
    parser.set_defaults(mode="quick")
    parser.add_argument(
        "--engine", choices=["sqlite", "postgres", "both"], default="sqlite"
    )
    parser.add_argument("--servers", default="ranvier,synapse")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results")
    parser.add_argument(
        "--repetitions", type=int, help="override the mode's repetitions"
    )
    parser.add_argument(
        "--workloads",
        help="comma-separated subset of: " + ", ".join(w.name for w in ALL_WORKLOADS),
    )
    parser.add_argument(
        "--no-setup",
        action="store_true",
        help="do not run bench/setup_synapse.sh before using Synapse",
    )
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="copy each server's logs to OUT/logs-<time>/ before removing its data",
    )
    args = parser.parse_args(argv)
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(args.server_list) - set(STARTERS)
    if unknown or not args.server_list:
        parser.error(f"--servers: choose from {', '.join(STARTERS)}")
    return args


def select_workloads(names: str | None) -> tuple[Workload, ...]:
    if not names:
        return ALL_WORKLOADS
    wanted = {n.strip() for n in names.split(",")}
    unknown = wanted - {w.name for w in ALL_WORKLOADS}
    if unknown:
        raise SystemExit(f"unknown workloads: {', '.join(sorted(unknown))}")
    return tuple(w for w in ALL_WORKLOADS if w.name in wanted)


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(REPO_DIR), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status)}


def ensure_synapse() -> None:
    script = BENCH_DIR / "setup_synapse.sh"
    done = subprocess.run(["bash", str(script)], check=False)
    if done.returncode != 0:
        print(f"warning: {script} failed ({done.returncode})", file=sys.stderr)


async def run_all(
    args: argparse.Namespace, cleanup: Cleanup
) -> tuple[dict[str, Any], dict[str, dict[str, list[ServerRun]]]]:
    sizes = MODES[args.mode]
    if args.repetitions:
        sizes = dataclasses.replace(sizes, repetitions=args.repetitions)
    workloads = select_workloads(args.workloads)
    engines = ["sqlite", "postgres"] if args.engine == "both" else [args.engine]
    runs: dict[str, dict[str, list[ServerRun]]] = {
        e: {s: [] for s in args.server_list} for e in engines
    }
    logs_dir: Path | None = None
    if args.keep_logs:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        logs_dir = args.out / f"logs-{stamp}"
        print(f"bench: keeping server logs in {logs_dir}")
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        for engine in engines:
            for repetition in range(sizes.repetitions):
                # Servers alternate (ranvier, synapse, ranvier, synapse, …) so slow
                # drifts of a shared, noisy machine hit both alike.
                for kind in args.server_list:
                    runs[engine][kind].append(
                        await run_server_once(
                            kind,
                            engine,
                            repetition,
                            sizes,
                            workloads,
                            cleanup,
                            session,
                            keep_logs=logs_dir,
                        )
                    )
                    # Stop and clean up now: the next server runs alone.
                    cleanup.run_all()
    return sizes.as_json(), runs


def build_document(
    args: argparse.Namespace,
    sizes: dict[str, Any],
    runs: dict[str, dict[str, list[ServerRun]]],
    started: datetime,
    duration_s: float,
) -> dict[str, Any]:
    workloads = select_workloads(args.workloads)
    sizes_obj = MODES[args.mode]
    specs = [s for w in workloads for s in w.phases(sizes_obj)]
    engines: dict[str, Any] = {}
    versions: dict[str, str | None] = dict.fromkeys(args.server_list)
    for engine, by_server in runs.items():
        servers = {kind: summarize_server(r, specs) for kind, r in by_server.items()}
        for kind, summary in servers.items():
            versions[kind] = versions[kind] or summary["version"]
        engines[engine] = {"servers": servers, "ratios": compute_ratios(servers)}
    return {
        "schema": SCHEMA_VERSION,
        "mode": args.mode,
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": round(duration_s, 1),
        "host": {
            "cpus": os.cpu_count(),
            # The machine is shared: a high load average means noisy absolute figures.
            "loadavg_at_start": args.loadavg_at_start,
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "git": git_info(),
        "versions": versions,
        "servers": args.server_list,
        "workloads": [w.name for w in workloads],
        "sizes": sizes,
        "scaled_down": scaled_down_note(sizes_obj),
        "engines": engines,
    }


def make_plots(json_path: Path, prefix: Path) -> tuple[list[str], str | None]:
    """Plot in-process if matplotlib is here, else with the Synapse venv's Python."""
    if importlib.util.find_spec("matplotlib") is not None:
        from bench.plot import plot_result

        return plot_result(json.loads(json_path.read_text()), str(prefix)), None
    python = synapse_python()
    if not python.exists():
        return [], "matplotlib not available (run bench/setup_synapse.sh)"
    done = subprocess.run(
        [str(python), str(BENCH_DIR / "plot.py"), str(json_path), str(prefix)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return [], f"plotting failed: {done.stderr.strip()[-300:]}"
    return done.stdout.split(), None


def write_outputs(doc: dict[str, Any], out_dir: Path, no_plot: bool) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    base = out_dir / f"bench-{doc['mode']}-{stamp}"
    json_path = base.with_suffix(".json")
    md_path = base.with_suffix(".md")
    doc["outputs"] = {"json": str(json_path), "markdown": str(md_path), "plots": []}
    json_path.write_text(json.dumps(doc, indent=1))
    plots: list[str] = []
    why: str | None = "disabled with --no-plot"
    if not no_plot:
        plots, why = make_plots(json_path, Path(f"{base}-latency"))
    doc["outputs"]["plots"] = plots
    doc["outputs"]["plot_note"] = why
    json_path.write_text(json.dumps(doc, indent=1))
    md = render_markdown(doc)
    if plots:
        md += "\n" + "\n".join(f"![latency]({Path(p).name})" for p in plots) + "\n"
    elif why:
        md += f"\nNo latency plot: {why}\n"
    md_path.write_text(md)
    outputs: dict[str, Any] = doc["outputs"]
    return outputs


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C and SIGTERM both end the run through the same clean-up path. SIGINT is
    # reset explicitly: a parent shell may have started us with it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    if "synapse" in args.server_list and not args.no_setup:
        ensure_synapse()
    started = datetime.now(UTC)
    args.loadavg_at_start = [round(x, 2) for x in os.getloadavg()]
    t0 = time.monotonic()
    cleanup = Cleanup()
    print(
        f"bench: {args.mode} mode, engine {args.engine}, servers {','.join(args.server_list)}"
    )
    note = scaled_down_note(MODES[args.mode])
    if note:
        print(f"bench: {note}")
    try:
        sizes, runs = asyncio.run(run_all(args, cleanup))
    except KeyboardInterrupt:
        print("bench: interrupted; stopping servers and removing temporary data")
        return 130
    finally:
        cleanup.run_all()
    doc = build_document(args, sizes, runs, started, time.monotonic() - t0)
    outputs = write_outputs(doc, args.out, args.no_plot)
    print(f"bench: done in {doc['duration_s']:.0f}s")
    print(f"bench: {outputs['json']}\nbench: {outputs['markdown']}")
    for plot in outputs["plots"]:
        print(f"bench: {plot}")
    if outputs.get("plot_note"):
        print(f"bench: no plot: {outputs['plot_note']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
