#!/usr/bin/env python3
"""Start Ranvier from the SyTest harness's generic settings file.

    SYTEST_IMPL=Generic \
    SYTEST_HS_COMMAND="<venv>/bin/python tests/sytest/ranvier_from_generic.py" \
    run-sytest.sh tests/...

`make sytest` runs it that way. SyTest's Generic plugin starts
`$SYTEST_HS_COMMAND <settings.json>` for every homeserver it needs; this script

  1. runs `ranvier init --server-name S --data-dir <data_dir>`: the commented
     base homeserver.yaml and a fresh signing key;
  2. writes <hs_dir>/ranvier-sytest.yaml, an overlay mapping every settings
     field Ranvier has a config key for;
  3. runs `ranvier check-config` on both files (errors show in SyTest's output);
  4. writes <hs_dir>/homeserver.pid and execs `ranvier run` with both files,
     stdout and stderr appended to settings["log_file"].

It always runs the Ranvier of the checkout it lives in (`<repo>/src` goes first
on PYTHONPATH), whatever venv supplies the interpreter, so a worktree tests
its own code.

Settings without a Ranvier config key (the tests needing them fail or skip):
macaroon_secret_key, recaptcha, cas. app_service_config_files are handed over as they
are.
registration_shared_secret maps to registration.shared_secret, and both listeners
serve the admin API (SyTest registers its admins through /_synapse/admin/v1/register).

Outbound HTTPS to SyTest's own servers (push gateway, URL previews) is
verified against the system trust store; SyTest signs their certificates with
keys/ca.crt. So the adapter writes a CA bundle of the system store plus
SyTest's CA (and its self-signed identity-server certificate) and points
SSL_CERT_FILE at it, which OpenSSL, and so aiohttp's default context, honours.

Environment knobs (all optional):
  RANVIER_SYTEST_ROOM_VERSION  limits.default_room_version (default: Ranvier's)
  RANVIER_SYTEST_LOG_LEVEL     log.level (default INFO)
  RANVIER_SYTEST_POSTGRES_DSN  use PostgreSQL with this DSN instead of SQLite;
                               also used when <hs_dir>/database.yaml names
                               psycopg2 (SyTest's way of asking for Postgres)
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

LOOPBACK = ["127.0.0.0/8", "::1/128"]
REPO_SRC = Path(__file__).resolve().parents[2] / "src"
CLI = "import sys; from ranvier.app.cli import main; sys.exit(main())"


def ranvier_env() -> dict[str, str]:
    """The environment for every ranvier command: this checkout's src first."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{REPO_SRC}{os.pathsep}{path}" if path else str(REPO_SRC)
    return env


def ranvier_cmd() -> list[str]:
    return [sys.executable, "-c", CLI]


def postgres_dsn(hs_dir: Path) -> str | None:
    dsn = os.environ.get("RANVIER_SYTEST_POSTGRES_DSN")
    if dsn:
        return dsn
    for name in ("database.yaml", "databases.yaml"):
        path = hs_dir / name
        if not path.exists():
            continue
        db: Any = yaml.safe_load(path.read_text()) or {}
        if name == "databases.yaml":
            db = (db.get("main") or {}) if isinstance(db, dict) else {}
        if isinstance(db, dict) and db.get("name") in ("psycopg2", "psycopg"):
            a = db.get("args") or {}
            password = f" password={a['password']}" if a.get("password") else ""
            return (
                f"host={a.get('host', '127.0.0.1')} port={a.get('port', 5432)} "
                f"user={a.get('user', 'postgres')} "
                f"dbname={a.get('database', 'postgres')}{password}"
            )
    return None


