"""Errors aiohttp answers before any handler runs, as Matrix JSON.

aiohttp's parser refuses a request line longer than `MAX_REQUEST_LINE_BYTES`, a header
longer than `MAX_HEADER_FIELD_BYTES`, more than `MAX_HEADERS` headers, or anything that
is not HTTP, and its `RequestHandler.handle_error` then answers a plain-text 400 that
quotes the offending bytes (a token in a header, a URL). Clients expect the spec's
error object, and a server should not echo request bytes back, so `MatrixAppRunner`
serves every listener with a request handler that answers:

* request line too long → 414 `M_TOO_LARGE`;
* a header too long, or too many → 431 `M_TOO_LARGE`;
* any other malformed request → 400 `M_UNKNOWN`;
* aiohttp's own 5xx (a handler timeout) → that status, `M_UNKNOWN`.

The two line limits differ so that the parser's `LineTooLong` (which names only the
limit it hit) tells a long URL from a long header. The connection is closed afterwards,
as aiohttp does.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

__all__ = [
    "MAX_HEADERS",
    "MAX_HEADER_FIELD_BYTES",
    "MAX_REQUEST_LINE_BYTES",
    "MatrixAppRunner",
    "transport_error",
]

# Room, event and user IDs in a path are at most 255 bytes each; 16 KiB leaves room for
# long filters and `via` lists in the query. Headers keep aiohttp's default.
MAX_REQUEST_LINE_BYTES: Final = 16384
MAX_HEADER_FIELD_BYTES: Final = 8190
MAX_HEADERS: Final = 128

_JSON_HEADERS: Final = {
    "Content-Type": "application/json",
    "Access-Control-Allow-Origin": "*",
}


def transport_error(
    status: int, exc: BaseException | None
) -> tuple[int, dict[str, str]]:
    """The status and Matrix error body for a request aiohttp could not hand over."""
    if isinstance(exc, LineTooLong):
        if _limit_of(exc) == MAX_REQUEST_LINE_BYTES:
            return 414, _error("M_TOO_LARGE", "Request URI too long.")
        return 431, _error("M_TOO_LARGE", "Request header too large.")
    if isinstance(exc, BadHttpMessage) and "too many headers" in str(exc).lower():
        return 431, _error("M_TOO_LARGE", "Too many request headers.")
    if status < 500:
        return 400, _error("M_UNKNOWN", "Malformed HTTP request.")
    return status, _error("M_UNKNOWN", "Internal server error")


def _limit_of(exc: LineTooLong) -> object:
    args: tuple[Any, ...] = exc.args
    if len(args) < 2:
        return None
    try:
        return int(args[1])
    except (TypeError, ValueError):
        return None


def _error(errcode: str, message: str) -> dict[str, str]:
    return {"errcode": errcode, "error": message}


class _MatrixRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # aiohttp's version logs (server.py's filter shortens it) and refuses to answer
        # once bytes were sent; its plain-text answer is replaced.
        super().handle_error(request, status, exc, message)
        code, body = transport_error(status, exc)
        resp = web.Response(status=code, body=orjson.dumps(body), headers=_JSON_HEADERS)
        resp.force_close()
        return resp


class _MatrixServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _MatrixRequestHandler(self, loop=self._loop, **self._kwargs)


class MatrixAppRunner(web.AppRunner):
    """`web.AppRunner` whose connections answer transport errors as Matrix JSON."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("max_line_size", MAX_REQUEST_LINE_BYTES)
        kwargs.setdefault("max_field_size", MAX_HEADER_FIELD_BYTES)
        kwargs.setdefault("max_headers", MAX_HEADERS)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # `Application._make_handler` builds a plain `web.Server`, which hard-codes its
        # `RequestHandler`; the subclass only changes which handler class it builds.
        server.__class__ = _MatrixServer
        return server
