"""The pure SQL text helpers (no database; the same behaviour is checked end to end on
both engines in test_database.py)."""

from __future__ import annotations

import pytest

from ranvier.storage.sql import qmark_to_format, split_sqlite_script


@pytest.mark.parametrize(
    ("qmark", "expected"),
    [
        ("SELECT 1", "SELECT 1"),
        (
            "SELECT a FROM t WHERE b = ? AND c = ?",
            "SELECT a FROM t WHERE b = %s AND c = %s",
        ),
        ("SELECT ? LIKE 'a%'", "SELECT %s LIKE 'a%%'"),
        ("SELECT 100 % 7", "SELECT 100 %% 7"),
        ("SELECT 'why?', ?", "SELECT 'why?', %s"),
        ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', %s"),
        ('SELECT "odd?col" FROM t WHERE x = ?', 'SELECT "odd?col" FROM t WHERE x = %s'),
        ("SELECT ? -- what? 50%\n, ?", "SELECT %s -- what? 50%%\n, %s"),
        ("SELECT /* a ? b */ ?", "SELECT /* a ? b */ %s"),
    ],
)
def test_qmark_to_format(qmark: str, expected: str) -> None:
    assert qmark_to_format(qmark) == expected


def test_qmark_to_format_is_cached() -> None:
    sql = "SELECT x FROM cache_probe WHERE y = ?"
    assert qmark_to_format(sql) is qmark_to_format(sql)


def test_split_sqlite_script_keeps_literals_comments_and_triggers() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE a (x TEXT DEFAULT 'semi;colon');
    /* block; comment */
    CREATE TRIGGER t AFTER INSERT ON a BEGIN
        UPDATE a SET x = 'y;';
        DELETE FROM a WHERE x = 'z';
    END;
    INSERT INTO a VALUES ('one');  -- trailing comment
    """
    statements = split_sqlite_script(script)
    assert len(statements) == 3
    assert statements[0].endswith("CREATE TABLE a (x TEXT DEFAULT 'semi;colon');")
    assert statements[1].startswith("/* block; comment */")
    assert statements[1].endswith("END;")
    assert statements[2] == "INSERT INTO a VALUES ('one');"


def test_split_sqlite_script_rejects_unterminated_statement() -> None:
    with pytest.raises(ValueError, match="unterminated"):
        split_sqlite_script("CREATE TABLE a (x INTEGER);\nCREATE TABLE b (y INTEGER)")


def test_split_sqlite_script_empty() -> None:
    assert split_sqlite_script("  -- nothing here\n/* at all */\n") == []
