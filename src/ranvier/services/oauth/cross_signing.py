"""Replacing cross-signing keys from an OAuth session (MSC4312).

`keys/device_signing/upload` needs UIA when it replaces keys, but an OAuth client has no
password to offer. For OAuth access tokens the endpoint answers UIA with the single
stage `m.oauth` (and its unstable name `org.matrix.cross_signing_reset`), whose `url`
param is the account page's `org.matrix.cross_signing_reset` action. Approving there
lets the next upload of that user through without UIA, once, within
`RESET_WINDOW_MS`. Password-login tokens keep the `m.login.password` stage.
"""

from __future__ import annotations

from ranvier.services.accounts.uia import UiaRequest, UserInteractiveAuth
from ranvier.storage.stores.oauth import OAuthStore
from ranvier.util.clock import Clock

M_OAUTH = "m.oauth"
UNSTABLE_M_OAUTH = "org.matrix.cross_signing_reset"
RESET_ACTION = "org.matrix.cross_signing_reset"
RESET_WINDOW_MS = 10 * 60 * 1000


class CrossSigningResetGate:
    def __init__(
        self,
        store: OAuthStore,
        clock: Clock,
        uia: UserInteractiveAuth,
        account_url: str,
    ) -> None:
        self._store = store
        self._clock = clock
        self._uia = uia
        self._url = f"{account_url}?action={RESET_ACTION}"

    async def approve(self, user_id: str) -> None:
        await self._store.approve_cross_signing_reset(
            user_id, self._clock.time_msec() + RESET_WINDOW_MS
        )

    async def check_reset(self, token_id: int | None, request: UiaRequest) -> bool:
        """False: not an OAuth token (use password UIA). True: approved, go ahead.
        Otherwise raises the 401 asking for the `m.oauth` stage."""
        if token_id is None or not await self._store.is_oauth_access_token(token_id):
            return False
        assert request.user_id is not None
        if await self._store.consume_cross_signing_reset(
            request.user_id, self._clock.time_msec()
        ):
            return True
        # The stage completes only on the account page, never with request data.
        session = request.auth.get("session") if request.auth is not None else None
        bare = UiaRequest(
            uri=request.uri,
            method=request.method,
            auth={"session": session} if isinstance(session, str) else None,
            user_id=request.user_id,
        )
        param = {"url": self._url}
        await self._uia.authenticate(
            bare,
            [[M_OAUTH], [UNSTABLE_M_OAUTH]],
            params={M_OAUTH: param, UNSTABLE_M_OAUTH: param},
        )
        raise AssertionError("the m.oauth stage never completes in the request")
