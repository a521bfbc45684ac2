"""A small identity server for third-party invite tests (modelled on SyTest's).

    async with fake_identity_server(tmp_path) as ids:
        overrides = ids.homeserver_overrides()        # trust its CA, allow loopback
        ...
        ids.bind("email", "bob@example.org", "@bob:localhost")   # lookups find it
        await ids.bind_and_notify(hs.base_url, "email", "bob@example.org", bob_id)

It serves HTTPS on 127.0.0.1 (a throw-away CA; the homeserver trusts it through
`federation.ca_file`) with an ed25519 key: v2 `hash_details`, `lookup` (sha256 and
none), `store-invite`, `pubkey/isvalid`, all but `isvalid` behind the access token.
`bind_and_notify` signs the pending invites of the address and calls the homeserver's
`/_matrix/federation/v1/3pid/onbind`, as an identity server does once an address is
verified.
"""

from __future__ import annotations

import hashlib
import itertools
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ranvier.core.crypto.base64 import encode_urlsafe_base64
from ranvier.core.crypto.keys import SigningKey
from ranvier.core.crypto.signing import sign_json
from tests.federation.tls import LocalCa, make_test_ca

JsonDict = dict[str, Any]
ACCESS_TOKEN = "swordfish"
PEPPER = "matrixrocks"
_seeds = itertools.count(101)


def new_key() -> SigningKey:
    return SigningKey.from_seed(next(_seeds).to_bytes(32, "big"), "0")


@dataclass
class FakeIdentityServer:
    ca: LocalCa
    port: int = 0
    key: SigningKey = field(default_factory=new_key)
    bindings: dict[tuple[str, str], str] = field(default_factory=dict)
    invites: dict[tuple[str, str], list[JsonDict]] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    requests: list[tuple[str, str, JsonDict | None, str | None]] = field(
        default_factory=list
    )
    # Answer hash_details with a redirect to this URL (redirect tests).
    redirect_hash_details: str | None = None
    _tokens: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.port}"

    def homeserver_overrides(self, *, allow_loopback: bool = True) -> JsonDict:
        fed: JsonDict = {"ca_file": str(self.ca.ca_file)}
        if allow_loopback:
            fed["ip_range_allowlist"] = ["127.0.0.1/32"]
        return {"federation": fed}

    def paths(self) -> list[str]:
        return [path for _, path, _, _ in self.requests]

    # -- what tests do -----------------------------------------------------------------
    def bind(self, medium: str, address: str, mxid: str) -> None:
        self.bindings[(medium, address)] = mxid

    def sign(self, obj: JsonDict, key: SigningKey | None = None) -> JsonDict:
        return sign_json(obj, self.name, key or self.key)

    def onbind_body(
        self, medium: str, address: str, mxid: str, key: SigningKey | None = None
    ) -> JsonDict:
        invites = []
        for invite in self.invites.get((medium, address), []):
            signed = self.sign({"mxid": mxid, "token": invite["token"]}, key)
            invites.append({**invite, "mxid": mxid, "signed": signed})
        return self.sign(
            {"medium": medium, "address": address, "mxid": mxid, "invites": invites}
        )

    async def bind_and_notify(
        self,
        hs_base_url: str,
        medium: str,
        address: str,
        mxid: str,
        *,
        key: SigningKey | None = None,
        method: str = "PUT",
    ) -> tuple[int, Any]:
        self.bind(medium, address, mxid)
        body = self.onbind_body(medium, address, mxid, key)
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, hs_base_url + "/_matrix/federation/v1/3pid/onbind", json=body
            ) as resp,
        ):
            return resp.status, await resp.json()

    # -- serving -----------------------------------------------------------------------
    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {ACCESS_TOKEN}"

    async def _record(self, request: web.Request) -> JsonDict | None:
        body = await request.json() if request.can_read_body else None
        self.requests.append(
            (request.method, request.path, body, request.headers.get("Authorization"))
        )
        return body

    @staticmethod
    def _error(status: int, errcode: str, message: str) -> web.Response:
        return web.json_response({"errcode": errcode, "error": message}, status=status)

    async def _hash_details(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        if self.redirect_hash_details is not None:
            raise web.HTTPFound(self.redirect_hash_details)
        if not self._authorised(request):
            return self._error(401, "M_UNAUTHORIZED", "bad token")
        return web.json_response(
            {"lookup_pepper": PEPPER, "algorithms": ["none", "sha256"]}
        )

    async def _lookup(self, request: web.Request) -> web.Response:
        body = await self._record(request) or {}
        if not self._authorised(request):
            return self._error(401, "M_UNAUTHORIZED", "bad token")
        if body.get("algorithm") == "sha256" and body.get("pepper") != PEPPER:
            return self._error(400, "M_INVALID_PEPPER", "wrong pepper")
        mappings: JsonDict = {}
        for (medium, address), mxid in self.bindings.items():
            if body.get("algorithm") == "sha256":
                digest = hashlib.sha256(f"{address} {medium} {PEPPER}".encode())
                value = encode_urlsafe_base64(digest.digest())
            else:
                value = f"{address} {medium}"
            if value in body.get("addresses", []):
                mappings[value] = mxid
        return web.json_response({"mappings": mappings})

    async def _store_invite(self, request: web.Request) -> web.Response:
        body = await self._record(request) or {}
        if not self._authorised(request):
            return self._error(401, "M_UNAUTHORIZED", "bad token")
        token = f"tok{next(self._tokens)}"
        medium, address = body["medium"], body["address"]
        self.invites.setdefault((medium, address), []).append(
            {
                "medium": medium,
                "address": address,
                "room_id": body["room_id"],
                "sender": body["sender"],
                "token": token,
            }
        )
        public = self.key.public_key_base64
        url = f"https://{self.name}/_matrix/identity/v2/pubkey/isvalid"
        return web.json_response(
            {
                "token": token,
                "display_name": "Bob",
                "public_key": public,
                "public_keys": [{"public_key": public, "key_validity_url": url}],
            }
        )

    async def _is_valid(self, request: web.Request) -> web.Response:
        await self._record(request)
        key = request.query.get("public_key", "")
        valid = key == self.key.public_key_base64 and key not in self.revoked
        return web.json_response({"valid": valid})

    def app(self) -> web.Application:
        app = web.Application()
        prefix = "/_matrix/identity/v2"
        app.router.add_get(prefix + "/hash_details", self._hash_details)
        app.router.add_post(prefix + "/lookup", self._lookup)
        app.router.add_post(prefix + "/store-invite", self._store_invite)
        app.router.add_get(prefix + "/pubkey/isvalid", self._is_valid)
        return app


@asynccontextmanager
async def fake_identity_server(tmp_path: Path) -> AsyncIterator[FakeIdentityServer]:
    ca = make_test_ca(tmp_path / "identity-ca")
    cert, key = ca.issue("127.0.0.1")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    ids = FakeIdentityServer(ca)
    runner = web.AppRunner(ids.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    try:
        await site.start()
        ids.port = int(runner.addresses[0][1])
        yield ids
    finally:
        await runner.cleanup()
