"""Schema migrations: numbered delta files applied once each, in order, at start-up.

Files in `ranvier/storage/schema/` are named `NNNN_name.sql` (both engines) or
`NNNN_name.sqlite.sql` / `NNNN_name.postgres.sql` (one engine; takes precedence over the
shared file for that engine). A version with a file for only one engine is a no-op on the
other, but is still recorded there, so version numbers mean the same on both engines.
Where only the identity-column syntax differs, a shared file writes `{{autoincrement_pk}}`
and the loader fills in the engine's definition, so no near-copy files are needed.

Each delta runs in its own transaction together with the insert of its row into
`schema_version`, so a delta is either fully applied and recorded or not at all. On
PostgreSQL an advisory lock serialises processes starting at the same time; on SQLite
`BEGIN IMMEDIATE` does. Never edit a delta that has shipped: add a new one.
"""

from __future__ import annotations

import importlib.resources
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING

from ranvier.storage.txn import AUTOINCREMENT_PK_SQL, EngineName, Txn

if TYPE_CHECKING:
    from ranvier.storage.database import Database

logger = logging.getLogger(__name__)

_DELTA_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(sqlite|postgres))?\.sql$")

# Created by the migrator itself: it must exist before any delta can be recorded.
_CREATE_SCHEMA_VERSION = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
)
"""


class MigrationError(Exception):
    pass


class SchemaTooNewError(MigrationError):
    def __init__(self, database_version: int, code_version: int) -> None:
        super().__init__(
            f"database schema version {database_version} is newer than the newest "
            f"version this Ranvier knows ({code_version}); run a newer Ranvier or "
            "restore a backup"
        )
        self.database_version = database_version
        self.code_version = code_version


@dataclass(frozen=True, slots=True)
class Delta:
    version: int
    name: str
    # None: this version has no file for the engine; it is recorded without running.
    sql: str | None


def bundled_schema() -> Traversable:
    return importlib.resources.files("ranvier.storage.schema")


def _parse_name(filename: str) -> tuple[int, str, str | None]:
    match = _DELTA_FILE.match(filename)
    if match is None:
        raise MigrationError(
            f"schema file {filename!r} is not named NNNN_name.sql or NNNN_name.<engine>.sql"
        )
    version = int(match[1])
    if version == 0:
        raise MigrationError(f"schema file {filename!r}: versions start at 0001")
    return version, match[2], match[3]


# Written in a shared delta where the engines' identity-column syntax differs.
AUTOINCREMENT_PK_PLACEHOLDER = "{{autoincrement_pk}}"


def load_deltas(source: Traversable, engine: EngineName) -> list[Delta]:
    """The deltas in `source` for `engine`, in version order."""
    # version -> variant (None = shared, or an engine name) -> file
    by_version: dict[int, dict[str | None, Traversable]] = {}
    names: dict[int, str] = {}
    for entry in source.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        version, name, variant = _parse_name(entry.name)
        if names.setdefault(version, name) != name:
            raise MigrationError(
                f"schema version {version:04d} has two names: {names[version]!r} and {name!r}"
            )
        # One name per version, so a (version, variant) pair is one file name.
        by_version.setdefault(version, {})[variant] = entry
    deltas = []
    for version in sorted(by_version):
        chosen = by_version[version].get(engine) or by_version[version].get(None)
        sql = chosen.read_text(encoding="utf-8") if chosen is not None else None
        if sql is not None:
            sql = sql.replace(
                AUTOINCREMENT_PK_PLACEHOLDER, AUTOINCREMENT_PK_SQL[engine]
            )
        deltas.append(Delta(version, names[version], sql))
    return deltas


def _check_versions(applied: set[int], deltas: Sequence[Delta]) -> None:
    if not applied:
        return
    newest_known = deltas[-1].version if deltas else 0
    current = max(applied)
    if current > newest_known:
        raise SchemaTooNewError(current, newest_known)
    known = {delta.version for delta in deltas}
    unknown = sorted(applied - known)
    if unknown:
        raise MigrationError(
            f"database has schema versions {unknown} that this code lacks"
        )
    skipped = sorted(v for v in known - applied if v < current)
    if skipped:
        raise MigrationError(
            f"schema versions {skipped} were never applied but the database is already "
            f"at version {current}; deltas must be added in order"
        )


def _lock_and_get_applied_txn(txn: Txn) -> set[int]:
    if txn.engine.migration_lock_sql is not None:
        txn.execute(txn.engine.migration_lock_sql)
    txn.execute(_CREATE_SCHEMA_VERSION)
    txn.execute("SELECT version FROM schema_version")
    return {int(row[0]) for row in txn.fetchall()}


def _apply_delta_txn(txn: Txn, delta: Delta, deltas: Sequence[Delta]) -> bool:
    # Re-read under the lock: another process may have applied it since we looked.
    applied = _lock_and_get_applied_txn(txn)
    if delta.version in applied:
        return False
    _check_versions(applied, deltas)
    if delta.sql is not None:
        txn.execute_script(delta.sql)
    txn.execute(
        "INSERT INTO schema_version (version, name) VALUES (?, ?)",
        (delta.version, delta.name),
    )
    return True


async def get_schema_version(db: Database) -> int:
    """The newest applied schema version, 0 for an empty database."""
    applied = await db.run_txn("get_schema_version", _lock_and_get_applied_txn)
    return max(applied, default=0)


async def apply_migrations(db: Database, deltas: Sequence[Delta]) -> list[int]:
    """Apply every delta the database lacks; returns the versions applied now."""
    applied = await db.run_txn("get_schema_versions", _lock_and_get_applied_txn)
    _check_versions(applied, deltas)
    done: list[int] = []
    for delta in deltas:
        if delta.version in applied:
            continue
        if await db.run_txn("apply_schema_delta", _apply_delta_txn, delta, deltas):
            logger.info("applied schema delta %04d_%s", delta.version, delta.name)
            done.append(delta.version)
    return done
