"""A start-up that fails after the federation transport was built closes everything it
had opened: the outbound HTTP session, background tasks and the database."""

from __future__ import annotations

import gc
import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from ranvier.app import homeserver
from ranvier.app.federation import Federation
from ranvier.app.federation import build_federation as real_build_federation
from ranvier.app.homeserver import build_homeserver
from ranvier.config.load import load_config
from ranvier.federation.transport import HttpTransport
from ranvier.storage.database import Database, DatabaseClosedError
from tests.helpers.homeserver import write_test_config


class InjectedFailure(Exception):
    pass


async def test_failure_after_build_federation_closes_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write_test_config(tmp_path, "hs.test"), dict(os.environ))
    assert config.federation.enabled
    built: list[tuple[Database, Federation]] = []

    def spy(config: Any, db: Database, *args: Any, **kwargs: Any) -> Federation:
        federation = real_build_federation(config, db, *args, **kwargs)
        built.append((db, federation))
        return federation

    async def fail(**kwargs: Any) -> Any:
        raise InjectedFailure

    monkeypatch.setattr(homeserver, "build_federation", spy)
    monkeypatch.setattr(homeserver, "build_room_federation", fail)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InjectedFailure):
            await build_homeserver(config)
        gc.collect()

    [(db, federation)] = built
    # The real transport (no injected one): its aiohttp session must be closed.
    assert isinstance(federation.transport, HttpTransport)
    assert federation.transport._session.closed
    with pytest.raises(DatabaseClosedError):
        await db.run_read_txn("after_close", lambda txn: None)
    unclosed = [str(w.message) for w in caught if w.category is ResourceWarning]
    assert unclosed == []
