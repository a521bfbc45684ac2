"""Registration files are checked at start-up: a bad or conflicting one stops the
server with a message naming the file, and nothing is left open."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from ranvier.app.homeserver import build_homeserver
from ranvier.config.load import load_config
from ranvier.core.appservice import AppServiceConfigError
from tests.helpers.homeserver import write_test_config


def _registration(path: Path, **overrides: object) -> Path:
    doc: dict[str, object] = {
        "id": "one",
        "url": None,
        "as_token": "as-1",
        "hs_token": "hs-1",
        "sender_localpart": "onebot",
        "namespaces": {"users": [{"exclusive": True, "regex": "@one_.*"}]},
    }
    doc.update(overrides)
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ({"as_token": "as-1"}, r"two\.yaml: as_token is the same as in .*one\.yaml"),
        (
            {"namespaces": {"users": [{"exclusive": True, "regex": "@one_.*"}]}},
            r"two\.yaml: exclusive users namespace '@one_\.\*' is also claimed",
        ),
        (
            {"namespaces": {"users": [{"exclusive": True, "regex": "@two_(.*"}]}},
            r"two\.yaml: namespaces\.users\[0\]\.regex .* is not a valid regex",
        ),
    ],
)
async def test_bad_registrations_stop_start_up(
    tmp_path: Path, second: dict[str, object], message: str
) -> None:
    one = _registration(tmp_path / "one.yaml")
    two_doc: dict[str, object] = {
        "id": "two",
        "as_token": "as-2",
        "hs_token": "hs-2",
        "sender_localpart": "twobot",
        "namespaces": {"users": [{"exclusive": True, "regex": "@two_.*"}]},
        **second,
    }
    two = _registration(tmp_path / "two.yaml", **two_doc)
    paths = write_test_config(
        tmp_path, overrides={"app_service_config_files": [str(one), str(two)]}
    )
    config = load_config(paths, dict(os.environ))
    with pytest.raises(AppServiceConfigError, match=message):
        await build_homeserver(config)


async def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    paths = write_test_config(
        tmp_path, overrides={"app_service_config_files": [str(missing)]}
    )
    config = load_config(paths, dict(os.environ))
    with pytest.raises(AppServiceConfigError, match=r"nowhere\.yaml: cannot read"):
        await build_homeserver(config)


async def test_a_service_without_url_starts(tmp_path: Path) -> None:
    one = _registration(tmp_path / "one.yaml")
    paths = write_test_config(
        tmp_path, overrides={"app_service_config_files": [str(one)]}
    )
    hs = await build_homeserver(load_config(paths, dict(os.environ)))
    try:
        assert hs.appservices is not None
        assert hs.appservices.senders == []  # nothing to deliver to
        assert hs.accounts is not None
        assert await hs.accounts.store.get_user("@onebot:localhost") is not None
    finally:
        await hs.stop()
