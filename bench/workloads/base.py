"""What a workload is, and the context it runs in.

A workload prepares its data (not measured), then runs one or more *phases*. A phase
is the measured part: wall time, per-operation latency and the server's CPU seconds
are taken around it only. Workloads check their results (outside the phase) and
raise :class:`~bench.matrix.VerificationError` when the server did not do the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, TypeVar

from bench.matrix import MatrixClient, NotImplementedByServer, User, VerificationError
from bench.procstats import cpu_seconds, self_cpu_seconds
from bench.sizes import Sizes

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PhaseSpec:
    name: str
    unit: str
    """What one operation is: 'registration', 'message', 'delivery', 'sync', …"""
    description: str


@dataclass
class PhaseResult:
    name: str
    unit: str
    status: str = "ok"
    """'ok', 'n/a' (server lacks an endpoint) or 'error'."""
    note: str = ""
    ops: int = 0
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    def record(self, latency_s: float) -> None:
        self.ops += 1
        self.latencies_ms.append(latency_s * 1000)

    async def timed(self, aw: Awaitable[T]) -> T:
        """Await ``aw`` as one operation and record its latency."""
        start = time.perf_counter()
        result = await aw
        self.record(time.perf_counter() - start)
        return result


class Workload(Protocol):
    name: str

    def phases(self, sizes: Sizes) -> Sequence[PhaseSpec]: ...

    async def run(self, ctx: Context) -> None: ...


class UserPool:
    """Registered users shared by the workloads of one server run.

    Setup registrations (not measured) use the same UIA flow as the registration
    workload. Workloads that measure a user's own view (initial sync) take a
    ``fresh`` user so rooms joined by other workloads do not leak in.
    """

    def __init__(self, client: MatrixClient, concurrency: int) -> None:
        self._client = client
        self._concurrency = concurrency
        self._users: list[User] = []
        self._counter = 0

    def add(self, users: Sequence[User]) -> None:
        self._users.extend(users)

    def _next_localpart(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    async def get(self, count: int) -> list[User]:
        missing = count - len(self._users)
        if missing > 0:
            names = [self._next_localpart("pool") for _ in range(missing)]
            self._users.extend(
                await gather_limited(
                    [partial(self._client.register, n) for n in names],
                    self._concurrency,
                )
            )
        return self._users[:count]

    async def fresh(self, prefix: str = "fresh") -> User:
        return await self._client.register(self._next_localpart(prefix))


@dataclass
class Context:
    client: MatrixClient
    sizes: Sizes
    server_pid: int
    server_name: str
    pool: UserPool
    results: dict[str, PhaseResult] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def phase(self, spec: PhaseSpec) -> AsyncIterator[PhaseResult]:
        """Measure the enclosed block as ``spec``; the result is kept only on success."""
        result = PhaseResult(name=spec.name, unit=spec.unit)
        cpu0 = cpu_seconds(self.server_pid)
        client0 = self_cpu_seconds()
        wall0 = time.perf_counter()
        yield result
        result.wall_s = time.perf_counter() - wall0
        result.server_cpu_s = cpu_seconds(self.server_pid) - cpu0
        result.client_cpu_s = self_cpu_seconds() - client0
        if result.ops <= 0:
            raise RuntimeError(f"phase {spec.name} recorded no operations")
        self.results[spec.name] = result


async def gather_limited(
    jobs: Sequence[Callable[[], Awaitable[T]]], concurrency: int
) -> list[T]:
    """Run ``jobs`` with at most ``concurrency`` in flight; results in job order."""
    results: dict[int, T] = {}
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < len(jobs):
            index = next_index
            next_index += 1
            results[index] = await jobs[index]()

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, len(jobs))):
                group.create_task(worker())
    except ExceptionGroup as group_error:
        raise _first_error(group_error) from None
    return [results[i] for i in range(len(jobs))]


def _first_error(group: BaseExceptionGroup[Exception]) -> Exception:
    """The error to report for a failed batch: "not implemented" wins, so the
    harness reports n/a rather than an error for a missing endpoint."""
    leaves: list[Exception] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        elif isinstance(exc, Exception):
            leaves.append(exc)
    for leaf in leaves:
        if isinstance(leaf, NotImplementedByServer):
            return leaf
    return leaves[0] if leaves else RuntimeError(str(group))


async def room_message_ids(
    client: MatrixClient, user: User, room_id: str, *, page: int = 100
) -> list[str]:
    """Every ``m.room.message`` event ID in a room, newest first, via /messages."""
    ids: list[str] = []
    token: str | None = None
    for _ in range(100_000):
        resp = await client.messages(user, room_id, from_token=token, limit=page)
        chunk = resp.get("chunk") or []
        ids.extend(
            e["event_id"]
            for e in chunk
            if e.get("type") == "m.room.message" and isinstance(e.get("event_id"), str)
        )
        end = resp.get("end")
        if not chunk or not isinstance(end, str) or end == token:
            return ids
        token = end
    raise VerificationError(f"/messages of {room_id} did not end")


def check_all_present(sent: Sequence[str], found: Sequence[str], what: str) -> None:
    missing = set(sent) - set(found)
    if missing:
        raise VerificationError(
            f"{what}: {len(missing)} of {len(sent)} sent events missing, e.g. "
            f"{sorted(missing)[:3]}"
        )
