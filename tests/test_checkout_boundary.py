"""The checkout boundary stops reads beside the repository (tests/checkout_boundary.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.checkout_boundary import (
    BOUNDARY,
    REPO,
    CheckoutBoundary,
    OutsideCheckoutError,
)


def test_reading_a_sibling_folder_fails() -> None:
    sibling = REPO.parent / "shared" / "spec" / "README.md"
    assert BOUNDARY.is_outside(str(sibling))
    with pytest.raises(OutsideCheckoutError):
        BOUNDARY.audit("open", (str(sibling), "r", 0))
    with pytest.raises(OutsideCheckoutError):
        BOUNDARY.audit("os.listdir", (os.fsencode(REPO.parent / "shared"),))
    BOUNDARY.violations.clear()  # the two deliberate reads above are not a failure


def test_the_hook_is_installed_for_real_opens() -> None:
    if REPO.parent == type(REPO)(REPO.anchor):
        pytest.skip("the checkout is at the file-system root: it has no siblings")
    with pytest.raises(OutsideCheckoutError):
        (REPO.parent / "surely-not-a-ranvier-file").open()
    BOUNDARY.violations.clear()


def test_the_checkout_and_temp_files_stay_readable() -> None:
    boundary = CheckoutBoundary(REPO)
    assert not boundary.is_outside(str(REPO / "README.md"))
    assert not boundary.is_outside(str(REPO / "tests" / ".." / "pyproject.toml"))
    assert boundary.is_outside(str(REPO / ".." / "elsewhere"))
    if boundary.temp_is_beside:
        assert not boundary.is_outside(os.path.join(boundary.temp, "x"))


def test_a_checkout_inside_the_temp_folder_still_has_a_boundary(
    tmp_path: Path,
) -> None:
    # CI may clone into /tmp/<run>/main with shared/ beside it.
    repo = tmp_path / "run" / "main"
    boundary = CheckoutBoundary(repo)
    assert not boundary.temp_is_beside
    assert boundary.is_outside(str(tmp_path / "run" / "shared" / "spec" / "x.json"))
    assert not boundary.is_outside(str(repo / "tests" / "x.json"))
    assert not boundary.is_outside(str(tmp_path / "elsewhere"))
