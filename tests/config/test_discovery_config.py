"""`matrix_rtc` and `server_support`: parsed, checked, and rendered back by the sample."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ranvier.config.errors import ConfigError
from ranvier.config.load import load_config
from ranvier.config.sample import render_config, sample_config
from ranvier.config.schema import MatrixRtcConfig, SupportConfig
from ranvier.config.values import SupportContact


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "homeserver.yaml"
    path.write_text("server_name: example.com\n" + text)
    return load_config([path], {})


def test_round_trip(tmp_path: Path) -> None:
    config = dataclasses.replace(
        sample_config("example.com", tmp_path, 8008),
        matrix_rtc=MatrixRtcConfig(livekit_service_urls=("https://lk.example.com",)),
        server_support=SupportConfig(
            contacts=(
                SupportContact("m.role.admin", matrix_id="@a:example.com"),
                SupportContact("org.example.role", email_address="x@example.com"),
            ),
            page="https://example.com/help?lang=en",
        ),
    )
    path = tmp_path / "homeserver.yaml"
    path.write_text(render_config(config))
    assert load_config([path], {}) == config


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("server_support:\n  contacts: [{role: m.role.admin}]\n", r"contacts\[0\]"),
        ("server_support:\n  contacts: [{role: admin, matrix_id: '@a:b'}]\n", "role"),
        (
            "server_support:\n  contacts: [{role: m.role.admin, matrix_id: a}]\n",
            "matrix_id",
        ),
        ("server_support:\n  page: ftp://example.com\n", "page"),
        ("matrix_rtc:\n  livekit_service_urls: [example.com]\n", "livekit"),
    ],
)
def test_invalid_values(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        _load(tmp_path, text)
