"""Shared fixtures.

Databases: `database` (an open, migrated `Database`), `migrated_database_settings` (its
settings, not yet opened) and `database_settings` (settings for a fresh, EMPTY database)
are parametrized over both engines, so every test using them runs
on SQLite and on PostgreSQL (house rule 7). A suite that wants SQLite only can override the
`db_engine` fixture in its own conftest. PostgreSQL tests each get a new database
`ranvier_test_<hex>`, created through the maintenance DSN in `RANVIER_TEST_POSTGRES_DSN`
and dropped afterwards. They are skipped when PostgreSQL is unreachable, except under CI
(`CI` set), where that is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ranvier.storage.database import Database, DatabaseSettings, open_database
from ranvier.storage.txn import EngineName
from tests.checkout_boundary import BOUNDARY
from tests.helpers.ci import missing_component

DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
TEST_POOL_SIZE = 4


def postgres_maintenance_dsn() -> str:
    return os.environ.get("RANVIER_TEST_POSTGRES_DSN", DEFAULT_POSTGRES_DSN)


def require_postgres() -> str:
    """The maintenance DSN; skips the test (fails it under CI) if PostgreSQL is down."""
    dsn = postgres_maintenance_dsn()
    try:
        with psycopg.connect(dsn, connect_timeout=3, autocommit=True):
            pass
    except psycopg.Error as exc:
        reason = (
            f"PostgreSQL unreachable at {dsn!r} (set RANVIER_TEST_POSTGRES_DSN): {exc}"
        )
        missing_component(reason)
    return dsn


@contextlib.contextmanager
def fresh_postgres_database(
    maintenance_dsn: str, template: str | None = None
) -> Iterator[str]:
    """Create a database (empty, or a copy of `template`), yield its DSN, drop it."""
    dbname = f"ranvier_test_{secrets.token_hex(6)}"
    name = sql.Identifier(dbname)
    create = sql.SQL("CREATE DATABASE {}").format(name)
    if template is not None:
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            name, sql.Identifier(template)
        )
    with psycopg.connect(maintenance_dsn, autocommit=True) as conn:
        conn.execute(create)
        # Test data is thrown away: skip waiting for the WAL flush on every commit.
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(name)
        )
    try:
        yield make_conninfo(maintenance_dsn, dbname=dbname)
    finally:
        with psycopg.connect(maintenance_dsn, autocommit=True) as conn:
            # FORCE: a test that failed half-way may have left connections open.
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name)
            )


@contextlib.contextmanager
def fresh_database_settings(
    engine: EngineName, tmp_path: Path, *, postgres_template: str | None = None
) -> Iterator[DatabaseSettings]:
    """Settings for a new database on `engine`, removed afterwards.

    Empty, unless `postgres_template` names a database to copy (PostgreSQL only).
    """
    if engine == "sqlite":
        yield DatabaseSettings(
            engine="sqlite",
            sqlite_path=str(tmp_path / "ranvier.db"),
            pool_size=TEST_POOL_SIZE,
        )
        return
    with fresh_postgres_database(require_postgres(), postgres_template) as dsn:
        yield DatabaseSettings(
            engine="postgres", postgres_dsn=dsn, pool_size=TEST_POOL_SIZE
        )


def _migrate_in_own_loop(settings: DatabaseSettings) -> None:
    async def migrate() -> None:
        db = await open_database(settings)
        await db.close()

    # A thread of its own, so that asyncio.run cannot disturb pytest-asyncio's loop.
    with ThreadPoolExecutor(1) as executor:
        executor.submit(asyncio.run, migrate()).result()


@pytest.fixture(scope="session")
def postgres_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL database migrated once per session with the bundled schema.

    Cloning it (CREATE DATABASE ... TEMPLATE) is much faster than migrating each test's
    database from scratch.
    """
    tmp_path = tmp_path_factory.mktemp("template")
    with fresh_database_settings("postgres", tmp_path) as settings:
        _migrate_in_own_loop(settings)
        yield str(conninfo_to_dict(settings.postgres_dsn)["dbname"])


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def db_engine(request: pytest.FixtureRequest) -> EngineName:
    return cast(EngineName, request.param)


@pytest.fixture
def database_settings(
    db_engine: EngineName, tmp_path: Path
) -> Iterator[DatabaseSettings]:
    """Settings for a fresh, EMPTY database (not migrated) on each engine."""
    with fresh_database_settings(db_engine, tmp_path) as settings:
        yield settings


@pytest.fixture
def migrated_database_settings(
    db_engine: EngineName, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[DatabaseSettings]:
    """Settings for a fresh database that already has the bundled schema (PostgreSQL:
    copied from the session template; SQLite: migrated on open, which is fast)."""
    template = None
    if db_engine == "postgres":
        # Looked up lazily so that SQLite-only runs never touch PostgreSQL.
        template = cast(str, request.getfixturevalue("postgres_template"))
    with fresh_database_settings(
        db_engine, tmp_path, postgres_template=template
    ) as settings:
        yield settings


@pytest.fixture
async def database(
    migrated_database_settings: DatabaseSettings,
) -> AsyncIterator[Database]:
    """An open database with the bundled schema, on each engine."""
    db = await open_database(migrated_database_settings)
    try:
        yield db
    finally:
        await db.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A read outside the checkout fails the run even when the code under test caught
    # the error (see tests/checkout_boundary.py).
    if BOUNDARY.violations:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        listed = "\n  ".join(sorted(set(BOUNDARY.violations)))
        print(f"\nFiles read outside the checkout:\n  {listed}")
