"""`Homeserver.stop` also stops what accounts run beside the database: the password
hashing threads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ranvier.app.homeserver import build_homeserver
from ranvier.config.load import load_config
from tests.helpers.homeserver import write_test_config


async def test_stop_shuts_the_password_hashing_pool_down(tmp_path: Path) -> None:
    config = load_config(write_test_config(tmp_path, "hs.test"), dict(os.environ))
    hs = await build_homeserver(config)
    try:
        assert hs.accounts is not None
        hasher = hs.accounts.hasher
        await hs.accounts.registration.register_local_user("ann", "pw")
    finally:
        await hs.stop()
    with pytest.raises(RuntimeError, match="shutdown"):
        await hasher.hash("after stop")
