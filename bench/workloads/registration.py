"""Registration (UIA m.login.dummy, two requests) and password login throughput."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from bench.matrix import User, VerificationError
from bench.sizes import Sizes
from bench.workloads.base import Context, PhaseResult, PhaseSpec, gather_limited

REGISTER = PhaseSpec(
    "register",
    "registration",
    "POST /register twice (401 + session, then m.login.dummy auth), password set",
)
LOGIN = PhaseSpec(
    "login", "login", "POST /login m.login.password for users registered above"
)


class Registration:
    name = "registration"

    def phases(self, sizes: Sizes) -> Sequence[PhaseSpec]:
        return (REGISTER, LOGIN)

    async def run(self, ctx: Context) -> None:
        client = ctx.client
        concurrency = ctx.sizes.concurrency

        async def register(phase: PhaseResult, localpart: str) -> User:
            return await phase.timed(client.register(localpart))

        async def login(phase: PhaseResult, localpart: str) -> User:
            return await phase.timed(client.login(localpart))

        names = [f"reg{i}" for i in range(ctx.sizes.registrations)]
        async with ctx.phase(REGISTER) as phase:
            users = await gather_limited(
                [partial(register, phase, n) for n in names], concurrency
            )
        await _check_tokens(ctx, users)
        ctx.pool.add(users)

        targets = [users[i % len(users)].localpart for i in range(ctx.sizes.logins)]
        async with ctx.phase(LOGIN) as phase:
            sessions = await gather_limited(
                [partial(login, phase, n) for n in targets], concurrency
            )
        await _check_tokens(ctx, sessions)
        if len({s.access_token for s in sessions}) != len(sessions):
            raise VerificationError("login returned duplicate access tokens")


async def _check_tokens(ctx: Context, users: Sequence[User]) -> None:
    """Each access token must belong to the user it was issued for."""
    whoami = await gather_limited(
        [partial(ctx.client.whoami, u) for u in users], ctx.sizes.concurrency
    )
    wrong = [
        u.user_id for u, got in zip(users, whoami, strict=True) if got != u.user_id
    ]
    if wrong:
        raise VerificationError(f"whoami disagrees for {len(wrong)} users: {wrong[:3]}")
