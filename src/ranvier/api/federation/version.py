"""GET /_matrix/federation/v1/version - implementation name and version.

Spec: Server-Server API > Server discovery > Server implementation.
"""

from __future__ import annotations

import functools
from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest

SERVER_NAME = "Ranvier"


@functools.cache
def _version() -> str:
    # Imported on first use: importlib.metadata pulls in zipfile, csv, email parsing...
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ranvier")
    except PackageNotFoundError:
        return "unknown"


async def get_version(_req: MatrixRequest) -> dict[str, Any]:
    return {"server": {"name": SERVER_NAME, "version": _version()}}


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            "GET",
            ("/_matrix/federation/v1/version",),
            get_version,
            auth=AuthMode.NONE,
        )
    ]
