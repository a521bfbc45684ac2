"""One server per data: a lock a second instance finds before it touches the database.

SQLite: an exclusive `fcntl` lock on `ranvier.lock` in the data directory. PostgreSQL: a
session-level advisory lock on a fixed key, held on one dedicated connection. Both live as
long as the process (the kernel or the database releases them if it dies).
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path
from typing import Protocol

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

LOCK_FILE_NAME = "ranvier.lock"
# Fixed advisory-lock key: "RANVIER1" as a signed 64-bit integer.
ADVISORY_LOCK_KEY = int.from_bytes(b"RANVIER1", "big", signed=True)


class InstanceLockedError(Exception):
    """Another process holds the lock."""


class DatabaseUnreachableError(Exception):
    """PostgreSQL refused or failed the connection; the message is one line."""


class InstanceLock(Protocol):
    def release(self) -> None: ...


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", dsn)
    params.pop("password", None)
    return make_conninfo(**{k: str(v) for k, v in params.items()})


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class FileLock:
    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path) -> FileLock:
        path = data_dir / LOCK_FILE_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InstanceLockedError(
                f"another Ranvier is running on data directory {data_dir} "
                f"(it holds {path}); stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def connect_postgres(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    """A plain connection, or `DatabaseUnreachableError` naming the DSN sans password."""
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise DatabaseUnreachableError(
            f"cannot connect to PostgreSQL {redact_dsn(dsn)!r}: {_one_line(exc)}"
        ) from None


class AdvisoryLock:
    def __init__(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        self._conn: psycopg.Connection[tuple[object, ...]] | None = conn

    @classmethod
    def acquire(cls, dsn: str) -> AdvisoryLock:
        conn = connect_postgres(dsn)
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s)", (ADVISORY_LOCK_KEY,)
        ).fetchone()
        if not row or not row[0]:
            conn.close()
            raise InstanceLockedError(
                f"another Ranvier is running on PostgreSQL database {redact_dsn(dsn)!r} "
                f"(it holds advisory lock {ADVISORY_LOCK_KEY}); stop it first"
            )
        return cls(conn)

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()  # ends the session, which drops the advisory lock
            self._conn = None
