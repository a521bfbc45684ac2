from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ranvier.config.load import load_config
from ranvier.config.sample import (
    generate_config,
    reference_markdown,
    render_config,
    sample_config,
)
from ranvier.config.schema import (
    DatabaseConfig,
    EmailConfig,
    HomeserverConfig,
    ListenerConfig,
    TlsConfig,
    TurnConfig,
    setting_of,
)


def schema_keys(cls: type[Any], path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, field name) for every key in the schema."""
    for fld in dataclasses.fields(cls):
        meta = setting_of(fld)
        key = f"{path}.{fld.name}" if path else fld.name
        yield key, fld.name
        if meta.section is not None:
            yield from schema_keys(meta.section, f"{key}[]" if meta.many else key)


def load_text(
    directory: Path, text: str, name: str = "homeserver.yaml"
) -> HomeserverConfig:
    path = directory / name
    path.write_text(text)
    return load_config([path], {"RANVIER_DB_PASSWORD": "pw"})


@pytest.mark.parametrize(
    ("server_name", "port", "baseurl"),
    [
        ("example.com", 8008, "https://example.com/"),
        ("example.com:8448", 8448, "https://example.com:8448/"),
        ("localhost", 8008, "http://localhost:8008/"),
        ("localhost", 0, "http://localhost/"),
        ("[::1]:8448", 8008, "http://[::1]:8008/"),
    ],
)
def test_generated_config_loads_back_equal(
    tmp_path: Path, server_name: str, port: int, baseurl: str
) -> None:
    data_dir = tmp_path / "data"
    text = generate_config(server_name, data_dir, port)
    # Loaded from another directory, so that no path is right only by accident.
    (tmp_path / "etc").mkdir()
    loaded = load_text(tmp_path / "etc", text)
    assert loaded == sample_config(server_name, data_dir, port)
    assert loaded.public_baseurl == baseurl
    assert loaded.signing_key_path == data_dir / "signing.key"
    assert loaded.database.path == data_dir / "homeserver.db"
    assert loaded.media.store_path == data_dir / "media"
    assert loaded.listeners[0].port == port


def test_sample_values_are_the_schema_defaults(tmp_path: Path) -> None:
    """Only the keys init must set differ from what an absent key would give."""
    data_dir = tmp_path
    generated = load_text(
        tmp_path, generate_config("example.com", data_dir, 8448), "a.yaml"
    )
    minimal = load_text(
        tmp_path,
        "server_name: example.com\nlisteners: [{port: 8448}]\n",
        "b.yaml",
    )
    assert generated == minimal


def test_every_key_is_documented(tmp_path: Path) -> None:
    lines = generate_config("example.com", tmp_path).splitlines()
    # Keys, whether set or commented out ("#key: value"); prose never starts "word:".
    key_line = re.compile(r"^\s*#?\s*(?:- )?([a-z_]+):(\s|$)")
    found: set[str] = set()
    for index, line in enumerate(lines):
        match = key_line.match(line)
        if match is None:
            continue
        found.add(match[1])
        above = lines[index - 1].strip()
        assert above.startswith("# "), f"undocumented key: {line!r}"
    assert {name for _, name in schema_keys(HomeserverConfig)} <= found


def test_every_scalar_key_shows_its_default(tmp_path: Path) -> None:
    text = generate_config("example.com", tmp_path)
    scalar_keys = [
        name
        for key, name in schema_keys(HomeserverConfig)
        if setting_of(_field(key)).section is None
    ]
    for name in scalar_keys:
        pattern = re.compile(
            rf"(Default:|Required\.)[^\n]*(\n\s*#[^\n]*)*\n\s*(- )?#?\s*{name}:",
            re.MULTILINE,
        )
        assert pattern.search(text), name


def _field(dotted: str) -> Any:
    cls: Any = HomeserverConfig
    parts = dotted.replace("[]", "").split(".")
    fld: Any = None
    for part in parts:
        fld = {f.name: f for f in dataclasses.fields(cls)}[part]
        cls = setting_of(fld).section
    return fld


def test_optional_keys_are_commented_examples(tmp_path: Path) -> None:
    text = generate_config("example.com", tmp_path)
    for key in (
        "dsn",
        "ca_file",
        "shared_secret",
        "smtp_host",
        "tls",
        "ip_range_blocklist",
    ):
        assert re.search(rf"^\s*#{key}:", text, re.MULTILINE), key
    # Uncommenting the TLS block gives a working TLS listener.
    uncommented = re.sub(
        r"^(\s*)#(tls:|  certificate_path:|  private_key_path:)",
        r"\1\2",
        text,
        flags=re.MULTILINE,
    )
    loaded = load_text(tmp_path, uncommented)
    assert loaded.listeners[0].tls == TlsConfig(
        certificate_path=Path("/etc/ranvier/tls/fullchain.pem"),
        private_key_path=Path("/etc/ranvier/tls/privkey.pem"),
    )


def test_every_unset_key_has_an_example() -> None:
    for key, _ in schema_keys(HomeserverConfig):
        fld = _field(key)
        meta = setting_of(fld)
        if meta.section is None and fld.default in (None, dataclasses.MISSING):
            assert meta.example is not None, key


def test_render_config_round_trips_non_default_values(tmp_path: Path) -> None:
    base = sample_config("example.com", tmp_path, 8448)
    config = dataclasses.replace(
        base,
        listeners=(
            ListenerConfig(
                port=8448,
                bind_addresses=("::", "0.0.0.0"),
                resources=frozenset({"federation", "keys"}),
                tls=TlsConfig(
                    certificate_path=tmp_path / "cert.pem",
                    private_key_path=tmp_path / "key.pem",
                ),
            ),
            ListenerConfig(
                port=9000, resources=frozenset({"metrics"}), x_forwarded=True
            ),
        ),
        database=DatabaseConfig(
            engine="postgres",
            path=tmp_path / "unused.db",
            dsn="postgresql://ranvier:${RANVIER_DB_PASSWORD}@db/ranvier",
            pool_size=3,
        ),
        turn=TurnConfig(uris=("turn:turn.example.com",), username="u", password="p"),
        email=EmailConfig(
            smtp_host="smtp.example.com",
            tls="none",
            smtp_port=25,
            notif_from="x@y.z",
        ),
    )
    loaded = load_text(tmp_path, render_config(config))
    assert loaded == dataclasses.replace(
        config,
        database=dataclasses.replace(
            config.database, dsn="postgresql://ranvier:pw@db/ranvier"
        ),
    )


def test_generated_yaml_is_plain_yaml(tmp_path: Path) -> None:
    data = yaml.safe_load(generate_config("example.com", tmp_path))
    assert data["server_name"] == "example.com"
    assert data["media"]["max_upload_size"] == "50M"
    assert data["turn"]["user_lifetime"] == "1h"
    assert "dsn" not in data["database"]


def test_invalid_server_name_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bad name"):
        generate_config("bad name", tmp_path)


def test_reference_lists_every_key() -> None:
    reference = reference_markdown()
    rows = [line for line in reference.splitlines() if line.startswith("| `")]
    keys = [row.split("`")[1] for row in rows]
    assert keys == [key for key, _ in schema_keys(HomeserverConfig)]
    assert "| `database.pool_size` | integer >= 1 | `10` |" in reference
    assert "| `rate_limits.login.per_second` | number > 0 | `0.17` |" in reference
    assert "| `server_name` | server name | required |" in reference
