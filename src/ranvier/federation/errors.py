"""Errors of outbound federation requests.

`FederationError` covers every way a request to another server can fail: the network
(`status` is None), an error answer (`status` and, when the body was a Matrix error,
`errcode`), or a reply we refuse (too large, not JSON). `unknown_endpoint` marks an
answer that says the server does not serve the path at all (see
`is_unknown_endpoint_answer`), so a caller may retry an older version of the endpoint. `NotRetryingDestination` is raised
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
        unknown_endpoint: bool = False,
        remote_message: str = "",
    ) -> None:
        super().__init__(f"{destination}: {message}")
        self.destination = destination
        self.message = message
        self.status = status
        self.errcode = errcode
        self.unknown_endpoint = unknown_endpoint
        # The `error` text of the remote's Matrix error answer, as it sent it.
        self.remote_message = remote_message

    @property
    def is_network_error(self) -> bool:
        """No HTTP answer at all (DNS, connect, TLS, timeout, refused address)."""
        return self.status is None


def is_unknown_endpoint_answer(status: int, errcode: str | None, body: bytes) -> bool:
    """Whether an error answer means "no such endpoint" rather than a real refusal.

    There is no reliable signal (MSC3743 standardises 404 `M_UNRECOGNIZED`), so, as
    Synapse does: `M_UNRECOGNIZED` with 400 (older Synapse) or 404 (the spec), or a bare
    404 with an empty body (Conduit, SyTest) or Go's "404 page not found" (Dendrite). A
    404 with any other body is a real "not found" and must not trigger a fallback.
    """
    if errcode == "M_UNRECOGNIZED":
        return status in (400, 404)
    return status == 404 and body.strip() in (b"", b"404 page not found")


class NotRetryingDestination(FederationError):
    """The destination failed recently; we do not try again before `retry_at_ms`."""

    def __init__(self, destination: str, retry_at_ms: int) -> None:
        super().__init__(
            destination,
            f"not retrying until {retry_at_ms} (backing off after failures)",
        )
        self.retry_at_ms = retry_at_ms
