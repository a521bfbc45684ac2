"""All pusher workers: one supervised task per pusher.

Started from the stored pushers at start-up; pushers set or deleted through the API
start or stop their worker (`PusherLifecycle`); new push actions wake the workers of
the users concerned, read receipts wake them too (badge counts, e-mail re-checks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from ranvier.storage.stores.push import PushActionRow
from ranvier.storage.stores.pushers import PusherRow, PusherStore
from ranvier.util.supervisor import TaskSupervisor
from ranvier.workers.push.base import PusherDeps, PusherKey, PusherWorker
from ranvier.workers.push.email_pusher import EmailPusher, EmailSettings
from ranvier.workers.push.gateway_client import GatewayClient
from ranvier.workers.push.http_pusher import HttpPusher
from ranvier.workers.push.mailer import Mailer

logger = logging.getLogger(__name__)


class PusherPool:
    def __init__(
        self,
        *,
        store: PusherStore,
        deps: PusherDeps,
        supervisor: TaskSupervisor,
        gateway: GatewayClient,
        mailer: Mailer | None,
        email: EmailSettings,
    ) -> None:
        self._store = store
        self._deps = deps
        self._supervisor = supervisor
        self._gateway = gateway
        self._mailer = mailer
        self._email = email
        self._workers: dict[
            str, dict[PusherKey, tuple[PusherWorker, asyncio.Task[None]]]
        ] = {}

    async def start(self) -> None:
        for row in await self._store.get_pushers():
            self._start(row)

    @property
    def running(self) -> int:
        return sum(len(w) for w in self._workers.values())

    def _make(self, row: PusherRow) -> PusherWorker | None:
        if row.kind == "http":
            return HttpPusher(row, self._deps, self._gateway)
        if row.kind == "email" and self._mailer is not None:
            return EmailPusher(row, self._deps, self._mailer, self._email)
        return None

    def _start(self, row: PusherRow) -> None:
        worker = self._make(row)
        if worker is None:
            return
        try:
            task = self._supervisor.start(
                f"pusher {row.kind} {row.user_id}", worker.run()
            )
        except RuntimeError:
            return  # shutting down
        self._workers.setdefault(row.user_id, {})[row.key] = (worker, task)

    # -- PusherLifecycle -------------------------------------------------------------
    def pusher_added(self, pusher: PusherRow) -> None:
        self.pusher_removed(pusher.key)
        self._start(pusher)

    def pusher_removed(self, key: PusherKey) -> None:
        per_user = self._workers.get(key[0])
        if per_user is None:
            return
        entry = per_user.pop(key, None)
        if entry is not None:
            entry[1].cancel()
        if not per_user:
            del self._workers[key[0]]

    # -- wake-ups --------------------------------------------------------------------
    def on_push_actions(self, rows: Sequence[PushActionRow]) -> None:
        for user_id in {r.user_id for r in rows}:
            for worker, _task in self._workers.get(user_id, {}).values():
                worker.wake()

    async def on_receipt(self, user_id: str, room_id: str) -> None:
        for worker, _task in self._workers.get(user_id, {}).values():
            worker.on_read()
