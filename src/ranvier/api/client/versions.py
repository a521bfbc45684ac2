"""GET /_matrix/client/versions — the spec versions and unstable features we serve.

Only versions whose required endpoints actually work are listed (grow this honestly).
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest

SUPPORTED_VERSIONS: tuple[str, ...] = ("v1.1",)
UNSTABLE_FEATURES: dict[str, bool] = {}


async def get_versions(_req: MatrixRequest) -> dict[str, Any]:
    return {
        "versions": list(SUPPORTED_VERSIONS),
        "unstable_features": UNSTABLE_FEATURES,
    }


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            "GET", ("/_matrix/client/versions",), get_versions, auth=AuthMode.NONE
        ),
    ]
