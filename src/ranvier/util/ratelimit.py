"""Token-bucket rate limiting keyed by (action, key), e.g. ("login", "1.2.3.4")."""

from __future__ import annotations

from dataclasses import dataclass

from ranvier.util.clock import Clock


@dataclass(frozen=True, slots=True)
class Bucket:
    per_second: float
    burst: int


class RateLimiter:
    """Answers how long the caller must wait; 0 means allowed (and counted).

    Memory is bounded: idle entries are pruned once their bucket has refilled.
    """

    def __init__(self, clock: Clock, *, enabled: bool = True) -> None:
        self._clock = clock
        self._enabled = enabled
        # key -> (tokens, last refill time in seconds)
        self._state: dict[tuple[str, str], tuple[float, float]] = {}
        self._ops = 0

    def check(self, action: str, key: str, bucket: Bucket) -> int:
        """Take one token; return 0 if allowed, else milliseconds until one is free."""
        if not self._enabled or bucket.per_second <= 0:
            return 0
        now = self._clock.monotonic()
        tokens, last = self._state.get((action, key), (float(bucket.burst), now))
        tokens = min(float(bucket.burst), tokens + (now - last) * bucket.per_second)
        self._maybe_prune(now, bucket)
        if tokens >= 1.0:
            self._state[(action, key)] = (tokens - 1.0, now)
            return 0
        self._state[(action, key)] = (tokens, now)
        return max(1, int((1.0 - tokens) / bucket.per_second * 1000))

    def _maybe_prune(self, now: float, bucket: Bucket) -> None:
        self._ops += 1
        if self._ops % 10_000:
            return
        horizon = bucket.burst / bucket.per_second
        self._state = {k: v for k, v in self._state.items() if now - v[1] < horizon}
