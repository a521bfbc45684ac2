from __future__ import annotations

import base64
import re
import stat
import sys
import types
from collections.abc import Sequence
from pathlib import Path

import pytest

from ranvier.app.cli import generate_signing_key, main, read_signing_key_id
from ranvier.config.load import load_config
from ranvier.config.schema import HomeserverConfig
from tests.conftest import require_postgres

KEY_LINE = re.compile(r"ed25519 (a_[A-Za-z0-9]{4}) ([A-Za-z0-9+/]{43})\n")


def init(data_dir: Path, *extra: str, server_name: str = "example.com") -> int:
    return main(
        ["init", "--server-name", server_name, "--data-dir", str(data_dir), *extra]
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- init ----------------------------------------------------------------------------------


def test_init_writes_config_and_signing_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "new" / "data"
    assert init(data_dir, "--port", "8448") == 0

    config_path = data_dir / "homeserver.yaml"
    key_path = data_dir / "signing.key"
    out = capsys.readouterr().out
    assert f"wrote {config_path}" in out
    assert f"wrote {key_path} (key ed25519:a_" in out

    match = KEY_LINE.fullmatch(key_path.read_text())
    assert match is not None
    assert len(base64.b64decode(match[2] + "=")) == 32
    assert f"ed25519:{match[1]}" in out
    assert mode(key_path) == 0o600
    assert mode(config_path) == 0o600
    assert mode(data_dir) == 0o700
    assert sorted(p.name for p in data_dir.iterdir()) == [
        "homeserver.yaml",
        "signing.key",
    ]

    config = load_config([config_path], {})
    assert config.server_name == "example.com"
    assert config.public_baseurl == "https://example.com/"
    assert config.listeners[0].port == 8448
    assert config.listeners[0].bind_addresses == ("127.0.0.1",)
    assert config.data_dir == data_dir
    assert config.signing_key_path == key_path
    assert config.database.path == data_dir / "homeserver.db"
    assert config.media.store_path == data_dir / "media"


def test_init_localhost_points_clients_at_the_listener(tmp_path: Path) -> None:
    assert init(tmp_path, "--port", "8080", server_name="localhost") == 0
    config = load_config([tmp_path / "homeserver.yaml"], {})
    assert config.public_baseurl == "http://localhost:8080/"


def test_init_relative_data_dir_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert init(Path("rel")) == 0
    text = (tmp_path / "rel" / "homeserver.yaml").read_text()
    assert f"data_dir: {tmp_path / 'rel'}" in text


def test_init_keys_differ(tmp_path: Path) -> None:
    assert init(tmp_path / "a") == 0
    assert init(tmp_path / "b") == 0
    assert (tmp_path / "a" / "signing.key").read_text() != (
        tmp_path / "b" / "signing.key"
    ).read_text()


@pytest.mark.parametrize("existing", ["homeserver.yaml", "signing.key"])
def test_init_refuses_to_overwrite(
    tmp_path: Path, existing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / existing).write_text("precious\n")
    assert init(tmp_path) == 1
    captured = capsys.readouterr()
    assert f"{tmp_path / existing} already exists; use --force" in captured.err
    assert captured.out == ""
    assert (tmp_path / existing).read_text() == "precious\n"
    assert [p.name for p in tmp_path.iterdir()] == [existing]


def test_init_force_rewrites_config_and_keeps_valid_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert init(tmp_path) == 0
    key_before = (tmp_path / "signing.key").read_text()
    capsys.readouterr()

    assert init(tmp_path, "--force", server_name="example.org") == 0
    out = capsys.readouterr().out
    assert "kept existing signing key" in out
    assert (tmp_path / "signing.key").read_text() == key_before
    assert load_config([tmp_path / "homeserver.yaml"], {}).server_name == "example.org"


def test_init_force_replaces_a_broken_key(tmp_path: Path) -> None:
    (tmp_path / "signing.key").write_text("not a key\n")
    (tmp_path / "signing.key").chmod(0o644)
    assert init(tmp_path, "--force") == 0
    assert KEY_LINE.fullmatch((tmp_path / "signing.key").read_text())
    assert mode(tmp_path / "signing.key") == 0o600


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--port", "70000"],
            "listeners[0].port: expected an integer between 0 and 65535",
        ),
        ([], "invalid --server-name 'bad name'"),
    ],
)
def test_init_rejects_bad_input_before_writing(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server_name = "example.com" if args else "bad name"
    assert init(tmp_path / "d", *args, server_name=server_name) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_generate_signing_key_format() -> None:
    line, key_id = generate_signing_key(lambda n: bytes(range(n)))
    seed = base64.b64encode(bytes(range(32))).decode().rstrip("=")
    assert line == f"ed25519 {key_id.removeprefix('ed25519:')} {seed}\n"
    assert KEY_LINE.fullmatch(line)


@pytest.mark.parametrize(
    ("text", "key_id"),
    [
        ("ed25519 a_abcd " + "A" * 43 + "\n", "ed25519:a_abcd"),
        (
            "ed25519 a_abcd " + "A" * 43 + "\ned25519 old " + "B" * 43 + "\n",
            "ed25519:a_abcd",
        ),
        ("ed25519 a_abcd " + "A" * 42 + "\n", None),
        ("ed25519 a_abcd " + "!" * 43 + "\n", None),
        ("rsa a_abcd " + "A" * 43 + "\n", None),
        ("ed25519 a_abcd\n", None),
        ("", None),
    ],
)
def test_read_signing_key_id(tmp_path: Path, text: str, key_id: str | None) -> None:
    path = tmp_path / "signing.key"
    path.write_text(text)
    assert read_signing_key_id(path) == key_id
    assert read_signing_key_id(tmp_path / "missing.key") is None


# --- check-config --------------------------------------------------------------------------


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert init(tmp_path) == 0
    capsys.readouterr()
    assert main(["check-config", "--config", str(tmp_path / "homeserver.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: server_name=example.com ")
    assert len(out.splitlines()) == 1
    assert "listeners=127.0.0.1:8008[client,federation,keys,media]" in out
    assert f"database=sqlite {tmp_path / 'homeserver.db'}" in out
    assert "registration=off" in out


def test_check_config_layers_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("server_name: example.com\n")
    (tmp_path / "signing.key").write_text(generate_signing_key()[0])
    prod = tmp_path / "prod.yaml"
    prod.write_text(
        "database: {engine: postgres, dsn: '${DSN}', pool_size: 4}\n"
        "registration: {enabled: true}\n"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DSN", "postgresql://db/ranvier")
        assert main(["check-config", "-c", str(base), "--config", str(prod)]) == 0
    out = capsys.readouterr().out
    assert "database=postgres (pool 4)" in out
    assert "registration=token" in out


def test_check_config_checks_data_dir_and_signing_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert init(tmp_path) == 0
    config = str(tmp_path / "homeserver.yaml")
    (tmp_path / "signing.key").unlink()
    assert main(["check-config", "--config", config]) == 3
    assert "signing key" in capsys.readouterr().err
    missing = tmp_path / "other.yaml"
    missing.write_text(f"data_dir: {tmp_path / 'gone'}\n")
    assert main(["check-config", "--config", config, "--config", str(missing)]) == 3
    assert "does not exist" in capsys.readouterr().err


def test_check_config_connect_checks_postgres(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert init(tmp_path) == 0
    config = str(tmp_path / "homeserver.yaml")
    db = tmp_path / "db.yaml"
    db.write_text(
        "database: {engine: postgres, "
        "dsn: 'postgresql://postgres:hunter2@127.0.0.1:1/ranvier'}\n"
    )
    # Without --connect the database is not contacted.
    assert main(["check-config", "--config", config, "--config", str(db)]) == 0
    capsys.readouterr()
    assert main(["check-config", "--connect", "-c", config, "-c", str(db)]) == 5
    err = capsys.readouterr().err
    assert "cannot connect to PostgreSQL" in err
    assert "hunter2" not in err
    db.write_text(f"database: {{engine: postgres, dsn: '{require_postgres()}'}}\n")
    assert main(["check-config", "--connect", "-c", config, "-c", str(db)]) == 0


def test_check_config_lists_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "homeserver.yaml"
    path.write_text(
        "server_name: example.com\ndatabase: {pool_size: abc}\nlog: {levle: DEBUG}\n"
    )
    assert main(["check-config", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "invalid configuration (2 problems):",
        "  database.pool_size: expected an integer >= 1, got 'abc'",
        "  log.levle: unknown key; did you mean 'level'?",
    ]


def test_check_config_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["check-config", "--config", str(missing)]) == 2
    assert f"{missing}: cannot read" in capsys.readouterr().err


def test_check_config_requires_config(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["check-config"])
    assert exc.value.code == 2
    assert "--config" in capsys.readouterr().err


# --- run and the parser --------------------------------------------------------------------


def test_run_loads_config_and_calls_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert init(tmp_path) == 0
    seen: list[HomeserverConfig] = []
    paths: list[Sequence[str]] = []

    def fake_run(config: HomeserverConfig, config_paths: Sequence[str]) -> int:
        seen.append(config)
        paths.append(config_paths)
        return 7

    fake = types.ModuleType("ranvier.app.server")
    fake.run = fake_run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ranvier.app.server", fake)
    assert main(["run", "--config", str(tmp_path / "homeserver.yaml")]) == 7
    assert [c.server_name for c in seen] == ["example.com"]
    # The paths are passed on so that SIGHUP can re-read them.
    assert paths == [[str(tmp_path / "homeserver.yaml")]]


def test_run_with_bad_config_does_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = types.ModuleType("ranvier.app.server")
    monkeypatch.setitem(
        sys.modules, "ranvier.app.server", fake
    )  # no run(): must not be used
    path = tmp_path / "homeserver.yaml"
    path.write_text("server_nam: example.com\n")
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "server_nam: unknown key; did you mean 'server_name'?" in err
    assert "server_name: required" in err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    for command in ("init", "check-config", "run"):
        assert command in err


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
