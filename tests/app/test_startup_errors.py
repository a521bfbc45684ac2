"""`ranvier run` as an operator meets it, in a real process: each start-up failure is one
line on stderr with its documented exit code and no traceback; a second instance on the
same data refuses to start; SIGHUP reloads the log level and never kills the server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from ranvier.app import preflight
from tests.app.test_process_lifecycle import _free_port, _wait_for_versions
from tests.conftest import fresh_postgres_database, require_postgres

RANVIER = [sys.executable, "-m", "ranvier.app.cli"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _init(tmp_path: Path, port: int) -> Path:
    data = tmp_path / "data"
    subprocess.run(
        [*RANVIER, "init", "--server-name", "localhost", "--data-dir", str(data),
         "--port", str(port)],
        check=True, stdout=subprocess.DEVNULL, env=ENV,
    )  # fmt: skip
    return data


def _configs(tmp_path: Path, data: Path, overrides: dict[str, Any]) -> list[str]:
    path = tmp_path / "overrides.yaml"
    path.write_text(yaml.safe_dump(overrides))
    return ["--config", str(data / "homeserver.yaml"), "--config", str(path)]


def _run_fails(args: list[str]) -> tuple[int, str]:
    proc = subprocess.run(
        [*RANVIER, "run", *args], capture_output=True, text=True, timeout=60, env=ENV
    )
    return proc.returncode, proc.stderr


def _assert_one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_data_dir_missing(tmp_path: Path) -> None:
    data = _init(tmp_path, _free_port())
    rc, err = _run_fails(_configs(tmp_path, data, {"data_dir": str(tmp_path / "no")}))
    assert rc == 3
    assert "does not exist" in _assert_one_line(err)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions")
def test_data_dir_unwritable(tmp_path: Path) -> None:
    data = _init(tmp_path, _free_port())
    data.chmod(0o500)
    try:
        rc, err = _run_fails(_configs(tmp_path, data, {}))
    finally:
        data.chmod(0o700)
    assert rc == 3
    assert "not writable" in _assert_one_line(err)


def test_signing_key_missing(tmp_path: Path) -> None:
    data = _init(tmp_path, _free_port())
    (data / "signing.key").unlink()
    rc, err = _run_fails(_configs(tmp_path, data, {}))
    assert rc == 3
    line = _assert_one_line(err)
    assert "signing key" in line
    assert "missing" in line


def test_data_dir_is_a_file(tmp_path: Path) -> None:
    data = _init(tmp_path, _free_port())
    (tmp_path / "file").write_text("")
    rc, err = _run_fails(_configs(tmp_path, data, {"data_dir": str(tmp_path / "file")}))
    assert rc == 3
    assert "is not a directory" in _assert_one_line(err)


def test_data_dir_unwritable_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real-process variant above cannot run as root; this one checks the message.
    def refuse(**_: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("ranvier.app.preflight.tempfile.TemporaryFile", refuse)
    with pytest.raises(preflight.StartupError) as caught:
        preflight.check_data_dir(tmp_path)
    assert caught.value.exit_code == 3
    assert str(caught.value) == (
        f"data directory {tmp_path} is not writable (Permission denied); "
        "fix its owner or permissions"
    )


def test_signing_key_unreadable(tmp_path: Path) -> None:
    data = _init(tmp_path, _free_port())
    (data / "signing.key").unlink()
    (data / "signing.key").mkdir()  # unreadable even for root
    rc, err = _run_fails(_configs(tmp_path, data, {}))
    assert rc == 3
    assert "unreadable (Is a directory)" in _assert_one_line(err)


def test_signing_key_malformed(tmp_path: Path) -> None:
    data = _init(tmp_path, _free_port())
    (data / "signing.key").write_text("ed25519 a_x not-base64!\n")
    rc, err = _run_fails(_configs(tmp_path, data, {}))
    assert rc == 3
    assert "malformed" in _assert_one_line(err)


def test_port_in_use(tmp_path: Path) -> None:
    port = _free_port()
    data = _init(tmp_path, port)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        rc, err = _run_fails(
            _configs(tmp_path, data, {"listeners": [{"port": port,
                     "bind_addresses": ["127.0.0.1"], "resources": ["client"]}]})
        )  # fmt: skip
    assert rc == 4
    line = _assert_one_line(err)
    assert f"127.0.0.1:{port}" in line
    # No database work happened before the port was checked.
    assert not (data / "homeserver.db").exists()


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://ranvier:s3cret@127.0.0.1:1/ranvier", "Connection refused"),
        (
            "postgresql://nosuchrole:s3cret@127.0.0.1:5432/postgres",
            'role "nosuchrole" does not exist',
        ),
        (
            "postgresql://postgres:s3cret@127.0.0.1:5432/nosuchdb",
            'database "nosuchdb" does not exist',
        ),
    ],
)
def test_postgres_unreachable(tmp_path: Path, dsn: str, expected: str) -> None:
    if "5432" in dsn:
        require_postgres()
    data = _init(tmp_path, _free_port())
    rc, err = _run_fails(
        _configs(tmp_path, data, {"database": {"engine": "postgres", "dsn": dsn}})
    )
    assert rc == 5
    line = _assert_one_line(err)
    assert expected in line
    assert "s3cret" not in line
    assert "127.0.0.1" in line


@pytest.fixture(params=["sqlite", "postgres"])
def engine_overrides(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    base: dict[str, Any] = {"rate_limits": {"enabled": False}}
    if request.param == "sqlite":
        yield base
        return
    with fresh_postgres_database(require_postgres()) as dsn:
        yield {**base, "database": {"engine": "postgres", "dsn": dsn}}


async def _start(args: list[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *RANVIER, "run", *args, stderr=asyncio.subprocess.PIPE, env=ENV
    )


async def _stop(proc: asyncio.subprocess.Process) -> str:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=20)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    assert proc.stderr is not None
    return (await proc.stderr.read()).decode()


async def test_second_instance_refuses_to_start(
    tmp_path: Path, engine_overrides: dict[str, Any]
) -> None:
    port = _free_port()
    data = _init(tmp_path, port)
    args = _configs(tmp_path, data, engine_overrides)
    first = await _start(args)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_for_versions(session, base)
            second = await asyncio.create_subprocess_exec(
                *RANVIER, "run", *args, stderr=asyncio.subprocess.PIPE, env=ENV
            )
            _, err = await asyncio.wait_for(second.communicate(), timeout=60)
            assert second.returncode == 6
            line = _assert_one_line(err.decode())
            assert "another Ranvier is running" in line
            async with session.get(base + "/_matrix/client/versions") as r:
                assert r.status == 200
    finally:
        log = await _stop(first)
    assert first.returncode == 0, log


async def test_sighup_reloads_log_level_and_keeps_serving(tmp_path: Path) -> None:
    port = _free_port()
    data = _init(tmp_path, port)
    args = _configs(tmp_path, data, {"rate_limits": {"enabled": False}})
    proc = await _start(args)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_for_versions(session, base)
            async with session.get(base + "/") as r:
                assert r.status == 200
                assert r.content_type == "text/html"
                page = await r.text()
            assert "Ranvier is running" in page
            assert "<strong>localhost</strong>" in page
            assert "Registration: open." in page
            proc.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.5)
            async with session.get(base + "/_matrix/client/versions") as r:
                assert r.status == 200
            (tmp_path / "overrides.yaml").write_text(
                yaml.safe_dump(
                    {"rate_limits": {"enabled": False}, "log": {"level": "DEBUG"}}
                )
            )
            proc.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.5)
            async with session.get(base + "/_matrix/client/versions") as r:
                assert r.status == 200
            # A broken config file on SIGHUP is reported and ignored.
            (tmp_path / "overrides.yaml").write_text("log: {level: LOUD}\n")
            proc.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.5)
            async with session.get(base + "/_matrix/client/versions") as r:
                assert r.status == 200
    finally:
        log = await _stop(proc)
    assert proc.returncode == 0, log
    assert "SIGHUP: config reloaded, log level unchanged (INFO)" in log
    assert "SIGHUP: log level INFO -> DEBUG" in log
    assert "SIGHUP: config not reloaded" in log
    # The new level applied: the reload's own debug record appears once, after it.
    assert log.count("DEBUG ranvier.app.server [-] SIGHUP: reloaded") == 1
    assert "Traceback" not in log


def test_version_flag() -> None:
    proc = subprocess.run(
        [*RANVIER, "--version"], capture_output=True, text=True, timeout=60, env=ENV
    )
    assert proc.returncode == 0
    assert re.fullmatch(r"ranvier \S+\n", proc.stdout)


def _register_from_pipe(
    args: list[str], user: str, stdin: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RANVIER, "register-user", *args, "--user", user],
        input=stdin, capture_output=True, text=True, timeout=60, env=ENV,
    )  # fmt: skip


async def test_register_user_reads_password_from_pipe(tmp_path: Path) -> None:
    port = _free_port()
    data = _init(tmp_path, port)
    args = _configs(tmp_path, data, {"rate_limits": {"enabled": False}})
    reg = _register_from_pipe(args, "bob", "pipe-pass-1\n")
    assert reg.returncode == 0, reg.stderr
    assert "registered @bob:localhost" in reg.stdout
    assert "Traceback" not in reg.stderr
    empty = _register_from_pipe(args, "carol", "")
    assert empty.returncode == 1
    assert "no password on standard input" in _assert_one_line(empty.stderr)

    proc = await _start(args)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_for_versions(session, base)
            body = {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "bob"},
                "password": "pipe-pass-1",
            }
            async with session.post(base + "/_matrix/client/v3/login", json=body) as r:
                assert r.status == 200
    finally:
        await _stop(proc)


async def test_database_from_a_newer_ranvier_is_one_line(tmp_path: Path) -> None:
    port = _free_port()
    data = _init(tmp_path, port)
    args = _configs(tmp_path, data, {"rate_limits": {"enabled": False}})
    proc = await _start(args)
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_for_versions(session, f"http://127.0.0.1:{port}")
    finally:
        await _stop(proc)
    with contextlib.closing(sqlite3.connect(data / "homeserver.db")) as conn, conn:
        conn.execute("INSERT INTO schema_version (version, name) VALUES (9999, 'x')")
    rc, err = await asyncio.to_thread(_run_fails, args)
    assert rc == 1
    assert "Traceback" not in err
    assert "newer than the newest version this Ranvier knows" in err


async def test_sighup_reopens_the_log_file(tmp_path: Path) -> None:
    port = _free_port()
    data = _init(tmp_path, port)
    log_file = tmp_path / "ranvier.log"
    overrides = {"rate_limits": {"enabled": False}, "log": {"file": str(log_file)}}
    args = _configs(tmp_path, data, overrides)
    proc = await _start(args)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_for_versions(session, base)
            rotated = tmp_path / "ranvier.log.1"
            log_file.rename(rotated)  # what logrotate does before signalling
            proc.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.5)
            async with session.get(base + "/_matrix/client/versions") as r:
                assert r.status == 200
    finally:
        stderr = await _stop(proc)
    assert proc.returncode == 0
    assert stderr == ""
    assert "Ranvier serving localhost" in rotated.read_text()
    fresh = log_file.read_text()
    assert f"SIGHUP: reopened log file {log_file}" in fresh
    assert "stopped cleanly" in fresh


def test_log_file_in_missing_directory(tmp_path: Path) -> None:
    data = _init(tmp_path, _free_port())
    bad = tmp_path / "nodir" / "x.log"
    rc, err = _run_fails(_configs(tmp_path, data, {"log": {"file": str(bad)}}))
    assert rc == 3
    assert "cannot open log file" in _assert_one_line(err)
