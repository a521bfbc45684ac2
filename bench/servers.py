"""Start, watch and stop the homeservers under test (Ranvier and Synapse).

Each run gets a fresh temporary data directory, a free loopback port and, on
PostgreSQL, a fresh database that is dropped afterwards. Everything started here is
registered with a :class:`Cleanup` so it is stopped and removed on success, on error
and on Ctrl-C (and, as a last resort, at interpreter exit).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.metadata
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import yaml

BENCH_DIR: Final = Path(__file__).resolve().parent
REPO_DIR: Final = BENCH_DIR.parent
SYNAPSE_VENV: Final = BENCH_DIR / ".venv-synapse"
SERVER_NAME: Final = "bench.localhost"
PG_DSN_ADMIN: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_POOL_SIZE: Final = 10
READY_TIMEOUT_S: Final = 120.0
STOP_TIMEOUT_S: Final = 20.0

# Rate limits high enough never to trigger during a benchmark. Each name is a
# Synapse `rc_*` option; per_second/burst_count far beyond any load generated here.
_UNLIMITED: Final = {"per_second": 1_000_000, "burst_count": 1_000_000}
SYNAPSE_RATE_LIMITS: Final[dict[str, Any]] = {
    "rc_message": _UNLIMITED,
    "rc_registration": _UNLIMITED,
    "rc_registration_token_validity": _UNLIMITED,
    "rc_login": {
        "address": _UNLIMITED,
        "account": _UNLIMITED,
        "failed_attempts": _UNLIMITED,
    },
    "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
    "rc_joins_per_room": _UNLIMITED,
    "rc_invites": {
        "per_room": _UNLIMITED,
        "per_user": _UNLIMITED,
        "per_issuer": _UNLIMITED,
    },
    "rc_3pid_validation": _UNLIMITED,
    "rc_third_party_invite": _UNLIMITED,
    "rc_admin_redaction": _UNLIMITED,
    "rc_room_creation": _UNLIMITED,
    "rc_presence": {"per_user": _UNLIMITED},
    "rc_delayed_event_mgmt": _UNLIMITED,
    "rc_reports": _UNLIMITED,
    "rc_user_directory": _UNLIMITED,
    "rc_profile": _UNLIMITED,
    "rc_media_create": _UNLIMITED,
    "rc_key_requests": _UNLIMITED,
}


class ServerUnavailable(Exception):
    """A server could not be set up or started; its workloads are reported n/a."""


class Cleanup:
    """Synchronous, idempotent clean-up actions, run in reverse order of registration."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], None]]] = []
        atexit.register(self.run_all)

    def add(self, name: str, action: Callable[[], None]) -> Callable[[], None]:
        entry = (name, action)
        self._actions.append(entry)

        def run_once() -> None:
            if entry in self._actions:
                self._actions.remove(entry)
                _run_quietly(name, action)

        return run_once

    def run_all(self) -> None:
        while self._actions:
            name, action = self._actions.pop()
            _run_quietly(name, action)


def _run_quietly(name: str, action: Callable[[], None]) -> None:
    try:
        action()
    except Exception as exc:  # clean-up must go on with the next action
        print(f"  clean-up {name!r} failed: {exc}", file=sys.stderr)


