"""Errors raised while checking or building PDUs."""

from __future__ import annotations

__all__ = ["EventFormatError", "EventSizeError"]


class EventFormatError(ValueError):
    """The PDU does not have the structure its room version requires.

    The message names the offending key and the rule, e.g.
    `"'depth' must be an integer, got str"`. Such events are dropped, not stored.
    """


class EventSizeError(EventFormatError):
    """A size limit is exceeded (spec: S-S API > PDUs > Size limits).

    `persist_as_rejected` is True when the event breaks a byte limit only, in a room
    version where Synapse counted code points instead of bytes (v1-v10): such events
    exist in real rooms, so they must be stored as rejected rather than dropped, or the
    room's DAG would have holes.
    """

    def __init__(self, message: str, *, persist_as_rejected: bool = False) -> None:
        super().__init__(message)
        self.persist_as_rejected = persist_as_rejected
