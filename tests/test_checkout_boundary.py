"""The checkout boundary stops reads beside the repository (tests/checkout_boundary.py)."""

from __future__ import annotations

import os

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


def test_the_hook_is_installed_for_real_opens(tmp_path: object) -> None:
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
    assert not boundary.is_outside(os.path.join(boundary.temp, "x"))
