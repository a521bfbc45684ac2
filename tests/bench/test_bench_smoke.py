"""Smoke test of the benchmark harness: tiny sizes, Ranvier only, SQLite.

It does not need Synapse (bench/.venv-synapse) and never installs it. A workload that
Ranvier does not implement yet (404 M_UNRECOGNIZED) is reported "n/a" and is fine here;
one that Ranvier implements must produce real, positive figures and never "error".
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
RANVIER = REPO / ".venv" / "bin" / "ranvier"

EXPECTED_PHASES = {
    "register",
    "login",
    "send_one_room",
    "send_many_rooms",
    "sync_fanout_3",
    "initial_sync",
    "initial_sync_lazy",
    "big_room_join",
    "big_room_initial_sync",
    "big_room_initial_sync_lazy",
    "paginate",
    "sliding_first_page_3",
    "sliding_incremental_3",
}


def _ranvier_runnable() -> bool:
    if not RANVIER.exists():
        return False
    done = subprocess.run(
        [str(RANVIER), "run", "--help"], capture_output=True, timeout=60, check=False
    )
    return done.returncode == 0


@pytest.mark.skipif(
    not _ranvier_runnable(), reason="`ranvier run` is not runnable yet (no server)"
)
@pytest.mark.timeout(300)
def test_bench_smoke_against_ranvier(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "run.py"),
            "--smoke",
            "--engine",
            "sqlite",
            "--servers",
            "ranvier",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    json_files = list(tmp_path.glob("bench-smoke-*.json"))
    md_files = list(tmp_path.glob("bench-smoke-*.md"))
    assert len(json_files) == 1, done.stdout
    assert len(md_files) == 1, done.stdout
    doc: dict[str, Any] = json.loads(json_files[0].read_text())

    assert doc["schema"] == 1
    assert doc["mode"] == "smoke"
    assert doc["servers"] == ["ranvier"]
    assert doc["scaled_down"]
    assert set(doc["sizes"]) >= {"repetitions", "concurrency", "registrations"}
    assert set(doc["git"]) == {"commit", "dirty"}
    for plot in doc["outputs"]["plots"]:
        assert Path(plot).is_file()
    assert doc["outputs"]["plots"] or doc["outputs"]["plot_note"]

    engine = doc["engines"]["sqlite"]
    server = engine["servers"]["ranvier"]
    assert server["status"] == "ok", server["note"]
    assert server["memory"]["idle_rss_mb"] > 0
    assert server["memory"]["loaded_rss_mb"] > 0
    assert server["memory"]["startup_s"] > 0
    assert set(server["phases"]) == EXPECTED_PHASES
    assert set(engine["ratios"]["phases"]) == EXPECTED_PHASES
    assert "idle_rss" in engine["ratios"]["memory"]

    for name, phase in server["phases"].items():
        assert phase["status"] in {"ok", "n/a"}, f"{name}: {phase['note']}"
        if phase["status"] != "ok":
            continue
        assert phase["ops"] > 0, name
        assert phase["throughput_per_s"] > 0, name
        assert 0 < phase["p50_ms"] <= phase["p99_ms"], name
        assert phase["cpu_ms_per_op"] >= 0, name
        assert len(phase["latencies_ms"]) >= phase["ops"], name

    markdown = md_files[0].read_text()
    assert "| workload |" in markdown
    assert "idle RSS" in markdown