def ca_bundle(hs_dir: Path, sytest_ca: str) -> Path:
    """System trust store + SyTest's CA + its self-signed identity-server cert."""
    parts: list[str] = []
    paths = ssl.get_default_verify_paths()
    system = (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt")
    for candidate in system:
        if candidate and os.path.exists(candidate):
            parts.append(Path(candidate).read_text())
            break
    ca = Path(sytest_ca)
    for extra in (ca, ca.parent / "tls-selfsigned.crt"):
        if extra.exists():
            parts.append(extra.read_text())
    out = hs_dir / "outbound-ca-bundle.pem"
    out.write_text("\n".join(parts))
    return out


def build_overlay(s: dict[str, Any], hs_dir: Path) -> dict[str, Any]:
    """Ranvier config keys for the settings SyTest hands every homeserver."""
    data = s["data_dir"]
    https_listener = {
        "port": s["https_port"],
        "bind_addresses": [s["bind_host"]],
        # SyTest talks to the client API at public_baseurl (https) and to the
        # federation API on the same port.
        "resources": ["client", "federation", "keys", "media", "admin"],
        "tls": {
            "certificate_path": s["tls_certificate_path"],
            "private_key_path": s["tls_private_key_path"],
        },
    }
    http_listener = {
        "port": s["http_port"],
        "bind_addresses": [s["bind_host"]],
        "resources": ["client", "media", "admin"],
    }
    dsn = postgres_dsn(hs_dir)
    database = (
        {"engine": "postgres", "dsn": dsn}
        if dsn
        else {"engine": "sqlite", "path": os.path.join(data, "homeserver.db")}
    )
    registration: dict[str, Any] = {
        "enabled": True,
        "require_token": False,
        "allow_guests": True,
    }
    if s.get("registration_shared_secret"):
        registration["shared_secret"] = s["registration_shared_secret"]
    overlay: dict[str, Any] = {
        "server_name": s["server_name"],
        "public_baseurl": s["public_baseurl"].rstrip("/") + "/",
        "data_dir": data,
        "signing_key_path": os.path.join(data, "signing.key"),
        "listeners": [https_listener, http_listener],
        "database": database,
        "registration": registration,
        "rate_limits": {"enabled": False},
        "federation": {
            "enabled": True,
            "verify_tls": False,
            "ip_range_allowlist": list(LOOPBACK),
            "trusted_key_servers": [],
        },
        "media": {
            "store_path": s["media_store_path"],
            "url_preview": {"enabled": True, "ip_range_allowlist": list(LOOPBACK)},
        },
        "log": {"level": os.environ.get("RANVIER_SYTEST_LOG_LEVEL", "INFO")},
    }
    if s.get("smtp"):
        overlay["email"] = {
            "smtp_host": s["smtp"]["host"],
            "smtp_port": int(s["smtp"]["port"]),
            "tls": "none",
            "notif_from": "homeserver@localhost",
        }
    appservice_files = [str(f) for f in s.get("app_service_config_files") or []]
    if appservice_files:
        overlay["app_service_config_files"] = appservice_files
    room_version = os.environ.get("RANVIER_SYTEST_ROOM_VERSION")
    if room_version:
        overlay["limits"] = {"default_room_version": str(room_version)}
    return overlay


def write_overlay(s: dict[str, Any], settings_path: str, hs_dir: Path) -> Path:
    overlay = build_overlay(s, hs_dir)
    path = hs_dir / "ranvier-sytest.yaml"
    given = {k: "given" if s.get(k) else "none" for k in ("recaptcha", "cas")}
    with path.open("w") as f:
        f.write(
            "# written by tests/sytest/ranvier_from_generic.py from\n"
            f"# {settings_path}; layered over the base homeserver.yaml\n"
            "# not mapped: macaroon_secret_key,"
            f" recaptcha ({given['recaptcha']}), cas ({given['cas']})\n"
        )
        yaml.safe_dump(overlay, f, sort_keys=False)
    return path


def main() -> None:
    settings_path = sys.argv[1]
    with open(settings_path) as f:
        s: dict[str, Any] = json.load(f)

    hs_dir = Path(settings_path).resolve().parent
    data = s["data_dir"]
    os.makedirs(data, exist_ok=True)
    os.makedirs(s["media_store_path"], exist_ok=True)
    ranvier = ranvier_cmd()
    env = ranvier_env()

    # 1. base config + signing key
    base = os.path.join(data, "homeserver.yaml")
    init = ["init", "--server-name", s["server_name"], "--data-dir", data]
    subprocess.run([*ranvier, *init], check=True, stdout=subprocess.DEVNULL, env=env)

    # 2. overlay
    overlay_path = write_overlay(s, settings_path, hs_dir)
    configs = ["--config", base, "--config", str(overlay_path)]

    # 3. validate (output goes to SyTest, which prints it if we die)
    subprocess.run([*ranvier, "check-config", *configs], check=True, env=env)

    # 4. run, logging to log_file
    env["SSL_CERT_FILE"] = str(ca_bundle(hs_dir, s["federation_ca_file"]))
    (hs_dir / "homeserver.pid").write_text(f"{os.getpid()}\n")
    log_fd = os.open(s["log_file"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    os.execve(ranvier[0], [*ranvier, "run", *configs], env)


if __name__ == "__main__":
    main()
