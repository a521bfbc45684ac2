"""User-interactive authentication (UIA).

Spec: Client-Server API > Client Authentication > User-Interactive Authentication API.
An endpoint names its flows (lists of stage types). A request without `auth` starts a
session: 401 with `flows`, `params` and `session`. Each request may complete one stage
(`auth.type`); the server answers 401 with `completed` until every stage of some flow is
done, and 401 with `errcode`/`error` added when a stage fails. Sessions are persisted, so
they survive restarts and work across processes; they are bound to the endpoint (URI and
method) and, where there is one, the authenticated user that started them.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ranvier.core.errors import MatrixError, bad_json, forbidden
from ranvier.storage.stores.registration import UiaSessionRow
from ranvier.util.clock import Clock

JsonDict = dict[str, Any]

DUMMY = "m.login.dummy"
PASSWORD = "m.login.password"  # noqa: S105 - a protocol name, not a secret
REGISTRATION_TOKEN = "m.login.registration_token"  # noqa: S105 - a protocol name, not a secret

SESSION_LIFETIME_MS = 24 * 60 * 60 * 1000
_CLEANUP_INTERVAL_MS = 60 * 1000


class UiaStore(Protocol):
    async def create_uia_session(self, row: UiaSessionRow) -> None: ...

    async def get_uia_session(self, session_id: str) -> UiaSessionRow | None: ...

    async def update_uia_session(
        self, session_id: str, completed: JsonDict, data: JsonDict
    ) -> None: ...

    async def delete_uia_session(self, session_id: str) -> None: ...

    async def delete_expired_uia_sessions(self, created_before_ts: int) -> int: ...


class StageFailedError(Exception):
    def __init__(self, errcode: str, message: str) -> None:
        super().__init__(message)
        self.errcode = errcode
        self.message = message


class StageChecker(Protocol):
    async def check(self, auth: Mapping[str, Any], session: UiaSessionRow) -> Any:
        """Verify one stage; return what it proved (stored in `completed`), or raise
        `StageFailedError`."""
        ...


class UiaRequiredError(MatrixError):
    """The 401 that asks for (more) authentication; its body is the UIA response."""

    def __init__(self, body: JsonDict) -> None:
        super().__init__(401, str(body.get("errcode", "")), str(body.get("error", "")))
        self.body = body
        self.session_id = str(body["session"])

    def to_json(self) -> JsonDict:
        return self.body


@dataclass(frozen=True, slots=True)
class UiaRequest:
    uri: str
    method: str
    auth: Mapping[str, Any] | None
    # The authenticated requester, for endpoints behind an access token.
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class UiaResult:
    session_id: str
    completed: JsonDict
    data: JsonDict


class DummyStage:
    async def check(self, auth: Mapping[str, Any], session: UiaSessionRow) -> Any:
        return True


class UserInteractiveAuth:
    def __init__(
        self,
        store: UiaStore,
        clock: Clock,
        checkers: Mapping[str, StageChecker],
        *,
        session_lifetime_ms: int = SESSION_LIFETIME_MS,
    ) -> None:
        self._store = store
        self._clock = clock
        self._checkers = dict(checkers)
        self._lifetime = session_lifetime_ms
        self._last_cleanup = 0

    async def authenticate(
        self,
        req: UiaRequest,
        flows: Sequence[Sequence[str]],
        *,
        params: JsonDict | None = None,
        data: JsonDict | None = None,
    ) -> UiaResult:
        """Return once a flow is complete; otherwise raise `UiaRequiredError` (401).

        `data` is merged into the session's data (kept between rounds).
        """
        auth = req.auth
        session_id = auth.get("session") if auth is not None else None
        stage = auth.get("type") if auth is not None else None
        if session_id is not None and not isinstance(session_id, str):
            raise bad_json("'auth.session' must be a string")
        if stage is not None and not isinstance(stage, str):
            raise bad_json("'auth.type' must be a string")
        if session_id is None:
            session = await self._new_session(req, data or {})
        else:
            session = await self._get_session(session_id, req)
        completed = dict(session.completed)
        session_data = {**session.data, **(data or {})}
        failure: StageFailedError | None = None
        if stage is not None and auth is not None:
            try:
                completed[stage] = await self._check_stage(stage, flows, auth, session)
            except StageFailedError as e:
                failure = e
        if completed != session.completed or session_data != session.data:
            await self._store.update_uia_session(
                session.session_id, completed, session_data
            )
        if failure is None and any(all(s in completed for s in flow) for flow in flows):
            return UiaResult(session.session_id, completed, session_data)
        body: JsonDict = {
            "flows": [{"stages": list(flow)} for flow in flows],
            "params": params or {},
            "session": session.session_id,
            "completed": list(completed),
        }
        if failure is not None:
            body["errcode"] = failure.errcode
            body["error"] = failure.message
        raise UiaRequiredError(body)

    async def set_data(self, session_id: str, data: JsonDict) -> None:
        """Merge `data` into a session (e.g. after the endpoint answered 401)."""
        session = await self._store.get_uia_session(session_id)
        if session is not None:
            merged = {**session.data, **data}
            await self._store.update_uia_session(session_id, session.completed, merged)

    async def get_data(self, session_id: str) -> JsonDict:
        session = await self._store.get_uia_session(session_id)
        return {} if session is None else session.data

    async def finish(self, session_id: str) -> None:
        """Delete a session whose operation is done (releases what it held)."""
        await self._store.delete_uia_session(session_id)

    async def _check_stage(
        self,
        stage: str,
        flows: Sequence[Sequence[str]],
        auth: Mapping[str, Any],
        session: UiaSessionRow,
    ) -> Any:
        checker = self._checkers.get(stage)
        if checker is None or not any(stage in flow for flow in flows):
            raise MatrixError(
                400, "M_UNRECOGNIZED", f"Unrecognised auth type {stage!r}."
            )
        return await checker.check(auth, session)

    async def _new_session(self, req: UiaRequest, data: JsonDict) -> UiaSessionRow:
        now = self._clock.time_msec()
        if now - self._last_cleanup >= _CLEANUP_INTERVAL_MS:
            self._last_cleanup = now
            await self._store.delete_expired_uia_sessions(now - self._lifetime)
        row = UiaSessionRow(
            session_id=secrets.token_urlsafe(18),
            uri=req.uri,
            method=req.method,
            user_id=req.user_id,
            completed={},
            data=data,
            registration_token=None,
            created_ts=now,
        )
        await self._store.create_uia_session(row)
        return row

    async def _get_session(self, session_id: str, req: UiaRequest) -> UiaSessionRow:
        session = await self._store.get_uia_session(session_id)
        now = self._clock.time_msec()
        if session is None or session.created_ts + self._lifetime <= now:
            raise MatrixError(400, "M_UNKNOWN", "Unknown or expired UIA session.")
        if session.uri != req.uri or session.method != req.method:
            raise forbidden(
                "Requested operation has changed during the UI authentication session."
            )
        if session.user_id != req.user_id:
            raise forbidden("This UI authentication session belongs to another user.")
        return session
