"""End-to-end encryption key management.

    POST /_matrix/client/v3/keys/upload
    POST /_matrix/client/v3/keys/query
    POST /_matrix/client/v3/keys/claim
    GET  /_matrix/client/v3/keys/changes?from=…&to=…
    POST /_matrix/client/v3/keys/device_signing/upload   (UIA m.login.password, except
                                                           the first upload; m.oauth
                                                           for OAuth tokens, MSC4312)
    POST /_matrix/client/v3/keys/signatures/upload
    (the two cross-signing endpoints also under /_matrix/client/unstable, pre-v1.1)

Spec: C-S API > End-to-End Encryption > Key management API; Cross-signing. Guests may
use the device-key endpoints (as Synapse), so encrypted rooms work for them too.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from ranvier.api.client.login import PASSWORD_FLOWS
from ranvier.api.client.register import uia_request
from ranvier.api.http import AuthMode, Endpoint, JsonBody, MatrixRequest, client_paths
from ranvier.core.crypto.e2e_keys import MASTER, SELF_SIGNING, USER_SIGNING
from ranvier.core.errors import bad_json, missing_param
from ranvier.services.accounts.uia import UiaRequest, UserInteractiveAuth
from ranvier.services.e2e.cross_signing import CrossSigningService
from ranvier.services.e2e.keys import E2eKeysService
from ranvier.services.e2e.query import KeyQueryService

__all__ = ["KeysResource", "parse_claims", "parse_device_query"]

JsonDict = dict[str, Any]

MAX_USERS: Final = 10_000


def parse_device_query(body: JsonBody) -> dict[str, list[str]]:
    """`device_keys`: {user_id: [device_id, …]} (an empty list means every device)."""
    query = body.get_dict("device_keys")
    if query is None:
        raise missing_param("Missing 'device_keys'.")
    if len(query) > MAX_USERS:
        raise bad_json("Too many users in 'device_keys'.")
    out: dict[str, list[str]] = {}
    for user_id, devices in query.items():
        if not isinstance(devices, list) or not all(
            isinstance(d, str) for d in devices
        ):
            raise bad_json("'device_keys' must map user IDs to arrays of device IDs.")
        out[user_id] = devices
    return out


def parse_claims(body: JsonBody) -> dict[str, dict[str, str]]:
    """`one_time_keys`: {user_id: {device_id: algorithm}}."""
    claims = body.get_dict("one_time_keys")
    if claims is None:
        raise missing_param("Missing 'one_time_keys'.")
    if len(claims) > MAX_USERS:
        raise bad_json("Too many users in 'one_time_keys'.")
    out: dict[str, dict[str, str]] = {}
    for user_id, devices in claims.items():
        if not isinstance(devices, dict) or not all(
            isinstance(a, str) for a in devices.values()
        ):
            raise bad_json("'one_time_keys' must map users to {device_id: algorithm}.")
        out[user_id] = devices
    return out


class CrossSigningResetGate(Protocol):
    async def check_reset(self, token_id: int | None, request: UiaRequest) -> bool:
        """True when an approved reset lets the upload skip UIA; False when the
        password stage applies; otherwise raises the UIA 401 itself."""
        ...


class KeysResource:
    def __init__(
        self,
        keys: E2eKeysService,
        query: KeyQueryService,
        cross_signing: CrossSigningService,
        uia: UserInteractiveAuth,
        reset_gate: CrossSigningResetGate | None = None,
    ) -> None:
        self._keys = keys
        self._query = query
        self._cross_signing = cross_signing
        self._uia = uia
        # OAuth sessions replace keys with the m.oauth stage instead (MSC4312).
        self._reset_gate = reset_gate

    async def upload(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        device_id = req.user.device_id
        if device_id is None:
            raise bad_json("This access token has no device.")
        fallback = body.raw.get("fallback_keys")
        if fallback is None:  # the name before fallback keys were in the spec (MSC2732)
            fallback = body.raw.get("org.matrix.msc2732.fallback_keys")
        counts = await self._keys.upload_keys(
            req.user.user_id,
            device_id,
            device_keys=body.get_dict("device_keys"),
            one_time_keys=body.get_dict("one_time_keys"),
            fallback_keys=fallback,
        )
        return {"one_time_key_counts": counts}

    async def query(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        return await self._query.query_keys(
            req.user.user_id, parse_device_query(body), body.get_int("timeout")
        )

    async def claim(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        return await self._query.claim_keys(parse_claims(body), body.get_int("timeout"))

    async def changes(self, req: MatrixRequest) -> JsonDict:
        from_token, to_token = req.query.get("from"), req.query.get("to")
        if not from_token or not to_token:
            raise missing_param("'from' and 'to' are required.")
        changed, left = await self._keys.get_key_changes(
            req.user.user_id, from_token, to_token
        )
        return {"changed": sorted(changed), "left": sorted(left)}

    async def upload_signing_keys(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        user_id = req.user.user_id
        uploaded = {
            key_type: body.get_dict(f"{key_type}_key")
            for key_type in (MASTER, SELF_SIGNING, USER_SIGNING)
        }
        upload = await self._cross_signing.prepare_upload(
            user_id, {t: k for t, k in uploaded.items() if k is not None}
        )
        session_id = None
        if self._cross_signing.needs_auth(upload):
            uia_req = uia_request(req, body, user_id)
            gate = self._reset_gate
            if gate is None or not await gate.check_reset(req.user.token_id, uia_req):
                result = await self._uia.authenticate(uia_req, PASSWORD_FLOWS)
                session_id = result.session_id
        await self._cross_signing.upload(upload)
        if session_id is not None:
            await self._uia.finish(session_id)
        return {}

    async def upload_signatures(self, req: MatrixRequest) -> JsonDict:
        body = await req.json()
        signed: dict[str, dict[str, Any]] = {}
        for user_id, per_key in body.raw.items():
            if not isinstance(per_key, dict):
                raise bad_json("Signatures must map user IDs to {key_id: object}.")
            signed[user_id] = per_key
        failures = await self._cross_signing.upload_signatures(req.user.user_id, signed)
        return {"failures": failures}

    def endpoints(self) -> list[Endpoint]:
        def ep(method: str, path: str, handler: Any, auth: AuthMode) -> Endpoint:
            return Endpoint(method, client_paths(path), handler, auth=auth)

        return [
            ep("POST", "/keys/upload", self.upload, AuthMode.GUEST_OK),
            ep("POST", "/keys/query", self.query, AuthMode.GUEST_OK),
            ep("POST", "/keys/claim", self.claim, AuthMode.GUEST_OK),
            ep("GET", "/keys/changes", self.changes, AuthMode.GUEST_OK),
            # Cross-signing also under /unstable, where clients from before v1.1
            # (and Synapse, and SyTest) have it.
            Endpoint(
                "POST",
                client_paths("/keys/device_signing/upload")
                + client_paths("/keys/device_signing/upload", prefix="unstable"),
                self.upload_signing_keys,
                auth=AuthMode.USER,
            ),
            Endpoint(
                "POST",
                client_paths("/keys/signatures/upload")
                + client_paths("/keys/signatures/upload", prefix="unstable"),
                self.upload_signatures,
                auth=AuthMode.USER,
            ),
        ]
