"""The one exception the authorization rules raise."""

from __future__ import annotations


class AuthError(Exception):
    """An event is not allowed by the authorization rules.

    `reason` says which rule failed, in words a server log or an M_FORBIDDEN response can
    carry. Services translate this into `MatrixError(403, "M_FORBIDDEN", ...)`.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
