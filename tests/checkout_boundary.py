"""Fail any test that reads a file beside the checkout instead of inside it.

A fresh `git clone` must test itself with nothing next to it, yet a workspace may have
sibling folders that would quietly satisfy a test. A Python audit
hook sees every `open`, `os.listdir` and `os.scandir` in the test process; a path in
the checkout's parent folder but outside the checkout (and outside the temp folder
when the checkout sits directly in it) raises `OutsideCheckoutError`, and the session fails even
if the code under test swallowed the error. Child processes are not watched: they are
started from the checkout's own files.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class OutsideCheckoutError(PermissionError):
    pass


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + os.sep)


class CheckoutBoundary:
    def __init__(self, repo: Path) -> None:
        self.repo = str(repo)
        self.parent = str(repo.parent)
        self.temp = os.path.realpath(tempfile.gettempdir())
        # Only when the checkout sits directly in (or above) the temp folder are temp
        # files siblings of it; a checkout in /tmp/ci/main must still not read
        # /tmp/ci/shared.
        self.temp_is_beside = _inside(self.temp, self.parent)
        self.violations: list[str] = []

    def is_outside(self, path: str) -> bool:
        full = os.path.abspath(path)
        return (
            _inside(full, self.parent)
            and not _inside(full, self.repo)
            and not (self.temp_is_beside and _inside(full, self.temp))
        )

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        if event not in ("open", "os.listdir", "os.scandir") or not args:
            return
        path = args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str) or not self.is_outside(path):
            return
        self.violations.append(path)
        raise OutsideCheckoutError(
            f"tests must not read outside the checkout {self.repo}: {path}"
        )


BOUNDARY = CheckoutBoundary(REPO)
# Audit hooks cannot be removed; the boundary holds for the whole test process.
if REPO.parent != Path(REPO.anchor):
    sys.addaudithook(BOUNDARY.audit)
