"""Loading the spec data the tests use: `tests/data/spec/` (see its PROVENANCE.md)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

# Kept in the repository so that a fresh clone tests itself.
SPEC_DIR = Path(__file__).resolve().parents[1] / "data" / "spec"
VECTORS_DIR = SPEC_DIR / "vectors"


def load_vectors(name: str) -> Any:
    with (VECTORS_DIR / name).open(encoding="utf-8") as f:
        return json.load(f)


def _number(text: str) -> int | float:
    # The spec's canonical JSON examples assume integral numbers parse as integers
    # (`1e10` -> 10000000000); see vectors/README.md.
    d = Decimal(text)
    return int(d) if d == d.to_integral_value() else float(text)


def parse_spec_json(text: str) -> Any:
    """Parse spec example JSON keeping integral numbers (`1e10`, `-0`) as integers."""
    return json.loads(text, parse_float=_number)
