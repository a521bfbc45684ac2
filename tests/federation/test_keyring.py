"""Keyring: direct and notary fetches between in-process Ranvier servers, over real TLS
on loopback, and the validation, caching and backoff rules with fakes."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ranvier.app.federation import Federation
from ranvier.core.crypto.keys import SigningKey, VerifyKey
from ranvier.core.crypto.signing import sign_json, verify_json_signature
from ranvier.federation.discovery import ServerResolver
from ranvier.federation.errors import FederationError
from ranvier.federation.ip_filter import IpRangeFilter
from ranvier.federation.keyring import KEY_VALIDITY_CAP_MS, KeyFetchBackoff, Keyring
from ranvier.federation.transport import (
    ConnectionLimits,
    HttpTransport,
    HttpWellKnownFetcher,
    TransportError,
    build_client_session,
    build_tls_context,
)
from ranvier.storage.stores.federation import ServerKeyRow
from ranvier.util.clock import FakeClock
from tests.federation.fakes import (
    FakeDns,
    RunningPeer,
    free_port,
    in_process_network,
    start_peer,
    transport_of,
)
from tests.federation.tls import make_test_ca

DAY_MS = 24 * 3600 * 1000


def fed(peer: RunningPeer) -> Federation:
    federation = peer.homeserver.federation
    assert federation is not None
    return federation


def own_key(peer: RunningPeer) -> VerifyKey:
    return peer.homeserver.server_keys.signing_key.verify_key


async def test_direct_fetch_is_cached_in_memory_and_db(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, ["a.test", "b.test"]) as peers:
        a, b = peers["a.test"], peers["b.test"]
        key_id = own_key(b).key_id
        now = a.homeserver.clock.time_msec()
        got = await fed(a).keyring.get_verify_key("b.test", key_id, now)
        assert got == own_key(b)
        assert fed(a).keyring.lookup("b.test", key_id, now) == own_key(b)
        # Valid for about a day (B's valid_until_ts), not beyond.
        assert fed(a).keyring.lookup("b.test", key_id, now + 2 * DAY_MS) is None
        assert fed(a).keyring.lookup("b.test", "ed25519:other", 0) is None
        rows = await fed(a).store.get_server_keys("b.test")
        assert [(r.key_id, r.from_server) for r in rows] == [(key_id, "b.test")]
        # A fresh keyring on the same database needs no network.
        transport_of(a).unregister("b.test")
        fresh = Keyring(
            a.homeserver.server_keys, fed(a).client, fed(a).store, a.homeserver.clock
        )
        await fresh.prefetch({"b.test": [key_id]}, now)
        assert fresh.lookup("b.test", key_id, now) == own_key(b)
        # Our own key is answered locally.
        assert fresh.lookup("a.test", own_key(a).key_id, now) == own_key(a)


async def test_notary_fetch_when_origin_unreachable(tmp_path: Path) -> None:
    overrides = {"a.test": {"federation": {"trusted_key_servers": ["n.test"]}}}
    async with in_process_network(
        tmp_path, ["a.test", "b.test", "n.test"], overrides=overrides
    ) as peers:
        a, b, n = peers["a.test"], peers["b.test"], peers["n.test"]
        transport_of(a).unregister("b.test")
        key_id = own_key(b).key_id
        now = a.homeserver.clock.time_msec()
        got = await fed(a).keyring.get_verify_key("b.test", key_id, now)
        assert got == own_key(b)
        rows = await fed(a).store.get_server_keys("b.test")
        assert {r.from_server for r in rows} == {"n.test"}
        # The notary's own key was fetched directly from it to check its signature.
        assert fed(a).keyring.lookup("n.test", own_key(n).key_id, now) == own_key(n)
        # The notary cached B's document (fetched directly): B may now vanish.
        transport_of(n).unregister("b.test")
        docs = await fed(n).keyring.get_key_documents("b.test", [key_id], now)
        assert len(docs) == 1


async def test_notary_endpoints(tmp_path: Path) -> None:
    async with (
        in_process_network(tmp_path, ["b.test", "n.test"]) as peers,
        aiohttp.ClientSession() as http,
    ):
        b, n = peers["b.test"], peers["n.test"]
        url = n.base_url + "/_matrix/key/v2/query"
        async with http.get(url + "/b.test") as r:
            assert r.status == 200
            (doc,) = (await r.json())["server_keys"]
        assert doc["server_name"] == "b.test"
        verify_json_signature(doc, "b.test", own_key(b).key_id, own_key(b))
        verify_json_signature(doc, "n.test", own_key(n).key_id, own_key(n))

        query = {
            "server_keys": {
                "b.test": {own_key(b).key_id: {"minimum_valid_until_ts": 1}},
                "n.test": {},
                "unknown.test": {},
                "not a name!": {},
            }
        }
        async with http.post(url, json=query) as r:
            assert r.status == 200
            docs = (await r.json())["server_keys"]
        assert sorted(d["server_name"] for d in docs) == ["b.test", "n.test"]
        async with http.get(url + "/b.test?minimum_valid_until_ts=soon") as r:
            assert r.status == 400
        async with http.get(url + "/bad%20name") as r:
            assert r.status == 400
        bad_queries: list[dict[str, Any]] = [
            {},
            {"server_keys": []},
            {"server_keys": {"b.test": []}},
            {"server_keys": {"b.test": {"k": {"minimum_valid_until_ts": "x"}}}},
        ]
        for bad in bad_queries:
            async with http.post(url, json=bad) as r:
                assert r.status == 400, bad
                assert (await r.json())["errcode"] == "M_BAD_JSON"
        async with http.post(url, data=b"{not json") as r:
            assert r.status == 400
        async with http.post(url, json={"server_keys": {}}) as r:
            assert (await r.json()) == {"server_keys": []}


async def test_keys_over_real_tls_on_loopback_and_ip_blocklist(tmp_path: Path) -> None:
    ca = make_test_ca(tmp_path / "ca")
    cert, key = ca.issue("b.test")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(str(cert), str(key))
    port = free_port()
    b_name = f"b.test:{port}"
    dns = FakeDns(hosts={"b.test": ["127.0.0.1"]})
    loopback = ipaddress.ip_network("127.0.0.0/8")

    def transport(allow: bool, ca_file: Path | None = ca.ca_file) -> HttpTransport:
        ip_filter = IpRangeFilter(
            [loopback], [ipaddress.ip_network("127.0.0.1/32")] if allow else []
        )
        session = build_client_session(
            dns,
            ip_filter,
            build_tls_context(verify=True, ca_file=ca_file),
            ConnectionLimits(),
        )
        resolver = ServerResolver(dns, HttpWellKnownFetcher(session), FakeClock())
        return HttpTransport(session, resolver, dns)

    b_transport = transport(allow=True)
    async with (
        start_peer(
            tmp_path / "b",
            b_name,
            transport=b_transport,
            ssl_context=server_ctx,
            port=port,
        ) as b,
        start_peer(tmp_path / "a", "a.test", transport=transport(allow=True)) as a,
    ):
        now = a.homeserver.clock.time_msec()
        got = await fed(a).keyring.get_verify_key(b_name, own_key(b).key_id, now)
        assert got == own_key(b)

        for blocked_destination in (b_name, f"127.0.0.1:{port}"):
            blocked = transport(allow=False)
            try:
                with pytest.raises(TransportError):
                    await blocked.request(
                        blocked_destination,
                        "GET",
                        "/_matrix/key/v2/server",
                        headers={},
                        body=None,
                        request_timeout=5,
                        max_response_bytes=1 << 20,
                    )
            finally:
                await blocked.close()
        untrusted = transport(allow=True, ca_file=None)
        try:
            with pytest.raises(TransportError):
                await untrusted.request(
                    b_name,
                    "GET",
                    "/_matrix/key/v2/server",
                    headers={},
                    body=None,
                    request_timeout=5,
                    max_response_bytes=1 << 20,
                )
        finally:
            await untrusted.close()


# -- validation, caching and backoff with fakes -------------------------------------------


class Own:
    server_name = "me.test"
    signing_key = SigningKey(bytes(32), "me")

    def signed_key_response(self) -> dict[str, Any]:
        return {}


@dataclass
class MemoryKeyStore:
    rows: list[ServerKeyRow] = field(default_factory=list)

    async def get_server_keys(self, server_name: str) -> list[ServerKeyRow]:
        return [r for r in self.rows if r.server_name == server_name]

    async def store_server_keys(
        self,
        server_name: str,
        from_server: str,
        fetched_ts: int,
        key_json: str,
        keys: Sequence[tuple[str, str, int]],
    ) -> None:
        for key_id, verify_key, until in keys:
            self.rows = [
                r
                for r in self.rows
                if (r.server_name, r.key_id, r.from_server)
                != (server_name, key_id, from_server)
            ]
            self.rows.append(
                ServerKeyRow(
                    server_name,
                    key_id,
                    from_server,
                    verify_key,
                    until,
                    fetched_ts,
                    key_json,
                )
            )


@dataclass
class FakeKeyClient:
    direct: dict[str, Any] = field(default_factory=dict)
    notary: dict[str, Any] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    gate: asyncio.Event | None = None

    async def get_server_keys(self, destination: str) -> Any:
        self.calls.append(f"direct:{destination}")
        if self.gate is not None:
            await self.gate.wait()
        if destination not in self.direct:
            raise FederationError(destination, "unreachable")
        return self.direct[destination]

    async def query_notary(self, notary: str, query: Mapping[str, Any]) -> Any:
        self.calls.append(f"notary:{notary}")
        if notary not in self.notary:
            raise FederationError(notary, "unreachable")
        return self.notary[notary]


B_KEY = SigningKey(bytes([1] * 32), "b1")
B_OLD = SigningKey(bytes([2] * 32), "old")
N_KEY = SigningKey(bytes([3] * 32), "n1")
MALLORY = SigningKey(bytes([4] * 32), "b1")


def key_doc(
    server: str,
    key: SigningKey,
    valid_until: int,
    *,
    signer: SigningKey | None = None,
    old: dict[str, Any] | None = None,
) -> dict[str, Any]:
    doc = {
        "server_name": server,
        "valid_until_ts": valid_until,
        "verify_keys": {key.key_id: {"key": key.public_key_base64}},
        "old_verify_keys": old or {},
    }
    return sign_json(doc, server, signer or key)


def keyring(
    client: FakeKeyClient, clock: FakeClock, notaries: Sequence[str] = ()
) -> Keyring:
    return Keyring(
        Own(),
        client,
        MemoryKeyStore(),
        clock,
        trusted_key_servers=notaries,
        backoff=KeyFetchBackoff(initial_ms=60_000, max_ms=600_000),
    )


async def test_validity_cap_and_old_keys() -> None:
    clock = FakeClock()
    now = clock.time_msec()
    old = {B_OLD.key_id: {"key": B_OLD.public_key_base64, "expired_ts": now - 1000}}
    client = FakeKeyClient(
        direct={"b.test": key_doc("b.test", B_KEY, now + 30 * DAY_MS, old=old)}
    )
    ring = keyring(client, clock)
    await ring.prefetch({"b.test": [B_KEY.key_id, B_OLD.key_id]}, 0)
    # valid_until_ts of 30 days is capped at 7 days after the fetch.
    assert (
        ring.lookup("b.test", B_KEY.key_id, now + KEY_VALIDITY_CAP_MS)
        == B_KEY.verify_key
    )
    assert ring.lookup("b.test", B_KEY.key_id, now + KEY_VALIDITY_CAP_MS + 1) is None
    # Old keys sign only events from before they expired; rooms < v5 pass 0.
    assert ring.lookup("b.test", B_OLD.key_id, now - 2000) == B_OLD.verify_key
    assert ring.lookup("b.test", B_OLD.key_id, now) is None
    assert ring.lookup("b.test", B_OLD.key_id, 0) == B_OLD.verify_key


@pytest.mark.parametrize(
    "bad",
    [
        "forged_self_signature",
        "wrong_server",
        "unsigned",
        "signed_with_unlisted_key",
        "not_an_object",
    ],
)
async def test_direct_documents_must_be_self_signed(bad: str) -> None:
    clock = FakeClock()
    until = clock.time_msec() + DAY_MS
    docs: dict[str, Any] = {
        "forged_self_signature": key_doc("b.test", B_KEY, until, signer=MALLORY),
        "wrong_server": key_doc("c.test", B_KEY, until),
        "unsigned": {
            k: v
            for k, v in key_doc("b.test", B_KEY, until).items()
            if k != "signatures"
        },
        "signed_with_unlisted_key": sign_json(
            key_doc("b.test", B_KEY, until), "b.test", B_OLD
        ),
        "not_an_object": ["nope"],
    }
    ring = keyring(FakeKeyClient(direct={"b.test": docs[bad]}), clock)
    assert await ring.get_verify_key("b.test", B_KEY.key_id, 0) is None


@pytest.mark.parametrize("notary_signs", ["valid", "missing", "forged"])
async def test_notary_answers_need_both_signatures(notary_signs: str) -> None:
    clock = FakeClock()
    until = clock.time_msec() + DAY_MS
    doc = key_doc("b.test", B_KEY, until)
    if notary_signs == "valid":
        doc = sign_json(doc, "n.test", N_KEY)
    elif notary_signs == "forged":
        doc = sign_json(doc, "n.test", SigningKey(bytes([9] * 32), "n1"))
    client = FakeKeyClient(
        direct={"n.test": key_doc("n.test", N_KEY, until)},
        notary={
            "n.test": {"server_keys": [doc, "junk", {"server_name": "other.test"}]}
        },
    )
    ring = keyring(client, clock, notaries=["n.test"])
    got = await ring.get_verify_key("b.test", B_KEY.key_id, clock.time_msec())
    assert got == (B_KEY.verify_key if notary_signs == "valid" else None)
    assert client.calls[:2] == ["direct:b.test", "notary:n.test"]


async def test_negative_cache_backs_off_then_retries() -> None:
    clock = FakeClock()
    client = FakeKeyClient()
    ring = keyring(client, clock)
    assert await ring.get_verify_key("b.test", B_KEY.key_id, 0) is None
    assert await ring.get_verify_key("b.test", B_KEY.key_id, 0) is None
    assert client.calls == ["direct:b.test"]
    clock.advance(61)
    client.direct["b.test"] = key_doc("b.test", B_KEY, clock.time_msec() + DAY_MS)
    assert await ring.get_verify_key("b.test", B_KEY.key_id, 0) == B_KEY.verify_key
    assert client.calls == ["direct:b.test", "direct:b.test"]
    # A key that is still unknown after a successful fetch is not refetched at once.
    assert await ring.get_verify_key("b.test", "ed25519:unknown", 0) is None
    assert await ring.get_verify_key("b.test", "ed25519:unknown", 0) is None
    assert len(client.calls) == 3


async def test_concurrent_lookups_share_one_fetch() -> None:
    clock = FakeClock()
    gate = asyncio.Event()
    client = FakeKeyClient(
        direct={"b.test": key_doc("b.test", B_KEY, clock.time_msec() + DAY_MS)},
        gate=gate,
    )
    ring = keyring(client, clock)
    lookups = [
        asyncio.ensure_future(ring.get_verify_key("b.test", B_KEY.key_id, 0))
        for _ in range(5)
    ]
    await asyncio.sleep(0.01)
    gate.set()
    assert await asyncio.gather(*lookups) == [B_KEY.verify_key] * 5
    assert client.calls == ["direct:b.test"]


async def test_expired_cache_entry_is_refreshed() -> None:
    clock = FakeClock()
    client = FakeKeyClient(
        direct={"b.test": key_doc("b.test", B_KEY, clock.time_msec() + 1000)}
    )
    ring = keyring(client, clock)
    assert await ring.get_verify_key("b.test", B_KEY.key_id, 0) == B_KEY.verify_key
    later = clock.time_msec() + 5000
    client.direct["b.test"] = key_doc("b.test", B_KEY, later + DAY_MS)
    # An event from after the cached validity makes the keyring fetch again.
    assert await ring.get_verify_key("b.test", B_KEY.key_id, later) == B_KEY.verify_key
    assert client.calls == ["direct:b.test", "direct:b.test"]


async def test_notary_keeps_a_valid_key_the_origin_no_longer_serves() -> None:
    """SyTest "Key notary server must not overwrite a valid key with a spurious result
    from the origin server": the origin first serves key b1, then (asked again for a
    later validity) b2 only, or another key under b1's ID; b1 stays known and served
    first to whoever asks for it, beside the new document."""
    clock = FakeClock()
    now = clock.time_msec()
    first = key_doc("b.test", B_KEY, now + DAY_MS)
    client = FakeKeyClient(direct={"b.test": first})
    ring = keyring(client, clock)
    docs = await ring.get_key_documents("b.test", [B_KEY.key_id], now)
    assert docs == [first]
    # A later minimum validity forces a refetch; the origin now answers another key ID.
    b2 = SigningKey(bytes([5] * 32), "b2")
    second = key_doc("b.test", b2, now + 3 * DAY_MS)
    client.direct["b.test"] = second
    docs = await ring.get_key_documents("b.test", [B_KEY.key_id], now + 2 * DAY_MS)
    assert docs == [first, second]  # served both, the asked-for key first
    docs = await ring.get_key_documents("b.test", [B_KEY.key_id], now)
    assert docs[0] == first
    assert (await ring.get_key_documents("b.test", [b2.key_id], now))[0] == second
    # The same key ID with other key material does not replace the valid b1.
    client.direct["b.test"] = key_doc("b.test", MALLORY, now + 5 * DAY_MS)
    docs = await ring.get_key_documents("b.test", [B_KEY.key_id], now + 4 * DAY_MS)
    assert docs[0] == first
    assert all(
        d["verify_keys"].get(B_KEY.key_id, {}).get("key") != MALLORY.public_key_base64
        for d in docs
    )
    assert ring.lookup("b.test", B_KEY.key_id, 0) == B_KEY.verify_key


async def test_expired_key_is_replaced_by_new_material() -> None:
    """Once the held key has expired, a new key under its ID is accepted (a server
    that lost its key and reused the ID is not locked out forever)."""
    clock = FakeClock()
    now = clock.time_msec()
    client = FakeKeyClient(direct={"b.test": key_doc("b.test", B_KEY, now + 1000)})
    ring = keyring(client, clock)
    assert await ring.get_verify_key("b.test", B_KEY.key_id, 0) == B_KEY.verify_key
    clock.advance(2.0)
    client.direct["b.test"] = key_doc("b.test", MALLORY, now + DAY_MS)
    later = clock.time_msec()
    assert (
        await ring.get_verify_key("b.test", B_KEY.key_id, later) == MALLORY.verify_key
    )
