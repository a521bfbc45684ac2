"""Attack tests that touch storage run on both engines (DESIGN.md rule 7)."""

from __future__ import annotations

import pytest


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def engine(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value
