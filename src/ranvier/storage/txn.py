"""The transaction handle given to every sync `*_txn(txn, ...)` function.

Both engines hand out the same `Txn` class; what differs between SQLite and PostgreSQL
lives in a `Dialect` (placeholder translation, script execution, retryable errors and a
few SQL fragments). A `Txn` is only valid inside the transaction function it was passed
to, on that function's worker thread.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, Protocol

EngineName = Literal["sqlite", "postgres"]

P = ParamSpec("P")


class Isolation(enum.Enum):
    """Transaction isolation. SQLite ignores it: its writes are serialised anyway."""

    READ_COMMITTED = "read committed"
    REPEATABLE_READ = "repeatable read"


@dataclass(frozen=True, slots=True)
class TxnOptions:
    readonly: bool = False
    isolation: Isolation = Isolation.READ_COMMITTED


class Cursor(Protocol):
    """The DB-API cursor subset both sqlite3 and psycopg provide."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, params: Sequence[Any], /) -> object: ...

    def executemany(
        self, sql: str, seq_of_params: Iterable[Sequence[Any]], /
    ) -> object: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Sequence[Any]: ...


class Dialect(Protocol):
    """Where the SQL of the two engines differs. Stateless and thread-safe."""

    @property
    def name(self) -> EngineName: ...

    @property
    def autoincrement_pk(self) -> str:
        """Column definition for a surrogate integer key filled by the database."""
        ...

    @property
    def for_update(self) -> str:
        """Suffix for a SELECT that locks its rows until commit ("" where writes are
        serialised anyway)."""
        ...

    @property
    def migration_lock_sql(self) -> str | None:
        """Statement serialising schema migrations between processes, if needed."""
        ...

    def convert_sql(self, sql: str) -> str: ...

    def execute_script(self, cursor: Cursor, script: str) -> None: ...

    def is_retryable(self, exc: BaseException) -> bool:
        """True for errors after which rerunning the whole transaction may succeed."""
        ...

    def in_list(
        self, column: str, values: Collection[Any]
    ) -> tuple[str, list[Any]]: ...


class Txn:
    """A cursor inside one transaction, with `?` placeholders on every engine."""

    __slots__ = ("_after", "_convert", "_cursor", "engine")

    def __init__(self, cursor: Cursor, engine: Dialect) -> None:
        self._cursor = cursor
        self._convert = engine.convert_sql
        self._after: list[Callable[[], object]] = []
        self.engine = engine

    @property
    def engine_name(self) -> EngineName:
        return self.engine.name

    @property
    def rowcount(self) -> int:
        """Rows changed by the last INSERT/UPDATE/DELETE (summed over executemany)."""
        return self._cursor.rowcount

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cursor.execute(self._convert(sql), params)

    def executemany(self, sql: str, seq_of_params: Iterable[Sequence[Any]]) -> None:
        self._cursor.executemany(self._convert(sql), seq_of_params)

    def execute_script(self, script: str) -> None:
        """Run several `;`-separated statements without parameters (schema deltas)."""
        self.engine.execute_script(self._cursor, script)

    def fetchone(self) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._cursor.fetchone()
        return row

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._cursor.fetchall())

    def in_list(self, column: str, values: Collection[Any]) -> tuple[str, list[Any]]:
        """A `column IN (...)` condition and its parameters, for any number of values."""
        return self.engine.in_list(column, values)

    def call_after(
        self, fn: Callable[P, object], *args: P.args, **kwargs: P.kwargs
    ) -> None:
        """Run `fn` on the event loop thread once this transaction has committed.

        Never runs if the transaction rolls back (including attempts that are retried).
        """
        self._after.append(functools.partial(fn, *args, **kwargs))

    def after_callbacks(self) -> list[Callable[[], object]]:
        return list(self._after)
