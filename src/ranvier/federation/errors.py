"""Errors of outbound federation requests.

`FederationError` covers every way a request to another server can fail: the network
(`status` is None), an error answer (`status` and, when the body was a Matrix error,
`errcode`), or a reply we refuse (too large, not JSON). `NotRetryingDestination` is raised
without touching the network while a destination is backing off after failures.
"""

from __future__ import annotations


class FederationError(Exception):
    def __init__(
        self,
        destination: str,
        message: str,
        *,
        status: int | None = None,
        errcode: str | None = None,
    ) -> None:
        super().__init__(f"{destination}: {message}")
        self.destination = destination
        self.message = message
        self.status = status
        self.errcode = errcode

    @property
    def is_network_error(self) -> bool:
        """No HTTP answer at all (DNS, connect, TLS, timeout, refused address)."""
        return self.status is None


class NotRetryingDestination(FederationError):
    """The destination failed recently; we do not try again before `retry_at_ms`."""

    def __init__(self, destination: str, retry_at_ms: int) -> None:
        super().__init__(
            destination,
            f"not retrying until {retry_at_ms} (backing off after failures)",
        )
        self.retry_at_ms = retry_at_ms
