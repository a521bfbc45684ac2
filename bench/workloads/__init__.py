"""The workloads, in the order the harness runs them."""

from __future__ import annotations

from typing import Final

from bench.workloads.base import Workload
from bench.workloads.big_room import BigRoom
from bench.workloads.fanout import SyncFanout
from bench.workloads.initial_sync import InitialSync
from bench.workloads.messages import MessageSend
from bench.workloads.pagination import Pagination
from bench.workloads.registration import Registration
from bench.workloads.sliding_sync import SlidingSync

# Registration runs first: the users it registers seed the shared user pool.
ALL_WORKLOADS: Final[tuple[Workload, ...]] = (
    Registration(),
    MessageSend(),
    SyncFanout(),
    InitialSync(),
    BigRoom(),
    Pagination(),
    SlidingSync(),
)
