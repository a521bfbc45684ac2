"""`ranvier register-user` and `ranvier registration-token`, then the accounts over HTTP."""

from __future__ import annotations

import asyncio
import getpass
import sys
from pathlib import Path

import pytest

from ranvier.app.accounts import parse_duration_ms
from ranvier.app.cli import main as cli_main
from tests.helpers.accounts import OPEN_REGISTRATION, PASSWORD, accounts_server
from tests.helpers.homeserver import write_test_config


def _config_args(tmp_path: Path) -> list[str]:
    paths = write_test_config(tmp_path, overrides=OPEN_REGISTRATION)
    return [arg for p in paths for arg in ("-c", str(p))]


def test_register_user_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config_args(tmp_path)
    capsys.readouterr()
    assert (
        cli_main(
            ["register-user", *cfg, "--user", "Root", "--password", PASSWORD, "--admin"]
        )
        == 0
    )
    assert capsys.readouterr().out == "registered @root:localhost (admin)\n"
    assert cli_main(["register-user", *cfg, "--user", "root", "--password", "x"]) == 1
    assert "already taken" in capsys.readouterr().err
    assert (
        cli_main(["register-user", *cfg, "--user", "bad name", "--password", "x"]) == 1
    )
    assert (
        cli_main(["register-user", *cfg, "--user", "@a:elsewhere", "--password", "x"])
        == 1
    )
    assert "not a user of localhost" in capsys.readouterr().err

    # On a terminal the password is asked for twice (a pipe is read instead: see
    # tests/app/test_cli.py).
    answers = iter(["typed secret", "typed secret", "one", "two"])
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(getpass, "getpass", lambda _prompt="": next(answers))
    assert cli_main(["register-user", *cfg, "--user", "@typed:localhost"]) == 0
    assert cli_main(["register-user", *cfg, "--user", "mismatch"]) == 1
    assert "do not match" in capsys.readouterr().err


async def test_cli_users_can_log_in(tmp_path: Path) -> None:
    cfg = _config_args(tmp_path)
    args = ["register-user", *cfg, "--user", "op", "--password", PASSWORD]
    assert await asyncio.to_thread(cli_main, args) == 0
    async with accounts_server(tmp_path) as (_hs, api):
        login = await api.login("op")
        assert login["user_id"] == "@op:localhost"


def test_registration_token_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config_args(tmp_path)
    capsys.readouterr()
    assert cli_main(["registration-token", "create", *cfg]) == 0
    generated = capsys.readouterr().out.strip()
    assert len(generated) == 16
    assert cli_main(["registration-token", "create", *cfg, "--token", "team-2026",
                     "--uses", "5", "--expires-in", "7d"]) == 0  # fmt: skip
    assert capsys.readouterr().out == "team-2026\n"
    for bad in (
        ["--token", "team-2026"],  # exists
        ["--token", "bad token"],
        ["--uses", "0"],
        ["--expires-in", "soon"],
    ):
        assert cli_main(["registration-token", "create", *cfg, *bad]) == 1, bad
        assert capsys.readouterr().err.startswith("error:")

    assert cli_main(["registration-token", "list", *cfg]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(
        f"{generated}  uses_allowed=unlimited pending=0 completed=0"
    )
    assert lines[0].endswith("expires=never valid")
    assert lines[1].startswith(
        "team-2026  uses_allowed=5 pending=0 completed=0 expires=20"
    )
    assert lines[1].endswith("Z valid")

    assert cli_main(["registration-token", "delete", *cfg, "team-2026"]) == 0
    assert cli_main(["registration-token", "delete", *cfg, "team-2026"]) == 1
    assert cli_main(["registration-token", "list", *cfg]) == 0
    assert capsys.readouterr().out.count("\n") == 1


def test_parse_duration() -> None:
    assert parse_duration_ms("90") == 90_000
    assert parse_duration_ms("15m") == 900_000
    assert parse_duration_ms("12H") == 43_200_000
    assert parse_duration_ms("2w") == 14 * 86_400_000
    for bad in ("", "0s", "-5m", "1y", "m"):
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration_ms(bad)
