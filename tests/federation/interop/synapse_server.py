"""A real Synapse (from PyPI) on loopback with TLS, for the interop suite.

`ensure_synapse_installed()` runs `bench/setup_synapse.sh` (idempotent, about a second
when Synapse is already in `bench/.venv-synapse`). `SynapseServer` writes a config for
server name `HOST:PORT` (an IP literal with an explicit port: Synapse then connects
straight to that address over TLS, with no .well-known or SRV lookups), starts
`synapse.app.homeserver` in its own process group and stops it again; it can be
restarted on the same port with the same data.

Synapse's config deviations from its defaults, and why:
* federation TLS certificates are checked against the test CA (`federation_custom_ca_list`);
* `ip_range_blacklist: []`: loopback peers are otherwise refused (the whitelist alone
  does not unblock IP literals); `trusted_key_servers: []`: no notary on loopback;
* the public room list is published over federation; registration is open;
* rate limits are out of the way, and the federation retry intervals are short so a
  peer that was down is retried within the test's time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

REPO_DIR: Final = Path(__file__).resolve().parents[3]
SETUP_SCRIPT: Final = REPO_DIR / "bench" / "setup_synapse.sh"
SYNAPSE_PYTHON: Final = REPO_DIR / "bench" / ".venv-synapse" / "bin" / "python"
READY_TIMEOUT_S: Final = 90.0
STOP_TIMEOUT_S: Final = 20.0
REGISTRATION_SECRET: Final = "interop-registration-secret"

_UNLIMITED: Final = {"per_second": 100_000, "burst_count": 100_000}
_RATE_LIMITS: Final[dict[str, Any]] = {
    "rc_message": _UNLIMITED,
    "rc_registration": _UNLIMITED,
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
    "rc_federation": {
        "window_size": 1000,
        "sleep_limit": 1000,
        "sleep_delay": 1,
        "reject_limit": 1000,
        "concurrent": 100,
    },
    "rc_room_creation": _UNLIMITED,
    "rc_presence": {"per_user": _UNLIMITED},
    "rc_profile": _UNLIMITED,
}


class SynapseUnavailable(Exception):
    """Synapse could not be installed or started."""


def ensure_synapse_installed() -> Path:
    """The Synapse venv's python, installing Synapse first when needed."""
    try:
        done = subprocess.run(
            ["bash", str(SETUP_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SynapseUnavailable(f"{SETUP_SCRIPT} failed: {e}") from None
    if done.returncode != 0 or not SYNAPSE_PYTHON.exists():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise SynapseUnavailable(f"{SETUP_SCRIPT} exited {done.returncode}: {tail}")
    return SYNAPSE_PYTHON


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class SynapseServer:
    """One Synapse: TLS federation+client listener on `host:port` (the server name),
    plus a plain-HTTP client listener on `host:client_port` for test clients."""

    python: Path
    data_dir: Path
    host: str
    cert: Path
    key: Path
    ca_file: Path
    port: int = 0
    client_port: int = 0
    extra_config: dict[str, Any] = field(default_factory=dict)
    _proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.port = self.port or free_port(self.host)
        self.client_port = self.client_port or free_port(self.host)

    @property
    def server_name(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def client_url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "homeserver.log"

    def write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "server_name": self.server_name,
            "pid_file": str(self.data_dir / "homeserver.pid"),
            "public_baseurl": f"{self.client_url}/",
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": [self.host],
                    "type": "http",
                    "tls": True,
                    "resources": [{"names": ["federation", "client"]}],
                },
                {
                    "port": self.client_port,
                    "bind_addresses": [self.host],
                    "type": "http",
                    "tls": False,
                    "resources": [{"names": ["client"]}],
                },
            ],
            "tls_certificate_path": str(self.cert),
            "tls_private_key_path": str(self.key),
            "federation_custom_ca_list": [str(self.ca_file)],
            "database": {
                "name": "sqlite3",
                "args": {"database": str(self.data_dir / "homeserver.db")},
            },
            "log_config": str(self._write_log_config()),
            "media_store_path": str(self.data_dir / "media"),
            "signing_key_path": str(self.data_dir / "signing.key"),
            "report_stats": False,
            "macaroon_secret_key": "interop-macaroon",
            "form_secret": "interop-form",
            "registration_shared_secret": REGISTRATION_SECRET,
            "enable_registration": True,
            "enable_registration_without_verification": True,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "ip_range_blacklist": [],
            "allow_public_rooms_over_federation": True,
            "allow_public_rooms_without_auth": True,
            "room_list_publication_rules": [{"action": "allow"}],
            "alias_creation_rules": [{"action": "allow"}],
            "presence": {"enabled": True},
            "federation": {
                "destination_min_retry_interval": "1s",
                "destination_max_retry_interval": "3s",
                "max_short_retry_delay": 500,
                "max_long_retry_delay": "2s",
                "max_long_retries": 3,
            },
            **_RATE_LIMITS,
            **self.extra_config,
        }
        path = self.data_dir / "homeserver.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _write_log_config(self) -> Path:
        path = self.data_dir / "log.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "version": 1,
                    "formatters": {
                        "precise": {
                            "format": "%(asctime)s - %(name)s - %(lineno)d - "
                            "%(levelname)s - %(request)s - %(message)s"
                        }
                    },
                    "handlers": {
                        "file": {
                            "class": "logging.FileHandler",
                            "formatter": "precise",
                            "filename": str(self.log_path),
                        }
                    },
                    "loggers": {"synapse.storage.SQL": {"level": "WARNING"}},
                    "root": {"level": "INFO", "handlers": ["file"]},
                    "disable_existing_loggers": False,
                }
            )
        )
        return path

    def start(self) -> None:
        config = self.write_config()
        if not (self.data_dir / "signing.key").exists():
            self._run(["--generate-keys"], config)
        log = (self.data_dir / "stdout.log").open("ab")
        self._proc = subprocess.Popen(
            [str(self.python), "-m", "synapse.app.homeserver", "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
            start_new_session=True,
        )
        log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _run(self, args: list[str], config: Path) -> None:
        done = subprocess.run(
            [
                str(self.python),
                "-m",
                "synapse.app.homeserver",
                "-c",
                str(config),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=self.data_dir,
        )
        if done.returncode != 0:
            raise SynapseUnavailable(f"synapse {args}: {done.stderr[-2000:]}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        url = f"{self.client_url}/_matrix/client/versions"
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise SynapseUnavailable(f"synapse exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise SynapseUnavailable(f"synapse not ready: {self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            text = ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)

    def register_user(self, localpart: str, *, admin: bool = False) -> str:
        """Register via the shared-secret admin API; returns an access token."""
        import hashlib
        import hmac

        base = f"{self.client_url}/_synapse/admin/v1/register"
        nonce = _get_json(base)["nonce"]
        password = f"pw-{localpart}"
        mac = hmac.new(REGISTRATION_SECRET.encode(), digestmod=hashlib.sha1)
        mac.update(
            b"\x00".join(
                [
                    nonce.encode(),
                    localpart.encode(),
                    password.encode(),
                    b"admin" if admin else b"notadmin",
                ]
            )
        )
        body = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        return str(_post_json(base, body)["access_token"])


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _post_json(url: str, body: Any) -> Any:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def client_tls_context(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))
