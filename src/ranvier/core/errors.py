"""Matrix error values shared by every layer.

`MatrixError` carries the HTTP status, the spec's `errcode` and a human message; the HTTP
edge turns it into the spec's error JSON. Services raise it; core code raises its own
narrower exceptions (auth, signature, canonical JSON) that services translate.
"""

from __future__ import annotations

from typing import Any


class MatrixError(Exception):
    def __init__(
        self,
        status: int,
        errcode: str,
        message: str,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode
        self.message = message
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.message, **self.extra}


def bad_json(msg: str) -> MatrixError:
    return MatrixError(400, "M_BAD_JSON", msg)


def not_json(msg: str = "Content not JSON.") -> MatrixError:
    return MatrixError(400, "M_NOT_JSON", msg)


def missing_param(msg: str) -> MatrixError:
    return MatrixError(400, "M_MISSING_PARAM", msg)


def invalid_param(msg: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", msg)


def forbidden(msg: str) -> MatrixError:
    return MatrixError(403, "M_FORBIDDEN", msg)


def not_found(msg: str = "Not found") -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", msg)


def unrecognized(status: int = 404, msg: str = "Unrecognized request") -> MatrixError:
    return MatrixError(status, "M_UNRECOGNIZED", msg)


def unknown_token(
    msg: str = "Unrecognised access token.", *, soft_logout: bool = False
) -> MatrixError:
    return MatrixError(401, "M_UNKNOWN_TOKEN", msg, soft_logout=soft_logout)


def missing_token(msg: str = "Missing access token.") -> MatrixError:
    return MatrixError(401, "M_MISSING_TOKEN", msg)


def too_large(msg: str = "Request too large.") -> MatrixError:
    return MatrixError(413, "M_TOO_LARGE", msg)


def limit_exceeded(retry_after_ms: int) -> MatrixError:
    return MatrixError(
        429, "M_LIMIT_EXCEEDED", "Too many requests", retry_after_ms=retry_after_ms
    )
