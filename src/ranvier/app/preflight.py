"""Start-up checks that run before any database work, each failing with one line.

`ranvier run` turns a `StartupError` into its message on stderr and its exit code (the
codes are listed in the README), never a traceback.
"""

from __future__ import annotations

import errno
import socket
import tempfile
from pathlib import Path

from ranvier.config.schema import HomeserverConfig
from ranvier.core.crypto.keys import read_signing_keys
from ranvier.storage.instance_lock import (
    AdvisoryLock,
    DatabaseUnreachableError,
    FileLock,
    InstanceLock,
    InstanceLockedError,
    connect_postgres,
)

EXIT_FILES = 3
EXIT_PORT = 4
EXIT_DATABASE = 5
EXIT_LOCKED = 6


class StartupError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def check_data_dir(data_dir: Path) -> None:
    if data_dir.exists() and not data_dir.is_dir():
        raise StartupError(
            f"data directory {data_dir} is not a directory; point data_dir at a directory",
            EXIT_FILES,
        )
    if not data_dir.is_dir():
        raise StartupError(
            f"data directory {data_dir} does not exist; create it or run "
            "`ranvier init --data-dir ...`",
            EXIT_FILES,
        )
    try:
        with tempfile.TemporaryFile(dir=data_dir):
            pass
    except OSError as exc:
        raise StartupError(
            f"data directory {data_dir} is not writable ({exc.strerror}); "
            "fix its owner or permissions",
            EXIT_FILES,
        ) from None


def check_signing_key(path: Path) -> None:
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise StartupError(
            f"signing key {path} is missing; restore it from backup, or create a new "
            "one with `ranvier init` (a new key breaks federation with servers that "
            "cached the old one)",
            EXIT_FILES,
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII"
        raise StartupError(
            f"signing key {path} is unreadable ({reason}); fix its permissions",
            EXIT_FILES,
        ) from None
    try:
        keys = read_signing_keys(text)
    except ValueError as exc:
        raise StartupError(
            f"signing key {path} is malformed: {exc}", EXIT_FILES
        ) from None
    if not keys:
        raise StartupError(f"signing key {path} holds no key", EXIT_FILES)


def check_ports(config: HomeserverConfig) -> None:
    """Bind each listener address briefly, as the server will (SO_REUSEADDR)."""
    for listener in config.listeners:
        if listener.port == 0:
            continue
        for host in listener.bind_addresses:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((host, listener.port))
                except OSError as exc:
                    hint = (
                        "another process listens there; stop it or change the "
                        "listener port"
                        if exc.errno == errno.EADDRINUSE
                        else exc.strerror
                    )
                    raise StartupError(
                        f"cannot listen on {host}:{listener.port}: {hint}", EXIT_PORT
                    ) from None


def check_database(config: HomeserverConfig) -> None:
    if config.database.engine != "postgres":
        return
    try:
        connect_postgres(config.database.dsn or "").close()
    except DatabaseUnreachableError as exc:
        raise StartupError(str(exc), EXIT_DATABASE) from None


def acquire_instance_lock(config: HomeserverConfig) -> InstanceLock:
    try:
        if config.database.engine == "postgres":
            return AdvisoryLock.acquire(config.database.dsn or "")
        return FileLock.acquire(Path(config.data_dir))
    except InstanceLockedError as exc:
        raise StartupError(str(exc), EXIT_LOCKED) from None
    except DatabaseUnreachableError as exc:
        raise StartupError(str(exc), EXIT_DATABASE) from None
    except OSError as exc:
        raise StartupError(
            f"cannot create the lock file in {config.data_dir}: {exc.strerror}",
            EXIT_FILES,
        ) from None


def preflight(config: HomeserverConfig) -> InstanceLock:
    """Check files, take the instance lock, check ports and the database; the lock is
    the caller's to release."""
    check_data_dir(Path(config.data_dir))
    check_signing_key(Path(config.signing_key_path))
    # With PostgreSQL, taking the lock is the connection check (exit 5 when it fails).
    lock = acquire_instance_lock(config)
    try:
        check_ports(config)
    except BaseException:
        lock.release()
        raise
    return lock


__all__ = ["StartupError", "preflight"]
