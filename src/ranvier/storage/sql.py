"""Pure SQL text helpers shared by the engines (no I/O).

SQL in Ranvier is written once with qmark (`?`) placeholders, which SQLite understands
natively. PostgreSQL (psycopg) uses the `format` paramstyle instead, so `?` becomes `%s`
and every literal `%` must be doubled. `?` and `%` inside single-quoted string literals,
double-quoted identifiers and comments are never placeholders; the scanner skips them, so
`'why?'` and `-- what?` survive. Not understood (use engine-specific SQL if ever needed):
PostgreSQL `E'...\\'...'` backslash escapes, `$$` dollar quoting, and the jsonb `?`, `?|`,
`?&` operators (write `jsonb_exists()` instead).
"""

from __future__ import annotations

import functools
import re
import sqlite3

# Order matters: quoted text and comments are consumed whole before `?` or `%` can match
# inside them. `''` inside a literal splits it into two adjacent matches, which is harmless.
_TOKENS = re.compile(
    r"""
      '[^']*'              # string literal
    | "[^"]*"              # quoted identifier
    | --[^\n]*             # line comment
    | /\*.*?\*/            # block comment
    | \?                   # placeholder
    | %                    # literal percent
    """,
    re.VERBOSE | re.DOTALL,
)


def _replace(match: re.Match[str]) -> str:
    text = match.group(0)
    if text == "?":
        return "%s"
    # Inside literals too: psycopg scans the whole query text for `%` when it has params.
    return text.replace("%", "%%")


@functools.lru_cache(maxsize=4096)
def qmark_to_format(sql: str) -> str:
    """Translate qmark SQL to psycopg's format style; cached per distinct SQL string."""
    if "?" not in sql and "%" not in sql:
        return sql
    return _TOKENS.sub(_replace, sql)


def split_sqlite_script(script: str) -> list[str]:
    """Split a script into single statements for sqlite3's one-statement `execute`.

    `sqlite3.executescript` would COMMIT the surrounding transaction first, so a migration
    could not be atomic with it. `sqlite3.complete_statement` knows SQLite's own lexer
    (string literals, comments, `CREATE TRIGGER ... BEGIN ...; END;`), so a `;` only ends a
    statement when the text before it is complete.
    """
    statements: list[str] = []
    pending = ""
    *pieces, remainder = script.split(";")
    for piece in pieces:
        pending += piece
        if sqlite3.complete_statement(pending + ";"):
            if _has_code(pending):
                statements.append(pending.strip() + ";")
            pending = ""
        else:
            pending += ";"
    pending += remainder
    if _has_code(pending):
        raise ValueError(
            f"unterminated SQL statement at end of script: {pending.strip()!r}"
        )
    return statements


_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


def _has_code(text: str) -> bool:
    return bool(_COMMENTS.sub("", text).strip())
