"""State resolution v2 / v2.1 on the JSON DAG fixtures (tests/core/fixtures/state_res)."""

from __future__ import annotations

import pytest

from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS
from tests.core.state_res_dag import (
    DEFAULT_VERSIONS,
    compare,
    fixture_names,
    load,
    run_dag,
)

CASES = [
    (name, version)
    for name in fixture_names()
    for version in load(name).get("room_versions", DEFAULT_VERSIONS)
]


@pytest.mark.parametrize(
    ("name", "version"),
    CASES,
    ids=[f"{n.removesuffix('.json')}-v{v}" for n, v in CASES],
)
def test_fixture(name: str, version: str) -> None:
    fixture = load(name)
    rv = KNOWN_ROOM_VERSIONS[version]
    compare(fixture, rv, run_dag(fixture, rv))


def test_fixtures_exist() -> None:
    assert len(CASES) >= 40