def free_port() -> int:
    """A loopback port free right now (bind to port 0 and let the kernel pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- PostgreSQL ----------------------------------------------------------------------


def create_pg_database(cleanup: Cleanup, server: str) -> str:
    """Create a fresh C-collated database; register its drop. Return its name."""
    import psycopg  # only needed for --engine postgres

    name = f"bench_{server}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_DSN_ADMIN, autocommit=True) as conn:
        conn.execute(
            f'CREATE DATABASE "{name}" TEMPLATE template0 '
            "LC_COLLATE 'C' LC_CTYPE 'C' ENCODING 'UTF8'"
        )

    def drop() -> None:
        with psycopg.connect(PG_DSN_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    cleanup.add(f"drop database {name}", drop)
    return name


# -- server processes ----------------------------------------------------------------


@dataclass
class RunningServer:
    """A started homeserver process."""

    kind: str
    engine: str
    base_url: str
    proc: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    started_at: float
    ready_after_s: float = 0.0
    version: str | None = None
    fallback_version: str | None = None
    """Used when the server has no federation version endpoint."""
    notes: list[str] = field(default_factory=list)
    _stop: Callable[[], None] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()


def _spawn(
    cleanup: Cleanup, argv: list[str], log_path: Path, cwd: Path
) -> tuple[subprocess.Popen[bytes], Callable[[], None]]:
    log = log_path.open("ab")
    # A session of its own: Ctrl-C in the terminal reaches only the harness, which
    # then stops the server in order; killpg reaches only processes started here.
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        start_new_session=True,
    )
    log.close()

    def stop() -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)
        # Children the server left behind in its own process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    return proc, cleanup.add(f"stop {argv[0]} (pid {proc.pid})", stop)


def _make_data_dir(cleanup: Cleanup, kind: str) -> Path:
    data_dir = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
    cleanup.add(f"remove {data_dir}", lambda: shutil.rmtree(data_dir, True))
    return data_dir


def _run_checked(
    argv: list[str], cwd: Path, what: str
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerUnavailable(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise ServerUnavailable(f"{what} exited {done.returncode}: {tail}")
    return done


def _write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def synapse_python() -> Path:
    return SYNAPSE_VENV / "bin" / "python"


def start_synapse(cleanup: Cleanup, engine: str) -> RunningServer:
    """Generate a Synapse config (its defaults, plus bench/README.md's deviations)."""
    python = synapse_python()
    if not python.exists():
        raise ServerUnavailable(
            f"{python} missing: run bench/setup_synapse.sh to install Synapse"
        )
    data_dir = _make_data_dir(cleanup, "synapse")
    base_config = data_dir / "homeserver.yaml"
    _run_checked(
        [
            str(python),
            "-m",
            "synapse.app.homeserver",
            "--generate-config",
            "--server-name",
            SERVER_NAME,
            "--config-path",
            str(base_config),
            "--data-directory",
            str(data_dir),
            "--config-directory",
            str(data_dir),
            "--report-stats=no",
        ],
        data_dir,
        "synapse --generate-config",
    )
    port = free_port()
    if engine == "postgres":
        db_name = create_pg_database(cleanup, "synapse")
        database: dict[str, Any] = {
            "name": "psycopg2",
            "args": {
                "user": "postgres",
                "host": "127.0.0.1",
                "port": 5432,
                "database": db_name,
                "cp_min": PG_POOL_SIZE // 2,
                "cp_max": PG_POOL_SIZE,
            },
        }
    else:
        database = {
            "name": "sqlite3",
            "args": {"database": str(data_dir / "homeserver.db")},
        }
    override: dict[str, Any] = {
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client", "federation"], "compress": False}],
            }
        ],
        "database": database,
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "report_stats": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        **SYNAPSE_RATE_LIMITS,
    }
    override_path = _write_yaml(data_dir / "bench-override.yaml", override)
    argv = [
        str(python),
        "-m",
        "synapse.app.homeserver",
        "--config-path",
        str(base_config),
        "--config-path",
        str(override_path),
    ]
    log_path = data_dir / "stdout.log"
    proc, stop = _spawn(cleanup, argv, log_path, data_dir)
    return RunningServer(
        kind="synapse",
        engine=engine,
        base_url=f"http://127.0.0.1:{port}",
        proc=proc,
        data_dir=data_dir,
        log_path=log_path,
        started_at=time.monotonic(),
        _stop=stop,
    )


def ranvier_executable() -> Path | None:
    candidate = REPO_DIR / ".venv" / "bin" / "ranvier"
    if candidate.exists():
        return candidate
    found = shutil.which("ranvier")
    return Path(found) if found else None


