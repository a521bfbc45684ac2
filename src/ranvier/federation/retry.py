"""Per-destination backoff after failures, shared by every outbound request.

A destination that fails (no answer, or a 5xx) is not contacted again before its retry
time; each further failure after the wait has passed multiplies the interval, up to a
cap. Any answer from it - or an authenticated request from it - clears the state and
tells the listeners (the federation sender then catches up on its queue at once).

State lives in memory (authoritative within the process) and is written through to the
database, so a restart does not hammer servers that were down.

A failure is only counted if nothing proved the destination alive since its request
started (`contact_epoch`): a request that times out while the peer restarts and talks
to us must not put a live peer back into backoff (its queue would then sleep for the
whole interval though nothing is wrong).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ranvier.util.clock import Clock

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    initial_ms: int = 60_000
    multiplier: float = 2.0
    max_ms: int = 24 * 3600 * 1000

    def next_interval(self, previous_ms: int) -> int:
        if previous_ms <= 0:
            return self.initial_ms
        return min(int(previous_ms * self.multiplier), self.max_ms)


class RetryStateRow(Protocol):
    @property
    def destination(self) -> str: ...
    @property
    def failure_ts(self) -> int: ...
    @property
    def retry_last_ts(self) -> int: ...
    @property
    def retry_interval_ms(self) -> int: ...


class RetryStateStore(Protocol):
    async def get_destination_retry_states(self) -> Sequence[RetryStateRow]: ...

    async def set_destination_retry_state(
        self,
        destination: str,
        failure_ts: int,
        retry_last_ts: int,
        retry_interval_ms: int,
    ) -> None: ...

    async def clear_destination_retry_state(self, destination: str) -> None: ...


@dataclass(slots=True)
class _State:
    failure_ts: int
    retry_last_ts: int
    retry_interval_ms: int

    @property
    def retry_at(self) -> int:
        return self.retry_last_ts + self.retry_interval_ms


RecoveryListener = Callable[[str], None]


class DestinationRetryTracker:
    def __init__(
        self, store: RetryStateStore, clock: Clock, policy: BackoffPolicy
    ) -> None:
        self._store = store
        self._clock = clock
        self._policy = policy
        self._states: dict[str, _State] = {}
        self._contacts: dict[str, int] = {}
        self._listeners: list[RecoveryListener] = []

    async def load(self) -> None:
        """Read the persisted states (at start-up)."""
        for row in await self._store.get_destination_retry_states():
            self._states[row.destination] = _State(
                row.failure_ts, row.retry_last_ts, row.retry_interval_ms
            )

    def add_recovery_listener(self, listener: RecoveryListener) -> None:
        self._listeners.append(listener)

    def retry_at(self, destination: str) -> int:
        """When the destination may be tried again (0: not backing off)."""
        state = self._states.get(destination)
        return state.retry_at if state is not None else 0

    def is_backing_off(self, destination: str) -> bool:
        return self.retry_at(destination) > self._clock.time_msec()

    def failing_destinations(self) -> list[str]:
        return list(self._states)

    def failing_since(self, destination: str) -> int | None:
        """When the current run of failures began (None: not failing)."""
        state = self._states.get(destination)
        return state.failure_ts if state is not None else None

    def contact_epoch(self, destination: str) -> int:
        """Changes whenever the destination proves alive; pass the value read before a
        request to `record_failure`."""
        return self._contacts.get(destination, 0)

    async def record_failure(
        self, destination: str, *, epoch: int | None = None
    ) -> int:
        """Note a failed attempt; returns the retry time. Failures while the wait is
        still running (concurrent requests) do not grow the interval again; failures
        of requests that started before the destination last proved alive (`epoch`
        is stale) are ignored."""
        if epoch is not None and epoch != self.contact_epoch(destination):
            logger.debug("ignoring a stale failure of %s", destination)
            return self.retry_at(destination)
        now = self._clock.time_msec()
        state = self._states.get(destination)
        if state is not None and now < state.retry_at:
            return state.retry_at
        interval = self._policy.next_interval(state.retry_interval_ms if state else 0)
        failure_ts = state.failure_ts if state else now
        self._states[destination] = _State(failure_ts, now, interval)
        await self._store.set_destination_retry_state(
            destination, failure_ts, now, interval
        )
        logger.info("backing off %s for %d ms", destination, interval)
        return now + interval

    async def record_success(self, destination: str) -> None:
        """The destination answered (or contacted us): forget its failures."""
        self._contacts[destination] = self._contacts.get(destination, 0) + 1
        if self._states.pop(destination, None) is None:
            return
        await self._store.clear_destination_retry_state(destination)
        logger.info("%s is reachable again", destination)
        for listener in self._listeners:
            try:
                listener(destination)
            except Exception:
                logger.exception("recovery listener failed for %s", destination)
