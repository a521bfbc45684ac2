"""GET /health — liveness for load balancers and orchestration: 200 "OK" while serving."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest


async def get_health(_req: MatrixRequest) -> web.Response:
    return web.Response(text="OK")


def endpoints() -> list[Endpoint]:
    return [Endpoint("GET", ("/health",), get_health, auth=AuthMode.NONE)]