def _find_ranvier_config(data_dir: Path, init_stdout: str) -> Path:
    for preferred in ("homeserver.yaml", "ranvier.yaml", "config.yaml"):
        if (data_dir / preferred).exists():
            return data_dir / preferred
    for token in init_stdout.split():
        if token.endswith((".yaml", ".yml")) and Path(token).exists():
            return Path(token)
    found = sorted(data_dir.glob("*.y*ml"))
    if len(found) == 1:
        return found[0]
    raise ServerUnavailable(f"ranvier init wrote no recognisable config in {data_dir}")


def start_ranvier(cleanup: Cleanup, engine: str) -> RunningServer:
    exe = ranvier_executable()
    if exe is None:
        raise ServerUnavailable("no `ranvier` executable (expected .venv/bin/ranvier)")
    data_dir = _make_data_dir(cleanup, "ranvier")
    port = free_port()
    init = _run_checked(
        [
            str(exe),
            "init",
            "--server-name",
            SERVER_NAME,
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
        ],
        data_dir,
        "ranvier init",
    )
    base_config = _find_ranvier_config(data_dir, init.stdout)
    if engine == "postgres":
        db_name = create_pg_database(cleanup, "ranvier")
        database: dict[str, Any] = {
            "engine": "postgres",
            "dsn": f"postgresql://postgres@127.0.0.1:5432/{db_name}",
            "pool_size": PG_POOL_SIZE,
        }
    else:
        database = {"engine": "sqlite", "path": str(data_dir / "homeserver.db")}
    override: dict[str, Any] = {
        "database": database,
        "rate_limits": {"enabled": False},
        "registration": {"enabled": True, "require_token": False},
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "resources": ["client", "federation", "keys", "media"],
            }
        ],
    }
    override_path = _write_yaml(data_dir / "bench-override.yaml", override)
    argv = [
        str(exe),
        "run",
        "--config",
        str(base_config),
        "--config",
        str(override_path),
    ]
    log_path = data_dir / "stdout.log"
    proc, stop = _spawn(cleanup, argv, log_path, data_dir)
    return RunningServer(
        kind="ranvier",
        engine=engine,
        base_url=f"http://127.0.0.1:{port}",
        proc=proc,
        data_dir=data_dir,
        log_path=log_path,
        started_at=time.monotonic(),
        fallback_version=_ranvier_package_version(),
        _stop=stop,
    )


def _ranvier_package_version() -> str | None:
    try:
        return f"Ranvier {importlib.metadata.version('ranvier')} (package metadata)"
    except importlib.metadata.PackageNotFoundError:
        return None


STARTERS: Final[dict[str, Callable[[Cleanup, str], RunningServer]]] = {
    "ranvier": start_ranvier,
    "synapse": start_synapse,
}


async def wait_ready(server: RunningServer, session: aiohttp.ClientSession) -> None:
    """Poll ``/_matrix/client/versions`` until it answers 200 (or the process dies)."""
    url = f"{server.base_url}/_matrix/client/versions"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not server.alive():
            raise ServerUnavailable(
                f"{server.kind} exited with {server.proc.returncode} before ready:\n"
                + server.log_tail()
            )
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                if resp.status == 200:
                    await resp.read()
                    server.ready_after_s = time.monotonic() - server.started_at
                    server.version = (
                        await _server_version(server, session)
                        or server.fallback_version
                    )
                    return
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.1)
    raise ServerUnavailable(
        f"{server.kind} not ready after {READY_TIMEOUT_S:.0f}s:\n" + server.log_tail()
    )


async def _server_version(
    server: RunningServer, session: aiohttp.ClientSession
) -> str | None:
    """The version from the federation version endpoint, if the server has it."""
    url = f"{server.base_url}/_matrix/federation/v1/version"
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
            if resp.status != 200:
                return None
            body = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    info = body.get("server") if isinstance(body, dict) else None
    if isinstance(info, dict) and isinstance(info.get("version"), str):
        return f"{info.get('name', server.kind)} {info['version']}"
    return None
