"""What a test does when a real component it needs is missing: skip on a developer's
machine, fail under CI (`CI` set), where every component must be there."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_component(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason}; CI is set, so this test must run")
    pytest.skip(reason)
