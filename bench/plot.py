"""Plot the latency distributions of a result file (one PNG per engine).

Standalone on purpose: it needs only the standard library and matplotlib, so the
harness can run it with bench/.venv-synapse's Python when Ranvier's venv has no
matplotlib:  ``python bench/plot.py RESULT.json OUT_PREFIX``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

COLOURS = {"ranvier": "tab:blue", "synapse": "tab:orange"}


def plot_result(doc: dict[str, Any], out_prefix: str) -> list[str]:
    """Write ``{out_prefix}-{engine}.png`` per engine with data; return the paths."""
    import matplotlib  # type: ignore[import-not-found,unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]

    written: list[str] = []
    for engine, result in doc["engines"].items():
        servers: dict[str, Any] = result["servers"]
        phase_names: list[str] = []
        for server in servers.values():
            for name in server.get("phases", {}):
                if name not in phase_names:
                    phase_names.append(name)
        if not phase_names:
            continue
        cols = 3
        rows = math.ceil(len(phase_names) / cols)
        fig, axes = plt.subplots(
            rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False
        )
        for index, phase in enumerate(phase_names):
            ax = axes[index // cols][index % cols]
            _plot_phase(ax, servers, phase)
        for index in range(len(phase_names), rows * cols):
            axes[index // cols][index % cols].set_visible(False)
        fig.suptitle(
            f"Latency distributions (ECDF, log scale) — {engine}, {doc['mode']} mode"
        )
        fig.tight_layout()
        path = f"{out_prefix}-{engine}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def _plot_phase(ax: Any, servers: dict[str, Any], phase: str) -> None:
    plotted = False
    for name, server in servers.items():
        entry = server.get("phases", {}).get(phase, {})
        values = sorted(entry.get("latencies_ms") or [])
        if entry.get("status") != "ok" or not values:
            continue
        ys = [(i + 1) / len(values) for i in range(len(values))]
        ax.step(
            values,
            ys,
            where="post",
            color=COLOURS.get(name),
            label=f"{name} p50 {entry['p50_ms']:.1f} p99 {entry['p99_ms']:.1f} ms",
        )
        plotted = True
    ax.set_title(phase, fontsize=10)
    ax.set_xlabel("latency (ms)")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    if plotted:
        from matplotlib.ticker import NullFormatter  # type: ignore[import-not-found,unused-ignore]

        ax.set_xscale("log")
        # Narrow ranges get labelled minor ticks on a log axis; they overlap.
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=8, loc="lower right")
    else:
        ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: plot.py RESULT.json OUT_PREFIX", file=sys.stderr)
        return 2
    doc = json.loads(Path(argv[0]).read_text())
    for path in plot_result(doc, argv[1]):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
