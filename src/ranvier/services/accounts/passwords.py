"""Password hashing with argon2id, always off the event loop (≈15 ms per hash here).

Hashes and verifications run on the hasher's own small thread pool (`max_threads`, 2 by
default), not the default executor: each one holds a 19 MiB argon2 buffer, so a burst of
logins or registrations must queue rather than allocate one buffer per thread of a big
pool (that grew the process's RSS for good). `close()` shuts the pool down with the
server.

Verification of a missing account still runs one full verification against a fixed dummy
hash, so response time does not reveal which usernames exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ranvier.core.errors import MatrixError

T = TypeVar("T")

# Longer passwords add nothing to security and only cost hashing time.
MAX_PASSWORD_LENGTH = 512


def check_password_acceptable(password: str) -> None:
    if not password:
        raise MatrixError(400, "M_WEAK_PASSWORD", "Password cannot be empty.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise MatrixError(
            400, "M_INVALID_PARAM", f"Password too long (max {MAX_PASSWORD_LENGTH})."
        )


class PasswordHasher:
    def __init__(
        self,
        *,
        time_cost: int = 2,
        memory_cost_kib: int = 19456,
        parallelism: int = 1,
        max_threads: int = 2,
    ) -> None:
        # Defaults: OWASP's recommended argon2id floor (m=19 MiB, t=2, p=1). It resists GPU
        # cracking comparably to bcrypt at cost 12 while costing ~15 ms instead of ~270 ms,
        # so logins and registrations don't queue behind hashing on a small server. The
        # parameters live in each hash: stronger settings apply to new hashes and
        # `needs_rehash` upgrades old ones at the next login.
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost_kib,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )
        self._dummy_hash: str | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=max_threads, thread_name_prefix="password-hash"
        )

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def close(self) -> None:
        """Stop the pool: queued work is cancelled, running work finishes first."""
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)

    async def hash(self, password: str) -> str:
        return await self._run(partial(self._hasher.hash, password))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True if `password` matches; a None hash (no such user) always fails slowly."""
        if password_hash is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash("not a password of anyone")
            await self._run(partial(self._verify, self._dummy_hash, password))
            return False
        return await self._run(partial(self._verify, password_hash, password))

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(password_hash, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return bool(self._hasher.check_needs_rehash(password_hash))
        except InvalidHashError:
            return False
